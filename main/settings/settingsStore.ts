// Settings behind a small interface: electron-store in the desktop app (main/index.ts creates it),
// `conf` (same API, no Electron) in browser mode, the CLI and tests. Values are validated on read, so a
// hand-edited or older settings file falls back to defaults per key instead of breaking start-up.
import { z } from 'zod'
import type { Settings } from '../../preload/contract'

export const DEFAULT_SETTINGS: Settings = {
  language: 'zh-TW',
  theme: 'system',
  lastProjectId: null,
  modelsDir: '',
  device: 'auto',
}

export const settingsSchema = z.object({
  language: z.enum(['zh-TW', 'en']),
  theme: z.enum(['system', 'light', 'dark']),
  lastProjectId: z.number().int().positive().nullable(),
  modelsDir: z.string().max(4096),
  device: z.union([z.literal('auto'), z.literal('cpu'), z.string().regex(/^cuda:\d+$/)]) as z.ZodType<Settings['device']>,
}) satisfies z.ZodType<Settings>

/** The subset of the conf / electron-store API we use. */
export interface KeyValueBackend {
  get(key: string): unknown
  set(key: string, value: unknown): void
}

export interface SettingsStore {
  get(): Settings
  set(patch: Partial<Settings>): Settings
}

export function createSettingsStore(backend: KeyValueBackend): SettingsStore {
  const keys = Object.keys(DEFAULT_SETTINGS) as (keyof Settings)[]
  const get = (): Settings => {
    const out: Record<string, unknown> = {}
    for (const k of keys) {
      const v = backend.get(k)
      const ok = settingsSchema.shape[k].safeParse(v)
      out[k] = ok.success ? ok.data : DEFAULT_SETTINGS[k]
    }
    return out as unknown as Settings
  }
  return {
    get,
    set(patch) {
      const merged = settingsSchema.parse({ ...get(), ...patch })
      for (const k of Object.keys(patch) as (keyof Settings)[]) backend.set(k, merged[k])
      return merged
    },
  }
}
