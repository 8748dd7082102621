// Rows → tokenized training samples with their loss masks, in memory (compileDataset writes them to disk).
//
// Mask (native/engine/FORMATS.md): mask[t] = 1 means token t is a target. "answers": every assistant answer's
// tokens and the end-of-turn token after it (<|eot_id|>, <|im_end|>), so the model learns to stop. "all": every
// token but the first (the original tutorial's labels = input_ids). Never the first token of a sample.
import { AppError } from '../../errors'
import type { ChatFormat } from '../../tokenizer/ChatFormat'
import { SampleStore } from './qtds'
import { prepareRow, type RowId, type RowProblem, type RowProblemCode } from './rows'

export type TrainOn = 'answers' | 'all'
/** Over-long samples: 'truncate' cuts the end (the answer's tail), 'skip' leaves the row out. */
export type Truncation = 'truncate' | 'skip'

export interface BuildOptions {
  /** The project's system prompt; empty = no system message. */
  systemPrompt?: string
  /** Default 'answers'. */
  trainOn?: TrainOn
  /** Maximum tokens per sample (default 1024). */
  maxLength?: number
  /** Default 'truncate'. */
  truncation?: Truncation
  /** Texts longer than this many characters are reported, not tokenized (default 100,000). */
  maxFieldChars?: number
}

export type ResolvedBuildOptions = Required<BuildOptions>

export const BUILD_DEFAULTS: ResolvedBuildOptions = {
  systemPrompt: '',
  trainOn: 'answers',
  maxLength: 1024,
  truncation: 'truncate',
  maxFieldChars: 100_000,
}

export function resolveBuildOptions(o: BuildOptions): ResolvedBuildOptions {
  const r: ResolvedBuildOptions = {
    systemPrompt: o.systemPrompt ?? BUILD_DEFAULTS.systemPrompt,
    trainOn: o.trainOn ?? BUILD_DEFAULTS.trainOn,
    maxLength: o.maxLength ?? BUILD_DEFAULTS.maxLength,
    truncation: o.truncation ?? BUILD_DEFAULTS.truncation,
    maxFieldChars: o.maxFieldChars ?? BUILD_DEFAULTS.maxFieldChars,
  }
  if (typeof r.systemPrompt !== 'string') throw new AppError('INVALID_ARGUMENT', 'The system prompt must be text.')
  if (r.systemPrompt.length > r.maxFieldChars) {
    throw new AppError('INVALID_ARGUMENT', `The system prompt has ${r.systemPrompt.length} characters; the limit is ${r.maxFieldChars}. Shorten it.`)
  }
  if (r.trainOn !== 'answers' && r.trainOn !== 'all') throw new AppError('INVALID_ARGUMENT', `trainOn must be "answers" or "all", not ${String(r.trainOn)}.`)
  if (r.truncation !== 'truncate' && r.truncation !== 'skip') throw new AppError('INVALID_ARGUMENT', `truncation must be "truncate" or "skip", not ${String(r.truncation)}.`)
  if (!Number.isInteger(r.maxLength) || r.maxLength < 8 || r.maxLength > 1_048_576) {
    throw new AppError('INVALID_ARGUMENT', `The maximum length must be a whole number of tokens from 8 to 1048576, not ${String(r.maxLength)}.`)
  }
  if (!Number.isInteger(r.maxFieldChars) || r.maxFieldChars < 1) throw new AppError('INVALID_ARGUMENT', 'maxFieldChars must be a positive whole number.')
  return r
}

/** The samples built so far, the rows left out and why. */
export class TrainingSetBuilder {
  readonly format: ChatFormat
  readonly options: ResolvedBuildOptions
  readonly store = new SampleStore()
  /** Row id of each sample (sample index → row id). */
  readonly sampleRowIds: RowId[] = []
  /** Target tokens of each sample. */
  readonly sampleTargets: number[] = []
  readonly problems: RowProblem[] = []
  readonly truncatedRowIds: RowId[] = []
  /** Samples where a text piece could not be matched to the whole-string tokenization (encoded apart, still exact). */
  boundaryFallbacks = 0
  rowsSeen = 0
  private readonly seen = new Set<string>()

  constructor(format: ChatFormat, options: BuildOptions = {}) {
    this.format = format
    this.options = resolveBuildOptions(options)
  }

  private skip(rowId: RowId | null, index: number, reason: RowProblemCode, detail: string): void {
    this.problems.push({ rowId, index, reason, detail })
  }

  /** Adds one row (index = its position in the input). Bad rows become problems; nothing throws for row data. */
  add(row: unknown, index: number): void {
    this.rowsSeen++
    const o = this.options
    const prepared = prepareRow(row, o.systemPrompt, o.maxFieldChars)
    if (!prepared.ok) {
      this.skip(prepared.id, index, prepared.reason, prepared.detail)
      return
    }
    const key = `${typeof prepared.id}:${prepared.id}`
    if (this.seen.has(key)) {
      this.skip(prepared.id, index, 'duplicateId', `another row already has the id ${String(prepared.id)}`)
      return
    }
    this.seen.add(key)

    let encoded
    try {
      encoded = this.format.encode(prepared.messages)
    } catch (err) {
      if (!(err instanceof AppError)) throw err
      this.skip(prepared.id, index, 'templateError', err.message)
      return
    }
    const { ids, answers } = encoded
    const full = ids.length
    let len = full
    if (full > o.maxLength) {
      if (o.truncation === 'skip') {
        this.skip(prepared.id, index, 'tooLong', `${full} tokens; the limit is ${o.maxLength}`)
        return
      }
      const firstAnswer = answers.length > 0 ? answers[0].start : full
      if (firstAnswer >= o.maxLength) {
        this.skip(prepared.id, index, 'promptTooLong', `the prompt alone has ${firstAnswer} tokens; the limit is ${o.maxLength}`)
        return
      }
      len = o.maxLength
      this.truncatedRowIds.push(prepared.id)
    }
    if (encoded.boundaryFallback) this.boundaryFallbacks++
    const at = this.store.push(ids, len)
    const mask = this.store.mask
    let targets = 0
    if (o.trainOn === 'all') {
      mask.fill(1, at + 1, at + len)
      targets = len - 1
    } else {
      for (const a of answers) {
        const s = Math.max(1, a.start)
        const e = Math.min(a.end, len)
        if (e > s) mask.fill(1, at + s, at + e)
      }
      for (let t = at; t < at + len; t++) targets += mask[t]
    }
    this.sampleRowIds.push(prepared.id)
    this.sampleTargets.push(targets)
  }
}
