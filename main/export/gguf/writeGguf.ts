// A merged model as one GGUF file for llama.cpp, Ollama and LM Studio, written natively (no Python, no llama.cpp
// build), laid out as llama.cpp's convert_hf_to_gguf.py does for LlamaForCausalLM / MistralForCausalLM (architecture
// "llama") and Qwen2ForCausalLM ("qwen2"):
//   - tensor names: token_embd, blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_up,
//     ffn_down}, output_norm, output (absent when the embeddings are tied), rope_freqs for Llama 3.1-style scaling;
//   - "llama" only: the q and k projections (weights and biases) have their rows permuted within each head from
//     Hugging Face's rotate-half RoPE layout to llama.cpp's interleaved pairs (convert_hf_to_gguf's LlamaModel.permute:
//     per head, row 2i+j of the GGUF tensor is row j*HS/2+i of the HF tensor). Qwen2 is converted without it;
//   - 1-D tensors and norms in F32; 2-D weights in the file type (F32, F16, BF16, Q8_0, or the Q4_K_M mix of
//     llama-quantize: Q6_K for output and for attn_v / ffn_down of the layers use_more_bits picks, Q4_K elsewhere);
//     a row length the block size does not divide falls back to Q8_0, then F16;
//   - metadata: architecture parameters, file type, the full tokenizer and the training chat template (ggufTokenizer).
// Tensors are streamed a block of rows at a time from MergedWeights (base + LoRA), so memory stays small.
import { open } from 'node:fs/promises'
import { AppError } from '../../errors'
import type { MergedWeights } from '../merge/MergedWeights'
import { SequentialWriter } from '../SequentialWriter'
import { encodeGgml } from './ggmlQuant'
import type { QuantPool } from './QuantPool'
import { GGML_BLOCK, GGML_QUANT_VERSION, kv, layoutGguf, type GgmlType, type GgufLayout, type GgufMetadata, type GgufTensorInfo } from './ggufFormat'
import { addTokenizerMetadata, type GgufTokenizerSummary } from './ggufTokenizer'

export type GgufFileType = 'F32' | 'F16' | 'BF16' | 'Q8_0' | 'Q4_K_M'

/** llama_ftype values written as general.file_type. */
export const GGUF_FILE_TYPE_ID: Record<GgufFileType, number> = { F32: 0, F16: 1, Q8_0: 7, Q4_K_M: 15, BF16: 32 }

export type GgufArch = 'llama' | 'qwen2'

type Json = Record<string, unknown>

export interface GgufPlanTensor extends GgufTensorInfo {
  /** The Hugging Face tensor it comes from (null for tensors computed here, e.g. rope_freqs). */
  hfName: string | null
  /** Rows and values per row in Hugging Face order ([rows, rowLength]). */
  rows: number
  rowLength: number
  /** Permute rows within heads of this many rows (Llama q/k); 0 = no permutation. */
  permuteHeadRows: number
  /** Values of a computed tensor. */
  values?: Float32Array
}

export interface GgufPlan {
  arch: GgufArch
  fileType: GgufFileType
  metadata: GgufMetadata
  tensors: GgufPlanTensor[]
  layout: GgufLayout
  tokenizer: GgufTokenizerSummary
}

export interface GgufPlanInput {
  merged: MergedWeights
  /** config.json of the base model. */
  config: Json
  tokenizerJson: Json
  tokenizerConfig: Json
  chatTemplate: string
  endOfTurnId: number
  /** The training template starts every conversation with the bos token (null: decide from the tokenizer files). */
  addBos: boolean | null
  fileType: GgufFileType
  /** general.name */
  name: string
}

function num(config: Json, key: string, fallback?: number): number {
  const v = config[key]
  if (typeof v === 'number' && Number.isFinite(v)) return v
  if (fallback !== undefined) return fallback
  throw new AppError('INVALID_ARGUMENT', `config.json has no "${key}"; the model folder is incomplete.`)
}

export function ggufArchFor(config: Json): GgufArch {
  const archs = Array.isArray(config.architectures) ? config.architectures : []
  const a = typeof archs[0] === 'string' ? archs[0] : ''
  if (a === 'LlamaForCausalLM' || a === 'MistralForCausalLM') return 'llama'
  if (a === 'Qwen2ForCausalLM') return 'qwen2'
  throw new AppError('UNSUPPORTED', `GGUF export supports Llama, Mistral and Qwen2 models, not ${a || 'this architecture'}.`)
}

/** llama-quant.cpp's use_more_bits: the first and last eighth of the layers and every third one between. */
export function useMoreBits(layer: number, layers: number): boolean {
  const e = Math.trunc(layers / 8)
  return layer < e || layer >= Math.trunc((7 * layers) / 8) || (layer - e) % 3 === 2
}

