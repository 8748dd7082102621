// Chat sampling settings: defaults, limits, normalisation of stored values, and what the engine takes.
import type { SamplingSettings } from '../../preload/contract'
import type { SamplingConfig } from '../engine/types'

/** Defaults of a new chat: common chat-UI values (HF generation defaults with a mild repetition penalty). */
export const DEFAULT_SAMPLING: SamplingSettings = {
  greedy: false,
  temperature: 0.7,
  topP: 0.9,
  topK: 40,
  maxNewTokens: 512,
  repetitionPenalty: 1.1,
}

export const SAMPLING_LIMITS = { maxNewTokens: 4096, temperature: 2, topK: 1000, repetitionPenalty: 2 } as const

function clamp(v: unknown, lo: number, hi: number, fallback: number, integer = false): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) return fallback
  const x = Math.min(hi, Math.max(lo, v))
  return integer ? Math.round(x) : x
}

/** Any stored or requested value -> valid settings (missing or bad fields take the defaults). */
export function normalizeSampling(raw: unknown, base: SamplingSettings = DEFAULT_SAMPLING): SamplingSettings {
  const r = (raw && typeof raw === 'object' ? raw : {}) as Partial<Record<keyof SamplingSettings, unknown>>
  return {
    greedy: typeof r.greedy === 'boolean' ? r.greedy : base.greedy,
    temperature: clamp(r.temperature, 0, SAMPLING_LIMITS.temperature, base.temperature),
    topP: clamp(r.topP, 0.01, 1, base.topP),
    topK: clamp(r.topK, 0, SAMPLING_LIMITS.topK, base.topK, true),
    maxNewTokens: clamp(r.maxNewTokens, 1, SAMPLING_LIMITS.maxNewTokens, base.maxNewTokens, true),
    repetitionPenalty: clamp(r.repetitionPenalty, 1, SAMPLING_LIMITS.repetitionPenalty, base.repetitionPenalty),
  }
}

/** The engine's sampling config. Greedy (or temperature 0) = argmax; top-k is capped at the vocabulary. */
export function engineSampling(s: SamplingSettings, stopIds: readonly number[], vocabSize: number, seed: number, maxNewTokens = s.maxNewTokens): SamplingConfig {
  const greedy = s.greedy || s.temperature === 0
  return {
    maxNewTokens,
    temperature: greedy ? 0 : s.temperature,
    topK: greedy ? 0 : Math.min(s.topK, vocabSize),
    topP: greedy ? 1 : s.topP,
    repetitionPenalty: s.repetitionPenalty,
    stopIds: [...stopIds],
    seed,
  }
}
