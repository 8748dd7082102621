// The "over the model's token limit" check of the quality report. Token counts come from the training-set
// compiler's counter (main/datasets/tokenCounts.ts: the whole rendered sample — system prompt, chat template,
// question, answer, end token) for the project's chosen model. Without a chosen model the report says so
// instead of guessing a tokenizer. The limit is the compiler's default maximum length (what a run truncates
// to unless its settings say otherwise).
//
// Counts are cached by (model, template, system prompt, question, answer): after the first check only edited
// rows are tokenized again. Counting yields to the event loop between chunks so autosaves are not held up.
import type { Project } from '../../../preload/contract'
import { BUILD_DEFAULTS } from '../compiler/buildTrainingSet'
import { countTokensWith } from '../tokenCounts'
import { chatFormatFor, type TemplateChoice } from '../../tokenizer/ChatFormat'
import { loadTokenizer } from '../../tokenizer/loadTokenizer'
import type { CheckRow, TokenStage } from './checkDataset'

export type TokenCounter = (project: Project, rows: CheckRow[]) => Promise<TokenStage>

/** What the counter needs to know about a model: its name, folder and chat template choice. */
export interface ModelRef {
  name: string
  dir: string
  template: TemplateChoice
  /** Set when the model cannot be used now (still downloading, failed...). */
  unavailable?: string
}

export type ModelResolver = (modelId: number) => ModelRef | null

const CHUNK = 2000
const MAX_CACHE = 300_000

const yieldToEventLoop = () => new Promise<void>((r) => setImmediate(r))

export function createTokenCounter(resolve: ModelResolver, limit: number = BUILD_DEFAULTS.maxLength): TokenCounter {
  const cache = new Map<string, number | null>()
  return async (project, rows) => {
    if (project.modelId === null) return { status: { state: 'noModel' }, over: new Map() }
    const model = resolve(project.modelId)
    const unavailable = (reason: string): TokenStage => ({ status: { state: 'unavailable', reason }, over: new Map() })
    if (!model) return unavailable('The chosen model is no longer installed. Choose a model on the Models page.')
    if (model.unavailable) return unavailable(model.unavailable)
    let format
    try {
      format = chatFormatFor(await loadTokenizer(model.dir), model.template)
    } catch (err) {
      return unavailable(err instanceof Error ? err.message : String(err))
    }
    if (cache.size > MAX_CACHE) cache.clear()
    const template = typeof model.template === 'string' ? model.template : `custom:${model.template.jinja}`
    const prefix = `${model.dir}\u0000${template}\u0000${project.systemPrompt}\u0000`
    const keyOf = (r: CheckRow) => `${prefix}${r.question}\u0000${r.answer}`
    const todo = rows.filter((r) => !cache.has(keyOf(r)))
    for (let i = 0; i < todo.length; i += CHUNK) {
      const chunk = todo.slice(i, i + CHUNK)
      const counts = countTokensWith(
        format,
        chunk.map((r) => ({ id: r.id, question: r.question, answer: r.answer })),
        { systemPrompt: project.systemPrompt },
      )
      chunk.forEach((r, k) => cache.set(keyOf(r), counts[k]!.tokens))
      if (i + CHUNK < todo.length) await yieldToEventLoop()
    }
    const over = new Map<number, number>()
    let maxTokens = 0
    for (const r of rows) {
      const n = cache.get(keyOf(r)) ?? null
      if (n === null) continue
      if (n > maxTokens) maxTokens = n
      if (n > limit) over.set(r.id, n)
    }
    return { status: { state: 'checked', modelName: model.name, limit, overCount: over.size, maxTokens }, over }
  }
}

/** The template a model row's info asks for ('model' = the model's own), read defensively. */
export function templateFromInfo(info: Record<string, unknown>): TemplateChoice {
  const t = info.templateChoice ?? (info.template as { choice?: unknown } | undefined)?.choice
  if (t === 'llama3' || t === 'chatml' || t === 'model') return t
  if (typeof t === 'object' && t !== null && typeof (t as { jinja?: unknown }).jinja === 'string') return { jinja: (t as { jinja: string }).jinja }
  return 'model'
}