const LAYER_MAP: Record<string, string> = {
  'input_layernorm.weight': 'attn_norm.weight',
  'self_attn.q_proj.weight': 'attn_q.weight',
  'self_attn.q_proj.bias': 'attn_q.bias',
  'self_attn.k_proj.weight': 'attn_k.weight',
  'self_attn.k_proj.bias': 'attn_k.bias',
  'self_attn.v_proj.weight': 'attn_v.weight',
  'self_attn.v_proj.bias': 'attn_v.bias',
  'self_attn.o_proj.weight': 'attn_output.weight',
  'post_attention_layernorm.weight': 'ffn_norm.weight',
  'mlp.gate_proj.weight': 'ffn_gate.weight',
  'mlp.up_proj.weight': 'ffn_up.weight',
  'mlp.down_proj.weight': 'ffn_down.weight',
}

/** Hugging Face tensor name -> GGUF name (null: not part of the GGUF, e.g. rotary_emb.inv_freq buffers). */
export function ggufTensorName(hf: string): { name: string; layer: number | null } | null {
  if (hf === 'model.embed_tokens.weight') return { name: 'token_embd.weight', layer: null }
  if (hf === 'model.norm.weight') return { name: 'output_norm.weight', layer: null }
  if (hf === 'lm_head.weight') return { name: 'output.weight', layer: null }
  if (hf.endsWith('rotary_emb.inv_freq')) return null
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hf)
  if (m && LAYER_MAP[m[2]]) return { name: `blk.${m[1]}.${LAYER_MAP[m[2]]}`, layer: Number(m[1]) }
  throw new AppError('UNSUPPORTED', `The model has a tensor GGUF export does not know (${hf}).`)
}

function fitsBlock(type: GgmlType, rowLength: number): boolean {
  return rowLength % GGML_BLOCK[type].elements === 0
}

/** The tensor type for a 2-D weight under a file type (before the block-size fallback). */
function weightType(fileType: GgufFileType, gguf: string, layer: number | null, layers: number, tied: boolean): GgmlType {
  if (fileType !== 'Q4_K_M') return fileType
  if (gguf === 'output.weight' || (tied && gguf === 'token_embd.weight')) return 'Q6_K'
  if (layer !== null && (gguf.endsWith('.attn_v.weight') || gguf.endsWith('.ffn_down.weight')) && useMoreBits(layer, layers)) return 'Q6_K'
  return 'Q4_K'
}

function withFallback(type: GgmlType, rowLength: number): GgmlType {
  if (fitsBlock(type, rowLength)) return type
  if (fitsBlock('Q8_0', rowLength)) return 'Q8_0'
  return 'F16'
}

/** Llama 3.1 rope frequency factors (convert_hf_to_gguf LlamaModel.generate_extra_tensors). */
function llama3RopeFactors(scaling: Json, theta: number, headDim: number): Float32Array {
  const factor = typeof scaling.factor === 'number' ? scaling.factor : 8
  const low = typeof scaling.low_freq_factor === 'number' ? scaling.low_freq_factor : 1
  const high = typeof scaling.high_freq_factor === 'number' ? scaling.high_freq_factor : 4
  const oldCtx = typeof scaling.original_max_position_embeddings === 'number' ? scaling.original_max_position_embeddings : 8192
  const lowWavelen = oldCtx / low
  const highWavelen = oldCtx / high
  const out = new Float32Array(headDim / 2)
  for (let i = 0; i < headDim / 2; i++) {
    const freq = Math.fround(1 / Math.fround(theta ** Math.fround((2 * i) / headDim)))
    const wavelen = (2 * Math.PI) / freq
    if (wavelen < highWavelen) out[i] = 1
    else if (wavelen > lowWavelen) out[i] = factor
    else {
      const smooth = (oldCtx / wavelen - low) / (high - low)
      out[i] = 1 / ((1 - smooth) / factor + smooth)
    }
  }
  return out
}

