// One engine host supervisor per app context, shared by training and chat (they take turns through
// EngineSupervisor.acquire). main/index.ts attaches one that spawns an Electron utility process; everything else
// (browser mode, the CLI, tests) gets a Node child process by default.
import type { AppContext } from '../../context'
import { EngineSupervisor } from './EngineSupervisor'
import { forkHost, type HostSpawner } from './HostProcess'

const engines = new WeakMap<AppContext, EngineSupervisor>()

/** Creates the context's supervisor (once; later calls return the same one). The host process starts on first use
 *  and is shut down when the context closes. Status changes go out as 'engine:status' events. */
export function attachEngine(ctx: AppContext, spawn: HostSpawner = forkHost()): EngineSupervisor {
  const existing = engines.get(ctx)
  if (existing) return existing
  const sup = new EngineSupervisor(spawn, {
    onStatus: (s) => ctx.events.emit('engine:status', s),
    log: (m) => console.error(m),
  })
  engines.set(ctx, sup)
  ctx.onClose(() => sup.close())
  return sup
}

/** The context's engine supervisor (a Node child-process host unless main/index.ts attached another). */
export function engineOf(ctx: AppContext): EngineSupervisor {
  return engines.get(ctx) ?? attachEngine(ctx)
}
