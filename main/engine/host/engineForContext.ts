// One engine host supervisor per app context, shared by training and chat (they take turns through
// EngineSupervisor.acquire). main/index.ts attaches one that spawns an Electron utility process; everything else
// (browser mode, the CLI, tests) gets a Node child process by default.
import type { AppContext } from '../../context'
import { EngineSupervisor } from './EngineSupervisor'
import { forkHost, type HostSpawner } from './HostProcess'
import { perContext } from '../../perContext'

/** Creates the context's supervisor (once; later calls return the same one). The host process starts on first use
 *  and is shut down when the context closes. Status changes go out as 'engine:status' events. */
export const attachEngine = perContext(
  (ctx, spawn: HostSpawner = forkHost()) =>
    new EngineSupervisor(spawn, {
      onStatus: (s) => ctx.events.emit('engine:status', s),
      log: (m) => console.error(m),
    }),
  (sup, ctx) => ctx.onClose(() => sup.close()),
)

/** The context's engine supervisor (a Node child-process host unless main/index.ts attached another). */
export function engineOf(ctx: AppContext): EngineSupervisor {
  return attachEngine(ctx)
}
