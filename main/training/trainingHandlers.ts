// training:* , runs:* and engine:status channels. The service (one per app context) is created by main/index.ts
// or main/serve.ts with the right engine host, or here on first use (a Node child-process host).
import { z } from 'zod'
import type { AppContext } from '../context'
import { engineOf } from '../engine/host/engineForContext'
import type { Handlers } from '../handlerTypes'
import { perContext } from '../perContext'
import { trainingRequestSchema } from './settingsSchema'
import { TrainingService, type TrainingServiceOptions } from './TrainingService'

type TrainingChannels =
  | 'training:presets' | 'training:estimate' | 'training:start' | 'training:stop' | 'runs:list' | 'runs:get' | 'runs:metrics' | 'runs:resume'
  | 'runs:dismissResume' | 'runs:delete' | 'runs:compare' | 'engine:status'

/** The context's training service: created once (options apply to that first call), marks runs left active by a
 *  previous process as interrupted (with a resume offer), and stops the active run gracefully when the context closes. */
export const trainingServiceOf = perContext(
  (ctx, options?: TrainingServiceOptions) => new TrainingService(ctx, engineOf(ctx), options),
  (service, ctx) => {
    ctx.onClose(() => service.close())
    if (ctx.status.state === 'ready') service.recoverInterrupted()
  },
)

const id = z.number().int().positive()

export function trainingHandlers(ctx: AppContext): Pick<Handlers, TrainingChannels> {
  const svc = () => trainingServiceOf(ctx)
  if (ctx.status.state === 'ready') svc()
  return {
    'training:presets': { schema: z.void(), handle: () => svc().presets() },
    'training:estimate': { schema: trainingRequestSchema, handle: (req) => svc().estimate(req) },
    'training:start': { schema: trainingRequestSchema, handle: (req) => svc().start(req) },
    'training:stop': { schema: z.object({ runId: id }).strict(), handle: ({ runId }) => svc().stop(runId) },
    'runs:list': { schema: z.object({ projectId: id.optional() }).strict(), handle: ({ projectId }) => svc().list(projectId) },
    'runs:get': { schema: z.object({ id }).strict(), handle: ({ id }) => svc().get(id) },
    'runs:metrics': {
      schema: z.object({ runId: id, maxPoints: z.number().int().min(10).max(100_000).optional(), afterStep: z.number().int().min(0).optional() }).strict(),
      handle: ({ runId, maxPoints, afterStep }) => svc().metrics(runId, maxPoints, afterStep),
    },
    'runs:resume': { schema: z.object({ id }).strict(), handle: ({ id }) => svc().resume(id) },
    'runs:dismissResume': { schema: z.object({ id }).strict(), handle: ({ id }) => svc().dismissResume(id) },
    'runs:delete': { schema: z.object({ id }).strict(), handle: ({ id }) => svc().delete(id) },
    'runs:compare': {
      schema: z.object({ ids: z.array(id).min(1).max(8), maxPoints: z.number().int().min(10).max(20_000).optional() }).strict(),
      handle: ({ ids, maxPoints }) => svc().compare(ids, maxPoints),
    },
    'engine:status': { schema: z.void(), handle: () => engineOf(ctx).status() },
  }
}
