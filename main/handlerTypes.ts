// A handler pairs the argument schema of one channel with its implementation. Domain files return
// `Pick<Handlers, ...>` for their channels; main/handlers.ts combines them and the compiler checks that
// every channel of the contract has exactly one handler.
import type { z } from 'zod'
import type { Channel, Req, Res } from '../preload/contract'

export interface Handler<C extends Channel> {
  /** Validates the raw argument; what it returns is what `handle` receives. */
  schema: z.ZodType<Req<C>>
  handle(arg: Req<C>): Promise<Res<C>> | Res<C>
}

export type Handlers = { [C in Channel]: Handler<C> }
