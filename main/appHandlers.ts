// app:* and settings:* channels.
import { z } from 'zod'
import type { AppContext } from './context'
import type { Handlers } from './handlerTypes'
import { appVersion } from './paths'
import { settingsSchema } from './settings/settingsStore'

export function appHandlers(ctx: AppContext, engineBackends: () => string[]): Pick<Handlers, 'app:info' | 'app:status' | 'settings:get' | 'settings:set'> {
  return {
    'app:info': {
      schema: z.void(),
      handle: () => ({
        name: 'QA Tuner',
        version: appVersion(),
        mode: ctx.mode,
        platform: `${process.platform}-${process.arch}`,
        dataDir: ctx.dataDir,
        databasePath: ctx.databasePath,
        engineBackends: engineBackends(),
      }),
    },
    'app:status': { schema: z.void(), handle: () => ctx.status },
    'settings:get': { schema: z.void(), handle: () => ctx.settings.get() },
    'settings:set': {
      schema: settingsSchema.partial().strict(),
      handle: (patch) => {
        const s = ctx.settings.set(patch)
        ctx.events.emit('settings:changed', s)
        return s
      },
    },
  }
}
