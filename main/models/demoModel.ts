// The bundled demo model: a tiny random Llama-architecture model whose byte-level BPE tokenizer is trained on the
// zh-TW sample project (Llama 3 control tokens and chat template). Created deterministically in the data folder on
// first use (about 2 MB, a fraction of a second), registered with source 'demo'. No weight has seen the sample (only
// the tokenizer's merges come from its text): every weight is seeded random, normal with std 0.02 except lm_head's
// 1/sqrt(hidden) (see demoModelOptions).
// `npm run finetune` uses it when given no model, with the "demo" preset (main/training/presets.ts).
//
// Measured (tests/bench/demo.bench.ts, 2026-11-28, dev VM AMD EPYC 2 cores, Node 20.20.2, shared, load ~4): the demo
// preset (LoRA r 64 on all seven linears, lr 1.5e-3, 24 epochs, every token) takes the training answers' loss from
// 7.41 to 0.22 in 60 s of CPU for the training steps; greedy answers to all 45 trained questions then reproduce the
// trained answers (character ROUGE-L mean 1.00, all 45 >= 0.9); the 5 unseen questions score 0.08 (it memorises, it
// does not generalise). The whole `npm run finetune`: 65-69 s user+sys (39 s wall on a quiet machine), training loss
// 7.37 -> 0.18. Version 1 (lm_head std 0.02, r 16, 16 epochs) reached 6.95 -> 5.74 and ROUGE-L 0.08.
// Details and the experiments: tests/bench/README.md.
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { AppContext } from '../context'
import { TINY_TOKENIZER_DEFAULT_VOCAB, writeTinyTokenizer, tinyTokenizerSpec } from '../tokenizer/tiny/writeTinyTokenizer'
import { inspectModelFolder } from './inspectModelFolder'
import { getModel, MODEL_MARKER, type ModelForUse, type StoredModelInfo } from './modelRegistry'
import { roundToDtype, type TensorToWrite } from './safetensors'
import { writeTinyModel, type TinyModelOptions } from './tiny/writeTinyModel'

/** Bump when the generator's options change: existing demo folders are then rebuilt. */
export const DEMO_MODEL_VERSION = 2
/** Stored name (the UI shows a localized label for source 'demo'). */
export const DEMO_MODEL_NAME = '示範小模型 (CPU)'
export const DEMO_FOLDER = 'qa-tuner-demo'

/** What the benchmark (tests/bench/demo.bench.ts) may vary; the shipped demo model is demoModelOptions() with none. */
export interface DemoModelVariant extends Partial<Omit<TinyModelOptions, 'transform' | 'bosTokenId' | 'eosTokenId'>> {
  /** Std of lm_head's normal init (the other linears and the embeddings use initStd). */
  lmHeadStd?: number
  /** Std of the token embeddings' normal init. */
  embedStd?: number
}

export interface DemoModelOptions extends TinyModelOptions {
  vocabSize: number
  initStd: number
  lmHeadStd: number
  embedStd: number
}

export function demoModelOptions(variant: DemoModelVariant = {}): DemoModelOptions {
  const spec = tinyTokenizerSpec('llama3', variant.vocabSize ?? TINY_TOKENIZER_DEFAULT_VOCAB)
  const hiddenSize = variant.hiddenSize ?? 128
  return {
    architecture: 'llama',
    hiddenSize,
    intermediateSize: 344,
    numLayers: 4,
    numHeads: 4,
    numKvHeads: 2,
    maxPosition: 2048,
    ropeTheta: 500_000,
    dtype: 'bfloat16',
    seed: 20240418,
    initStd: 0.02,
    // Fan-in init for the (frozen) output layer: logits of about unit scale at the start. With 0.02 at width 128 a
    // logit could never rise more than ~2.5 above the others, which capped the demo's loss near 5 (DEMO_MODEL_VERSION 1).
    lmHeadStd: 1 / Math.sqrt(hiddenSize),
    embedStd: 0.02,
    ...variant,
    vocabSize: spec.vocabSize,
    bosTokenId: spec.bosTokenId ?? undefined,
    eosTokenId: spec.eosTokenId,
  }
}

/** Writes the demo model folder (model first; the tokenizer's generation_config.json, with the same ids, wins). */
export async function writeDemoModel(dir: string, variant: DemoModelVariant = {}): Promise<void> {
  const { lmHeadStd, embedStd, ...opts } = demoModelOptions(variant)
  // lm_head and the embeddings are drawn with initStd like every weight, then rescaled to their own std.
  const rescale: Record<string, number> = { 'lm_head.weight': lmHeadStd / opts.initStd, 'model.embed_tokens.weight': embedStd / opts.initStd }
  const transform = (t: TensorToWrite): TensorToWrite => {
    const f = rescale[t.name]
    if (f === undefined || f === 1) return t
    return { ...t, data: roundToDtype(t.data.map((x) => x * f), t.dtype) }
  }
  await writeTinyModel(dir, { ...opts, transform })
  await writeTinyTokenizer(dir, { flavour: 'llama3', vocabSize: opts.vocabSize })
  await writeFile(join(dir, MODEL_MARKER), `${JSON.stringify({ version: 1, source: 'demo', demoVersion: DEMO_MODEL_VERSION }, null, 2)}\n`)
}

function demoFolderOk(dir: string): boolean {
  try {
    const m = JSON.parse(readFileSync(join(dir, MODEL_MARKER), 'utf8')) as { demoVersion?: number }
    return m.demoVersion === DEMO_MODEL_VERSION && ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'].every((f) => existsSync(join(dir, f)))
  } catch {
    return false
  }
}

const pending = new Map<string, Promise<ModelForUse>>()

/** The demo model, created and registered on first use (concurrent callers share one creation). */
export function ensureDemoModel(ctx: AppContext): Promise<ModelForUse> {
  const key = ctx.databasePath
  let p = pending.get(key)
  if (!p) {
    p = create(ctx).finally(() => pending.delete(key))
    pending.set(key, p)
  }
  return p
}

async function create(ctx: AppContext): Promise<ModelForUse> {
  const repo = ctx.repos().models
  const dir = join(ctx.dataDir, 'models', DEMO_FOLDER)
  const row = repo.listBySource('demo')[0]
  const info = row ? (row.info as StoredModelInfo) : null
  if (row && row.path === dir && row.status === 'ready' && info?.demoVersion === DEMO_MODEL_VERSION && info.details && demoFolderOk(dir)) {
    return getModel(ctx, row.id)
  }
  if (!demoFolderOk(dir)) {
    await mkdir(join(ctx.dataDir, 'models'), { recursive: true })
    const tmp = `${dir}.tmp-${process.pid}`
    await rm(tmp, { recursive: true, force: true })
    await writeDemoModel(tmp)
    await rm(dir, { recursive: true, force: true })
    await rename(tmp, dir)
  }
  const inspected = await inspectModelFolder(dir)
  const stored: StoredModelInfo = { details: inspected.details, error: null, demoVersion: DEMO_MODEL_VERSION }
  const fields = { architecture: inspected.details.architecture, sizeBytes: inspected.sizeBytes, status: 'ready' as const, info: stored as Record<string, unknown> }
  let id: number
  if (row) {
    repo.update(row.id, { ...fields, path: dir }) // the data folder may have moved
    id = row.id
  } else {
    id = repo.create({ name: DEMO_MODEL_NAME, path: dir, source: 'demo', ...fields })
  }
  ctx.events.emit('models:changed', { modelId: id })
  return getModel(ctx, id)
}
