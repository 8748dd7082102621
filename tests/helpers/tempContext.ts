// A real AppContext on a throwaway data directory (real SQLite file, real conf settings file).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createAppContext, type AppContext } from '../../main/context'
import { createDispatcher, type Dispatch } from '../../main/dispatch'
import { createHandlers } from '../../main/handlers'
import { createConfSettings } from '../../main/settings/confSettings'

export function tempDir(prefix = 'qt-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

export interface TempApp {
  ctx: AppContext
  dispatch: Dispatch
  dataDir: string
  /** Calls a channel and returns its value, throwing on `{ ok: false }`. */
  call<T = unknown>(channel: string, arg?: unknown): Promise<T>
  cleanup(): Promise<void>
}

export function tempApp(opts: { seed?: boolean; dataDir?: string } = {}): TempApp {
  const dataDir = opts.dataDir ?? tempDir()
  const ctx = createAppContext({ mode: 'browser', dataDir, settings: createConfSettings(dataDir), seed: opts.seed ?? false })
  const dispatch = createDispatcher(createHandlers(ctx, { engineBackends: () => ['cpu'] }), () => {})
  return {
    ctx,
    dispatch,
    dataDir,
    async call<T>(channel: string, arg?: unknown): Promise<T> {
      const r = await dispatch(channel, arg)
      if (!r.ok) throw Object.assign(new Error(r.error.message), { code: r.error.code, details: r.error.details })
      return r.value as T
    },
    async cleanup() {
      await ctx.close()
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true })
    },
  }
}