/** Everything about the file before writing it: metadata, tensor list with types, exact byte layout. */
export function planGguf(input: GgufPlanInput): GgufPlan {
  const { merged, config, fileType } = input
  const arch = ggufArchFor(config)
  const hidden = num(config, 'hidden_size')
  const nHead = num(config, 'num_attention_heads')
  const nKv = num(config, 'num_key_value_heads', nHead)
  const layers = num(config, 'num_hidden_layers')
  const headDim = num(config, 'head_dim', hidden / nHead)
  const vocab = num(config, 'vocab_size')
  const ropeParams = (config.rope_parameters ?? null) as Json | null
  const theta = typeof config.rope_theta === 'number' ? config.rope_theta : typeof ropeParams?.rope_theta === 'number' ? ropeParams.rope_theta : 10000
  const scaling = (config.rope_scaling ?? ropeParams ?? null) as Json | null
  const ropeType = scaling ? String(scaling.rope_type ?? scaling.type ?? 'default') : 'default'

  const md: GgufMetadata = new Map()
  md.set('general.architecture', kv.str(arch))
  md.set('general.type', kv.str('model'))
  md.set('general.name', kv.str(input.name))
  md.set(`${arch}.vocab_size`, kv.u32(vocab))
  md.set(`${arch}.context_length`, kv.u32(num(config, 'max_position_embeddings')))
  md.set(`${arch}.embedding_length`, kv.u32(hidden))
  md.set(`${arch}.block_count`, kv.u32(layers))
  md.set(`${arch}.feed_forward_length`, kv.u32(num(config, 'intermediate_size')))
  md.set(`${arch}.attention.head_count`, kv.u32(nHead))
  md.set(`${arch}.attention.head_count_kv`, kv.u32(nKv))
  md.set(`${arch}.rope.freq_base`, kv.f32(theta))
  md.set(`${arch}.attention.layer_norm_rms_epsilon`, kv.f32(num(config, 'rms_norm_eps')))
  if (arch === 'llama') md.set(`${arch}.rope.dimension_count`, kv.u32(headDim))
  if (typeof config.head_dim === 'number') {
    md.set(`${arch}.attention.key_length`, kv.u32(headDim))
    md.set(`${arch}.attention.value_length`, kv.u32(headDim))
  }
  let ropeFreqs: Float32Array | null = null
  if (ropeType === 'linear' && typeof scaling?.factor === 'number') {
    md.set(`${arch}.rope.scaling.type`, kv.str('linear'))
    md.set(`${arch}.rope.scaling.factor`, kv.f32(scaling.factor))
  } else if (ropeType === 'yarn' && typeof scaling?.factor === 'number') {
    md.set(`${arch}.rope.scaling.type`, kv.str('yarn'))
    md.set(`${arch}.rope.scaling.factor`, kv.f32(scaling.factor))
    md.set(`${arch}.rope.scaling.original_context_length`, kv.u32(num(scaling, 'original_max_position_embeddings')))
  } else if (ropeType === 'llama3' && arch === 'llama') {
    ropeFreqs = llama3RopeFactors(scaling!, theta, headDim)
  } else if (ropeType !== 'default') {
    throw new AppError('UNSUPPORTED', `GGUF export does not support rope scaling of type "${ropeType}".`)
  }
  md.set('general.file_type', kv.u32(GGUF_FILE_TYPE_ID[fileType]))
  md.set('general.quantization_version', kv.u32(GGML_QUANT_VERSION))
  const tokenizer = addTokenizerMetadata(md, {
    tokenizerJson: input.tokenizerJson,
    tokenizerConfig: input.tokenizerConfig,
    vocabSize: vocab,
    chatTemplate: input.chatTemplate,
    endOfTurnId: input.endOfTurnId,
    addBos: input.addBos,
  })

  // Tensors in a canonical order: embeddings, rope factors, each layer, final norm, output.
  const hfNames = merged.names()
  const tied = !hfNames.includes('lm_head.weight')
  const planned: (GgufPlanTensor & { order: number })[] = []
  for (const hf of hfNames) {
    const g = ggufTensorName(hf)
    if (!g) continue
    const shape = merged.shape(hf)
    const rows = shape[0]
    const rowLength = shape.length === 2 ? shape[1] : 1
    const is1d = shape.length === 1
    let type: GgmlType
    if (is1d || g.name.endsWith('_norm.weight')) type = 'F32'
    else type = withFallback(weightType(fileType, g.name, g.layer, layers, tied), rowLength)
    const isQ = /\.attn_q\.(weight|bias)$/.test(g.name)
    const isK = /\.attn_k\.(weight|bias)$/.test(g.name)
    const permuteHeadRows = arch === 'llama' && (isQ || isK) ? rows / (isQ ? nHead : nKv) : 0
    if (permuteHeadRows && (!Number.isInteger(permuteHeadRows) || permuteHeadRows % 2 !== 0)) {
      throw new AppError('INVALID_ARGUMENT', `${hf} has ${rows} rows, which do not split into ${isQ ? nHead : nKv} heads of an even size.`)
    }
    const order = g.layer === null ? (g.name === 'token_embd.weight' ? -2 : g.name === 'output_norm.weight' ? 1e9 : 1e9 + 1) : g.layer * 100 + Object.values(LAYER_MAP).indexOf(g.name.slice(g.name.indexOf('.', 4) + 1))
    planned.push({ name: g.name, hfName: hf, ne: is1d ? [rows] : [rowLength, rows], type, rows, rowLength: is1d ? rows : rowLength, permuteHeadRows, order })
  }
  if (ropeFreqs) planned.push({ name: 'rope_freqs.weight', hfName: null, ne: [ropeFreqs.length], type: 'F32', rows: 1, rowLength: ropeFreqs.length, permuteHeadRows: 0, values: ropeFreqs, order: -1 })
  planned.sort((a, b) => a.order - b.order)
  const tensors: GgufPlanTensor[] = planned.map(({ order: _order, ...t }) => t)
  for (const need of ['token_embd.weight', 'output_norm.weight', 'blk.0.attn_q.weight']) {
    if (!tensors.some((t) => t.name === need)) throw new AppError('INVALID_ARGUMENT', `The model has no tensor for ${need}; the model folder is incomplete.`)
  }
  const layout = layoutGguf(md, tensors)
  return { arch, fileType, metadata: md, tensors, layout, tokenizer }
}

