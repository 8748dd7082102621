// Every channel's handler, combined from the domain files. The `Handlers` annotation makes the compiler
// reject a channel of the contract that has no handler here.
import type { AppContext } from './context'
import { appHandlers } from './appHandlers'
import { datasetHandlers } from './datasets/datasetHandlers'
import { rowHandlers } from './datasets/rowHandlers'
import type { Handlers } from './handlerTypes'
import { projectHandlers } from './projects/projectHandlers'

export interface Services {
  /** Engine backends compiled into the addon ('cpu', 'cuda'); empty when the addon is missing. */
  engineBackends: () => string[]
}

export function createHandlers(ctx: AppContext, services: Services): Handlers {
  return {
    ...appHandlers(ctx, services.engineBackends),
    ...projectHandlers(ctx),
    ...rowHandlers(ctx),
    ...datasetHandlers(ctx),
  }
}
