// compileDataset: a project's rows + system prompt + a model folder → train.qtds, val.qtds and summary.json in
// outDir (each written atomically). Plain arrays in, files and a summary out: no database access here.
import { createHash } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { AppError } from '../../errors'
import { chatFormatFor, type ChatFormat, type TemplateChoice } from '../../tokenizer/ChatFormat'
import { loadTokenizer } from '../../tokenizer/loadTokenizer'
import { TrainingSetBuilder, type BuildOptions, type ResolvedBuildOptions } from './buildTrainingSet'
import { encodeQtds } from './qtds'
import { writeFileAtomic } from './writeFileAtomic'
import type { DatasetRow, RowId, RowProblem, RowProblemCode } from './rows'
import { assignValidation } from './split'

export const TRAIN_FILE = 'train.qtds'
export const VALIDATION_FILE = 'val.qtds'
export const SUMMARY_FILE = 'summary.json'

export interface CompileOptions extends BuildOptions {
  /** The model folder (tokenizer.json, tokenizer_config.json, generation_config.json). */
  modelDir: string
  /** Where train.qtds, val.qtds and summary.json go (created when missing). */
  outDir: string
  /** Default 'model' (the model's own template; an error names the fix when it has none). */
  template?: TemplateChoice
  /** Share of rows held out for validation, 0 <= f < 1 (default 0.1). */
  validationFraction?: number
  /** Split seed (default 42). */
  seed?: number
  /** Called every few thousand rows. */
  onProgress?: (rowsDone: number, rowsTotal: number) => void
  signal?: AbortSignal
}

export interface SplitSummary {
  file: string
  samples: number
  tokens: number
  targetTokens: number
  longest: number
  /** Sample index → row id, in file order. */
  rowIds: RowId[]
}

export interface CompileSummary {
  version: 1
  compiledAt: string
  modelDir: string
  tokenizer: { vocabSize: number; bosId: number | null; eosIds: number[]; padId: number | null; endOfTurnId: number; stopIds: number[] }
  template: { name: string; source: string; warnings: string[]; perConversationRender: boolean }
  options: ResolvedBuildOptions & { validationFraction: number; seed: number }
  rows: { total: number; used: number; skipped: number; truncated: number }
  skippedByReason: Partial<Record<RowProblemCode, number>>
  /** One line per row left out (disabled rows included), in input order. */
  skipped: RowProblem[]
  truncatedRowIds: RowId[]
  train: SplitSummary
  validation: SplitSummary
  /** Sample lengths (tokens, after truncation) of both splits: counts[i] = samples with length in (i*binWidth, (i+1)*binWidth]. */
  lengthHistogram: { binWidth: number; counts: number[] }
  /** Samples where a text piece was encoded apart from its neighbours (see ChatFormat); normally 0. */
  boundaryFallbacks: number
  /** sha256 over train.qtds then val.qtds: identical inputs give identical files. */
  fingerprint: string
  elapsedMs: number
}

const HISTOGRAM_BINS = 16
const YIELD_EVERY = 2000

function checkSplitOptions(fraction: number, seed: number): void {
  if (typeof fraction !== 'number' || !(fraction >= 0 && fraction < 1)) {
    throw new AppError('INVALID_ARGUMENT', `The validation share must be at least 0 and below 1, not ${String(fraction)}.`)
  }
  if (!Number.isSafeInteger(seed)) throw new AppError('INVALID_ARGUMENT', `The split seed must be a whole number, not ${String(seed)}.`)
}

