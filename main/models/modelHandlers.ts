// models:* and hub:* channels. Arguments are validated here; the work is in modelService.ts.
import { z } from 'zod'
import type { AppContext } from '../context'
import type { Handlers } from '../handlerTypes'
import { modelService, type ModelServiceOptions } from './modelService'

type ModelChannels =
  | 'models:list'
  | 'models:get'
  | 'models:inspectFolder'
  | 'models:import'
  | 'models:pickFolder'
  | 'models:delete'
  | 'models:setTemplate'
  | 'models:devices'
  | 'hub:presets'
  | 'hub:download'
  | 'hub:pause'
  | 'hub:resume'
  | 'hub:cancel'
  | 'hub:tokenStatus'
  | 'hub:setToken'
  | 'hub:clearToken'

const id = z.number().int().positive()
const path = z.string().trim().min(1, 'Type the path of the model folder').max(4096)

export function modelHandlers(ctx: AppContext, opts: ModelServiceOptions = {}): Pick<Handlers, ModelChannels> {
  const svc = () => modelService(ctx, opts)
  // Created now so that downloads interrupted by the last exit continue without waiting for the Models page.
  if (ctx.status.state === 'ready') svc()
  return {
    'models:list': { schema: z.void(), handle: () => svc().list() },
    'models:get': { schema: z.object({ id }), handle: ({ id }) => svc().entry(id) },
    'models:inspectFolder': { schema: z.object({ path }), handle: ({ path }) => svc().inspectFolder(path) },
    'models:import': {
      schema: z.object({ path, name: z.string().max(200).optional() }),
      handle: ({ path, name }) => svc().importFolder(path, name),
    },
    'models:pickFolder': { schema: z.void(), handle: () => svc().pickFolder() },
    'models:delete': { schema: z.object({ id }), handle: ({ id }) => svc().delete(id) },
    'models:setTemplate': {
      schema: z.object({ id, template: z.enum(['model', 'llama3', 'chatml']) }),
      handle: ({ id, template }) => svc().setTemplate(id, template),
    },
    'models:devices': { schema: z.void(), handle: () => svc().devices() },
    'hub:presets': {
      schema: z.void(),
      handle: async () => [...(await import('./hub/presets')).HUB_PRESETS],
    },
    'hub:download': {
      schema: z.object({ repoId: z.string().trim().min(1, 'Type a repo id such as Qwen/Qwen2.5-0.5B-Instruct').max(300), revision: z.string().max(200).optional() }),
      handle: ({ repoId, revision }) => svc().download(repoId, revision),
    },
    'hub:pause': { schema: z.object({ modelId: id }), handle: ({ modelId }) => svc().pause(modelId) },
    'hub:resume': { schema: z.object({ modelId: id }), handle: ({ modelId }) => svc().resume(modelId) },
    'hub:cancel': { schema: z.object({ modelId: id }), handle: ({ modelId }) => svc().cancel(modelId) },
    'hub:tokenStatus': { schema: z.void(), handle: () => svc().tokenStatus() },
    'hub:setToken': {
      // Only the shape is checked; the value is never echoed back in an error.
      schema: z.object({
        token: z
          .string()
          .trim()
          .regex(/^hf_[A-Za-z0-9_-]{8,250}$/, { message: 'A Hugging Face access token starts with "hf_" followed by letters and digits (copy it again from the Hugging Face token page).' }),
      }),
      handle: ({ token }) => svc().setToken(token),
    },
    'hub:clearToken': { schema: z.void(), handle: () => svc().clearToken() },
  }
}