/** Rows [r0, r1) permuted within each head of `headRows` rows (HF rotate-half -> llama.cpp interleaved). */
export function permuteHeads(x: Float32Array, rowLength: number, headRows: number): Float32Array {
  const out = new Float32Array(x.length)
  const rows = x.length / rowLength
  const half = headRows / 2
  for (let h = 0; h < rows; h += headRows) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const src = (h + j * half + i) * rowLength
        const dst = (h + 2 * i + j) * rowLength
        out.set(x.subarray(src, src + rowLength), dst)
      }
    }
  }
  return out
}

export interface WriteProgress {
  /** Bytes written so far to this file. */
  bytes: number
  tensor: string
}

const CHUNK_VALUES = 1 << 22 // ~4M values (16 MB as fp32) per block of rows

/** Writes the planned GGUF to `path` (the caller renames it into place). */
export async function writeGguf(
  path: string,
  plan: GgufPlan,
  merged: MergedWeights,
  opts: { onProgress?: (p: WriteProgress) => void; signal?: AbortSignal; pool?: QuantPool | null } = {},
): Promise<void> {
  const encode = (type: GgmlType, x: Float32Array, rowLength: number): Promise<Buffer> | Buffer =>
    opts.pool && (type === 'Q4_K' || type === 'Q6_K') ? opts.pool.encode(type, x, rowLength) : encodeGgml(type, x, rowLength)
  const fh = await open(path, 'w')
  try {
    const out = new SequentialWriter(fh)
    await out.write(plan.layout.header)
    const dataStart = plan.layout.header.length
    for (let ti = 0; ti < plan.tensors.length; ti++) {
      const t = plan.tensors[ti]
      if (out.pos !== dataStart + plan.layout.offsets[ti]) throw new Error(`GGUF writer out of place at ${t.name}`)
      const start = out.pos
      if (t.values) {
        await out.write(encodeGgml(t.type, t.values, t.rowLength))
      } else if (t.ne.length === 1) {
        await out.write(encodeGgml(t.type, permute1d(await merged.rows(t.hfName!, 0, t.rows), t.permuteHeadRows), t.rowLength))
      } else {
        let step = Math.max(1, Math.floor(CHUNK_VALUES / t.rowLength))
        if (t.permuteHeadRows) step = Math.max(t.permuteHeadRows, step - (step % t.permuteHeadRows))
        for (let r0 = 0; r0 < t.rows; r0 += step) {
          if (opts.signal?.aborted) throw new AppError('CANCELLED', 'Export cancelled.')
          const r1 = Math.min(t.rows, r0 + step)
          let x = await merged.rows(t.hfName!, r0, r1)
          if (t.permuteHeadRows) x = permuteHeads(x, t.rowLength, t.permuteHeadRows)
          await out.write(await encode(t.type, x, t.rowLength))
          opts.onProgress?.({ bytes: out.pos, tensor: t.name })
        }
      }
      if (out.pos - start !== plan.layout.sizes[ti]) throw new Error(`GGUF writer: ${t.name} has ${out.pos - start} bytes, expected ${plan.layout.sizes[ti]}`)
      const pad = (plan.layout.alignment - (plan.layout.sizes[ti] % plan.layout.alignment)) % plan.layout.alignment
      if (pad) await out.write(Buffer.alloc(pad))
      opts.onProgress?.({ bytes: out.pos, tensor: t.name })
    }
    if (out.pos !== plan.layout.fileBytes) throw new Error(`GGUF writer wrote ${out.pos} bytes, planned ${plan.layout.fileBytes}`)
    await fh.sync()
  } finally {
    await fh.close()
  }
}

/** A 1-D q/k bias is permuted like a weight with rows of one value. */
function permute1d(x: Float32Array, headRows: number): Float32Array {
  return headRows ? permuteHeads(x, 1, headRows) : x
}