/** compileDataset with an already built chat format (the tokenizer is loaded by the caller). */
export async function compileWithFormat(format: ChatFormat, rows: readonly DatasetRow[] | readonly unknown[], options: Omit<CompileOptions, 'modelDir' | 'template'>): Promise<CompileSummary> {
  const started = performance.now()
  const fraction = options.validationFraction ?? 0.1
  const seed = options.seed ?? 42
  checkSplitOptions(fraction, seed)
  if (!Array.isArray(rows)) throw new AppError('INVALID_ARGUMENT', 'The rows to compile must be a list.')
  const builder = new TrainingSetBuilder(format, options)

  for (let i = 0; i < rows.length; i++) {
    builder.add(rows[i], i)
    if ((i + 1) % YIELD_EVERY === 0) {
      options.onProgress?.(i + 1, rows.length)
      await new Promise((r) => setImmediate(r))
      if (options.signal?.aborted) throw new AppError('CANCELLED', 'Compiling the training set was cancelled.')
    }
  }
  options.onProgress?.(rows.length, rows.length)

  const isVal = assignValidation(builder.sampleRowIds, seed, fraction)
  const trainIdx: number[] = []
  const valIdx: number[] = []
  isVal.forEach((v, i) => (v ? valIdx : trainIdx).push(i))

  const store = builder.store
  const vocabSize = format.tokenizer.vocabSize
  const trainBytes = encodeQtds(store, trainIdx, vocabSize)
  const valBytes = encodeQtds(store, valIdx, vocabSize)
  const hash = createHash('sha256')
  for (const b of [...trainBytes, ...valBytes]) hash.update(b)

  const outDir = resolve(options.outDir)
  await mkdir(outDir, { recursive: true })
  await writeFileAtomic(join(outDir, TRAIN_FILE), trainBytes)
  await writeFileAtomic(join(outDir, VALIDATION_FILE), valBytes)

  const o = builder.options
  const binWidth = Math.ceil(o.maxLength / HISTOGRAM_BINS)
  const counts = new Array<number>(HISTOGRAM_BINS).fill(0)
  for (let i = 0; i < store.count; i++) counts[Math.min(HISTOGRAM_BINS - 1, Math.max(0, Math.ceil(store.length(i) / binWidth) - 1))]++
  const splitSummary = (file: string, idx: number[]): SplitSummary => {
    let tokens = 0
    let targetTokens = 0
    let longest = 0
    for (const i of idx) {
      tokens += store.length(i)
      targetTokens += builder.sampleTargets[i]
      longest = Math.max(longest, store.length(i))
    }
    return { file, samples: idx.length, tokens, targetTokens, longest, rowIds: idx.map((i) => builder.sampleRowIds[i]) }
  }
  const skippedByReason: Partial<Record<RowProblemCode, number>> = {}
  for (const p of builder.problems) skippedByReason[p.reason] = (skippedByReason[p.reason] ?? 0) + 1
  const t = format.tokenizer
  const summary: CompileSummary = {
    version: 1,
    compiledAt: new Date().toISOString(),
    modelDir: t.dir,
    tokenizer: { vocabSize, bosId: t.bos?.id ?? null, eosIds: t.eosIds, padId: t.pad?.id ?? null, endOfTurnId: format.endOfTurnId, stopIds: format.stopIds },
    template: { name: format.templateName, source: format.templateSource, warnings: format.warnings, perConversationRender: !format.analysis.contentIndependent },
    options: { ...o, validationFraction: fraction, seed },
    rows: { total: rows.length, used: store.count, skipped: builder.problems.length, truncated: builder.truncatedRowIds.length },
    skippedByReason,
    skipped: builder.problems,
    truncatedRowIds: builder.truncatedRowIds,
    train: splitSummary(TRAIN_FILE, trainIdx),
    validation: splitSummary(VALIDATION_FILE, valIdx),
    lengthHistogram: { binWidth, counts },
    boundaryFallbacks: builder.boundaryFallbacks,
    fingerprint: hash.digest('hex'),
    elapsedMs: 0,
  }
  summary.elapsedMs = Math.round(performance.now() - started)
  await writeFileAtomic(join(outDir, SUMMARY_FILE), [JSON.stringify(summary, null, 1)])
  return summary
}

/**
 * Compiles a project's rows into the engine's training files. Rows: { id, question, answer, enabled } or
 * { id, messages, enabled }; bad rows are reported in the summary, never thrown. Throws AppError only for a
 * missing/broken tokenizer, an unusable template or bad options.
 */
export async function compileDataset(rows: readonly DatasetRow[] | readonly unknown[], options: CompileOptions): Promise<CompileSummary> {
  const tokenizer = await loadTokenizer(options.modelDir)
  const format = chatFormatFor(tokenizer, options.template ?? 'model')
  return compileWithFormat(format, rows, options)
}
