// Writes a tiny, random, REAL Hugging Face model folder: config.json (LlamaForCausalLM, MistralForCausalLM or
// Qwen2ForCausalLM), generation_config.json and safetensors weights (one file, or shards with
// model.safetensors.index.json). Weights are seeded and deterministic: the same options give the same bytes.
// Used by the engine tests (no downloads) and for the bundled demo model. Tokenizer files are not written here
// (main/tokenizer/ generates the tiny tokenizer); vocab size and special-token ids are parameters so both agree.
import { mkdir, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { roundToDtype, writeSafetensors, type SafetensorsDtype, type TensorToWrite } from '../safetensors'

export type TinyArchitecture = 'llama' | 'qwen2' | 'mistral'
export type TinyDtype = 'bfloat16' | 'float16' | 'float32'

export interface TinyModelOptions {
  architecture?: TinyArchitecture // default 'llama'
  vocabSize?: number // default 256
  hiddenSize?: number // default 64
  intermediateSize?: number // default 128
  numLayers?: number // default 2
  numHeads?: number // default 4
  numKvHeads?: number // default 2 (GQA)
  headDim?: number // default hiddenSize / numHeads (written to config.json only when it differs)
  maxPosition?: number // default 512
  ropeTheta?: number // default 10000 (qwen2: 1000000)
  rmsNormEps?: number // default 1e-5 (qwen2: 1e-6)
  tieEmbeddings?: boolean // default false (no lm_head.weight tensor when true)
  /** Llama 3.1/3.2 style rope scaling ({ rope_type: 'llama3', ... } in config.json). */
  ropeScaling?: { factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPosition: number }
  dtype?: TinyDtype // default 'bfloat16': torch_dtype in config.json and the stored dtype
  shards?: number // default 1: model.safetensors; > 1: model-0000i-of-0000n.safetensors + index
  seed?: number // default 1
  initStd?: number // default 0.02: std of the normal init of linear and embedding weights
  bosTokenId?: number // default 1
  eosTokenId?: number | number[] // default 2
  padTokenId?: number | null // default null (not written)
  /** Test hook: change or drop (return null) a tensor before it is written. */
  transform?: (t: TensorToWrite) => TensorToWrite | null
}

export interface TinyModelInfo {
  dir: string
  config: Record<string, unknown>
  /** Written weight files, relative to dir. */
  files: string[]
  /** Tensor name -> shape, in file order. */
  shapes: Map<string, number[]>
}

interface Resolved extends Required<Omit<TinyModelOptions, 'ropeScaling' | 'transform' | 'padTokenId'>> {
  ropeScaling?: TinyModelOptions['ropeScaling']
  padTokenId: number | null
}

const ARCH: Record<TinyArchitecture, { className: string; modelType: string }> = {
  llama: { className: 'LlamaForCausalLM', modelType: 'llama' },
  mistral: { className: 'MistralForCausalLM', modelType: 'mistral' },
  qwen2: { className: 'Qwen2ForCausalLM', modelType: 'qwen2' },
}

const STORED: Record<TinyDtype, SafetensorsDtype> = { bfloat16: 'BF16', float16: 'F16', float32: 'F32' }

function resolve(o: TinyModelOptions): Resolved {
  const architecture = o.architecture ?? 'llama'
  const hiddenSize = o.hiddenSize ?? 64
  const numHeads = o.numHeads ?? 4
  const r: Resolved = {
    architecture,
    vocabSize: o.vocabSize ?? 256,
    hiddenSize,
    intermediateSize: o.intermediateSize ?? 128,
    numLayers: o.numLayers ?? 2,
    numHeads,
    numKvHeads: o.numKvHeads ?? 2,
    headDim: o.headDim ?? hiddenSize / numHeads,
    maxPosition: o.maxPosition ?? 512,
    ropeTheta: o.ropeTheta ?? (architecture === 'qwen2' ? 1_000_000 : 10_000),
    rmsNormEps: o.rmsNormEps ?? (architecture === 'qwen2' ? 1e-6 : 1e-5),
    tieEmbeddings: o.tieEmbeddings ?? false,
    ropeScaling: o.ropeScaling,
    dtype: o.dtype ?? 'bfloat16',
    shards: o.shards ?? 1,
    seed: o.seed ?? 1,
    initStd: o.initStd ?? 0.02,
    bosTokenId: o.bosTokenId ?? 1,
    eosTokenId: o.eosTokenId ?? 2,
    padTokenId: o.padTokenId ?? null,
  }
  const ints: [string, number][] = [['vocabSize', r.vocabSize], ['hiddenSize', r.hiddenSize], ['intermediateSize', r.intermediateSize],
    ['numLayers', r.numLayers], ['numHeads', r.numHeads], ['numKvHeads', r.numKvHeads], ['headDim', r.headDim], ['maxPosition', r.maxPosition], ['shards', r.shards]]
  for (const [k, v] of ints) if (!Number.isInteger(v) || v < 1) throw new Error(`writeTinyModel: ${k} must be a positive integer (got ${v})`)
  if (r.numHeads % r.numKvHeads !== 0) throw new Error(`writeTinyModel: numHeads (${r.numHeads}) must be a multiple of numKvHeads (${r.numKvHeads})`)
  if (r.headDim % 2 !== 0) throw new Error(`writeTinyModel: headDim must be even for RoPE (got ${r.headDim})`)
  return r
}

/** Seeded PRNG (mulberry32) with a Box-Muller normal: deterministic across platforms. */
export function seededRandom(seed: number): { uniform(): number; normal(): number } {
  let s = seed >>> 0
  const uniform = (): number => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  let spare: number | null = null
  const normal = (): number => {
    if (spare !== null) {
      const v = spare
      spare = null
      return v
    }
    const u = Math.max(uniform(), 1e-12)
    const v = uniform()
    const m = Math.sqrt(-2 * Math.log(u))
    spare = m * Math.sin(2 * Math.PI * v)
    return m * Math.cos(2 * Math.PI * v)
  }
  return { uniform, normal }
}

/** The config.json object Hugging Face transformers writes for these options. */
export function tinyModelConfig(opts: TinyModelOptions = {}): Record<string, unknown> {
  const r = resolve(opts)
  const arch = ARCH[r.architecture]
  const config: Record<string, unknown> = {
    architectures: [arch.className],
    model_type: arch.modelType,
    vocab_size: r.vocabSize,
    hidden_size: r.hiddenSize,
    intermediate_size: r.intermediateSize,
    num_hidden_layers: r.numLayers,
    num_attention_heads: r.numHeads,
    num_key_value_heads: r.numKvHeads,
    max_position_embeddings: r.maxPosition,
    rms_norm_eps: r.rmsNormEps,
    rope_theta: r.ropeTheta,
    rope_scaling: r.ropeScaling
      ? {
          rope_type: 'llama3',
          factor: r.ropeScaling.factor,
          low_freq_factor: r.ropeScaling.lowFreqFactor,
          high_freq_factor: r.ropeScaling.highFreqFactor,
          original_max_position_embeddings: r.ropeScaling.originalMaxPosition,
        }
      : null,
    hidden_act: 'silu',
    initializer_range: r.initStd,
    tie_word_embeddings: r.tieEmbeddings,
    bos_token_id: r.bosTokenId,
    eos_token_id: r.eosTokenId,
    torch_dtype: r.dtype,
    use_cache: true,
    transformers_version: '4.46.0',
  }
  if (r.headDim !== r.hiddenSize / r.numHeads) config.head_dim = r.headDim
  if (r.padTokenId !== null) config.pad_token_id = r.padTokenId
  if (r.architecture === 'llama') {
    config.attention_bias = false
    config.attention_dropout = 0.0
    config.mlp_bias = false
    config.pretraining_tp = 1
  } else if (r.architecture === 'mistral') {
    config.attention_dropout = 0.0
    config.sliding_window = null
  } else {
    config.attention_dropout = 0.0
    config.use_sliding_window = false
    config.sliding_window = r.maxPosition
    config.max_window_layers = r.numLayers
  }
  return config
}

/** Every weight tensor, in the order HF's save_pretrained groups them, as fp32 values rounded to the stored dtype. */
export function tinyModelTensors(opts: TinyModelOptions = {}): TensorToWrite[] {
  const r = resolve(opts)
  const dtype = STORED[r.dtype]
  const rng = seededRandom(r.seed)
  const { hiddenSize: C, intermediateSize: FF, vocabSize: V, numHeads: NH, numKvHeads: NKV, headDim: HS } = r
  const out: TensorToWrite[] = []
  const normal = (shape: number[], std: number): Float32Array => {
    const n = shape.reduce((a, b) => a * b, 1)
    const a = new Float32Array(n)
    for (let i = 0; i < n; i++) a[i] = rng.normal() * std
    return a
  }
  // RMSNorm gains near 1 (not exactly 1, so tests notice a norm applied to the wrong place).
  const gain = (n: number): Float32Array => {
    const a = new Float32Array(n)
    for (let i = 0; i < n; i++) a[i] = 1 + 0.1 * (rng.uniform() * 2 - 1)
    return a
  }
  const push = (name: string, shape: number[], data: Float32Array): void => {
    out.push({ name, dtype, shape, data: roundToDtype(data, dtype) })
  }
  push('model.embed_tokens.weight', [V, C], normal([V, C], r.initStd))
  for (let l = 0; l < r.numLayers; l++) {
    const p = `model.layers.${l}`
    push(`${p}.input_layernorm.weight`, [C], gain(C))
    push(`${p}.self_attn.q_proj.weight`, [NH * HS, C], normal([NH * HS, C], r.initStd))
    push(`${p}.self_attn.k_proj.weight`, [NKV * HS, C], normal([NKV * HS, C], r.initStd))
    push(`${p}.self_attn.v_proj.weight`, [NKV * HS, C], normal([NKV * HS, C], r.initStd))
    if (r.architecture === 'qwen2') {
      push(`${p}.self_attn.q_proj.bias`, [NH * HS], normal([NH * HS], r.initStd))
      push(`${p}.self_attn.k_proj.bias`, [NKV * HS], normal([NKV * HS], r.initStd))
      push(`${p}.self_attn.v_proj.bias`, [NKV * HS], normal([NKV * HS], r.initStd))
    }
    push(`${p}.self_attn.o_proj.weight`, [C, NH * HS], normal([C, NH * HS], r.initStd))
    push(`${p}.post_attention_layernorm.weight`, [C], gain(C))
    push(`${p}.mlp.gate_proj.weight`, [FF, C], normal([FF, C], r.initStd))
    push(`${p}.mlp.up_proj.weight`, [FF, C], normal([FF, C], r.initStd))
    push(`${p}.mlp.down_proj.weight`, [C, FF], normal([C, FF], r.initStd))
  }
  push('model.norm.weight', [C], gain(C))
  if (!r.tieEmbeddings) push('lm_head.weight', [V, C], normal([V, C], r.initStd))
  return out
}

function shardName(i: number, n: number): string {
  const pad = (x: number): string => String(x).padStart(5, '0')
  return `model-${pad(i + 1)}-of-${pad(n)}.safetensors`
}

/** Writes the model folder (created if missing; existing files of the same names are replaced). */
export async function writeTinyModel(dir: string, opts: TinyModelOptions = {}): Promise<TinyModelInfo> {
  const r = resolve(opts)
  await mkdir(dir, { recursive: true })
  const config = tinyModelConfig(opts)
  let tensors = tinyModelTensors(opts)
  if (opts.transform) tensors = tensors.map((t) => opts.transform!(t)).filter((t): t is TensorToWrite => t !== null)

  const files: string[] = []
  const shapes = new Map<string, number[]>()
  const metadata = { format: 'pt' }
  if (r.shards === 1) {
    await writeSafetensors(join(dir, 'model.safetensors'), tensors, metadata)
    files.push('model.safetensors')
    for (const t of tensors) shapes.set(t.name, t.shape)
  } else {
    // Split in file order into shards of roughly equal byte size.
    const bytes = tensors.map((t) => t.data.length * (t.dtype === 'F32' ? 4 : 2))
    const total = bytes.reduce((a, b) => a + b, 0)
    const groups: TensorToWrite[][] = Array.from({ length: r.shards }, () => [])
    let acc = 0
    tensors.forEach((t, i) => {
      const g = Math.min(r.shards - 1, Math.floor((acc / total) * r.shards))
      groups[g].push(t)
      acc += bytes[i]
    })
    const nonEmpty = groups.filter((g) => g.length > 0)
    const weightMap: Record<string, string> = {}
    for (let i = 0; i < nonEmpty.length; i++) {
      const name = shardName(i, nonEmpty.length)
      await writeSafetensors(join(dir, name), nonEmpty[i], metadata)
      files.push(name)
      for (const t of nonEmpty[i]) {
        weightMap[t.name] = name
        shapes.set(t.name, t.shape)
      }
    }
    const index = { metadata: { total_size: total }, weight_map: weightMap }
    await writeJson(join(dir, 'model.safetensors.index.json'), index)
  }
  await writeJson(join(dir, 'config.json'), config)
  const gen: Record<string, unknown> = { _from_model_config: true, bos_token_id: r.bosTokenId, eos_token_id: r.eosTokenId, transformers_version: '4.46.0' }
  if (r.padTokenId !== null) gen.pad_token_id = r.padTokenId
  await writeJson(join(dir, 'generation_config.json'), gen)
  return { dir, config, files, shapes }
}

async function writeJson(path: string, value: unknown): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`
  await writeFile(tmp, JSON.stringify(value, null, 2) + '\n')
  await rename(tmp, path)
}

