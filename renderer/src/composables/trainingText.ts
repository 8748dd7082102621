// Text helpers of the training page: main's two-language texts (presets, explanations, problems, verdicts) in the
// UI language, and number formats for losses, learning rates and speeds.
import { useI18n } from 'vue-i18n'
import type { LocalText, RunStatus, SettingKey, TrainingSettings } from '../../../preload/contract'

/** Picks the UI language's text of a LocalText (English when that language is missing). */
export function pickText(text: LocalText | null | undefined, locale: string): string {
  if (!text) return ''
  return (locale === 'zh-TW' ? text['zh-TW'] : text.en) || text.en || text['zh-TW']
}

export function useLocalText(): (text: LocalText | null | undefined) => string {
  const { locale } = useI18n()
  return (text) => pickText(text, locale.value)
}

/** 2.345, 0.0123, 123 */
export function formatLoss(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—'
  if (Math.abs(x) >= 100) return x.toFixed(0)
  if (Math.abs(x) >= 0.01) return x.toFixed(3)
  return x.toExponential(2)
}

/** 5e-5, 2e-4, 0.003 → 3e-3 */
export function formatLr(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—'
  if (x === 0) return '0'
  const [m, e] = x.toExponential(2).split('e')
  const mantissa = String(Number(m))
  return `${mantissa}e${Number(e)}`
}

export function formatRate(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—'
  return x >= 100 ? Math.round(x).toLocaleString() : x.toFixed(1)
}

/** A setting's value as the settings table and the diff show it. */
export function formatSetting(key: SettingKey | string, value: unknown): string {
  if (value === null || value === undefined) return '—'
  if (Array.isArray(value)) return value.join(', ')
  if (typeof value === 'boolean') return value ? '✓' : '✗'
  if (typeof value === 'number' && (key === 'lr' || key === 'eps')) return formatLr(value)
  return String(value)
}

export const ACTIVE: readonly RunStatus[] = ['queued', 'preparing', 'loading', 'training', 'evaluating']
export const isActive = (s: RunStatus | null | undefined): boolean => s !== null && s !== undefined && ACTIVE.includes(s)

/** The settings of `s` that differ from `base` (what the UI sends as changes on top of a preset). */
export function settingsChanges(base: TrainingSettings, s: TrainingSettings): Partial<TrainingSettings> {
  const out: Record<string, unknown> = {}
  for (const k of Object.keys(s) as SettingKey[]) {
    if (JSON.stringify(s[k]) !== JSON.stringify(base[k])) out[k] = structuredClone(s[k])
  }
  return out as Partial<TrainingSettings>
}
