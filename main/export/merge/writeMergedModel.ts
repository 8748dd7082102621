// The merged model as a Hugging Face folder that transformers, vLLM and the Hub load as is:
//   model.safetensors, or model-0000i-of-0000n.safetensors shards of at most maxShardBytes plus
//   model.safetensors.index.json ({ metadata: { total_size }, weight_map }), every tensor BF16 (fp32 merge rounded to
//   nearest even; base tensors already stored as BF16 are copied bit for bit);
//   config.json (the base's, torch_dtype bfloat16), the tokenizer files, tokenizer_config.json with the TRAINING chat
//   template as chat_template, and generation_config.json whose eos_token_id lists every stop id (for Llama 3
//   Instruct [<|end_of_text|>, <|eot_id|>]), so generate() stops where the chat in the app stopped.
// Tensors are streamed a block of rows at a time from MergedWeights.
import { copyFile, open, readFile, writeFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { AppError } from '../../errors'
import { encodeSafetensorsHeader } from '../../models/safetensors'
import { SequentialWriter } from '../SequentialWriter'
import type { MergedWeights } from './MergedWeights'

/** transformers' default largest shard ("5GB"). */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000

/** Tokenizer files copied as they are (tokenizer_config.json is rewritten; separate template files are not copied,
 *  because the training template is written into tokenizer_config.json and must not be overridden by a stale one). */
export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer.model', 'special_tokens_map.json', 'vocab.json', 'merges.txt', 'added_tokens.json']

interface ShardTensor {
  name: string
  shape: number[]
  bytes: number
}

export interface MergedShard {
  file: string
  tensors: ShardTensor[]
  header: Buffer
  /** Bytes of the whole file. */
  bytes: number
}

export interface MergedModelPlan {
  shards: MergedShard[]
  /** Sum of the tensors' bytes (index metadata total_size). */
  weightBytes: number
  index: { metadata: { total_size: number }; weight_map: Record<string, string> } | null
  /** Every byte the weights take on disk (headers included). */
  fileBytes: number
}

function shardName(i: number, n: number): string {
  const pad = (x: number) => String(x).padStart(5, '0')
  return `model-${pad(i + 1)}-of-${pad(n)}.safetensors`
}

/** Which tensor goes into which shard (greedy in order; a shard holds at least one tensor). */
export function planMergedModel(merged: MergedWeights, maxShardBytes = DEFAULT_MAX_SHARD_BYTES): MergedModelPlan {
  const groups: ShardTensor[][] = [[]]
  let size = 0
  let weightBytes = 0
  for (const name of merged.names()) {
    if (name.endsWith('rotary_emb.inv_freq')) continue
    const shape = merged.shape(name)
    const bytes = shape.reduce((a, b) => a * b, 1) * 2
    if (groups[groups.length - 1].length > 0 && size + bytes > maxShardBytes) {
      groups.push([])
      size = 0
    }
    groups[groups.length - 1].push({ name, shape, bytes })
    size += bytes
    weightBytes += bytes
  }
  const n = groups.length
  const shards = groups.map((tensors, i) => {
    const header = encodeSafetensorsHeader(tensors.map((t) => ({ ...t, dtype: 'BF16' })), { format: 'pt' })
    return { file: n === 1 ? 'model.safetensors' : shardName(i, n), tensors, header, bytes: header.length + tensors.reduce((a, t) => a + t.bytes, 0) }
  })
  const index =
    n === 1
      ? null
      : { metadata: { total_size: weightBytes }, weight_map: Object.fromEntries(shards.flatMap((s) => s.tensors.map((t) => [t.name, s.file]))) }
  return { shards, weightBytes, index, fileBytes: shards.reduce((a, s) => a + s.bytes, 0) }
}

/** fp32 -> BF16 bytes, round to nearest even (NaN stays NaN), as torch's .to(torch.bfloat16). */
export function toBf16Bytes(x: Float32Array): Buffer {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length)
  const out = Buffer.allocUnsafeSlow(x.length * 2)
  const o = new Uint16Array(out.buffer, out.byteOffset, x.length)
  for (let i = 0; i < x.length; i++) {
    const bits = u[i]
    o[i] = (bits & 0x7fffffff) > 0x7f800000 ? (bits >>> 16) | 0x40 : (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16
  }
  return out
}

const CHUNK_VALUES = 1 << 22

export interface MergedWriteProgress {
  /** Weight-file bytes written so far (all shards). */
  bytes: number
  tensor: string
}

/** Writes the shards (and the index) into `dir`, which must exist. */
export async function writeMergedWeights(dir: string, plan: MergedModelPlan, merged: MergedWeights, opts: { onProgress?: (p: MergedWriteProgress) => void; signal?: AbortSignal } = {}): Promise<void> {
  let total = 0
  for (const shard of plan.shards) {
    const fh = await open(join(dir, shard.file), 'w')
    try {
      const out = new SequentialWriter(fh)
      const write = async (buf: Buffer) => {
        await out.write(buf)
        total += buf.length
      }
      await write(shard.header)
      for (const t of shard.tensors) {
        const rows = t.shape.length === 0 ? 1 : t.shape[0]
        const rowLength = t.shape.length <= 1 ? 1 : t.shape.slice(1).reduce((a, b) => a * b, 1)
        const step = Math.max(1, Math.floor(CHUNK_VALUES / rowLength))
        const copyRaw = merged.dtype(t.name) === 'BF16' && !merged.isMerged(t.name)
        for (let r0 = 0; r0 < rows; r0 += step) {
          if (opts.signal?.aborted) throw new AppError('CANCELLED', 'Export cancelled.')
          const r1 = Math.min(rows, r0 + step)
          await write(copyRaw ? await merged.base.readRawRows(t.name, r0, r1) : toBf16Bytes(await merged.rows(t.name, r0, r1)))
          opts.onProgress?.({ bytes: total, tensor: t.name })
        }
      }
      if (out.pos !== shard.bytes) throw new Error(`Merged writer: ${shard.file} has ${out.pos} bytes, planned ${shard.bytes}`)
      await fh.sync()
    } finally {
      await fh.close()
    }
  }
  if (plan.index) await writeFile(join(dir, 'model.safetensors.index.json'), `${JSON.stringify(plan.index, null, 2)}\n`)
}

type Json = Record<string, unknown>

async function readJsonFile(path: string): Promise<Json | null> {
  if (!existsSync(path)) return null
  try {
    return JSON.parse(await readFile(path, 'utf8')) as Json
  } catch (err) {
    throw new AppError('INVALID_ARGUMENT', `${path} is not valid JSON (${(err as Error).message}). Download the model again.`)
  }
}

export interface SideFilesInput {
  baseDir: string
  /** The chat template used in training. */
  chatTemplate: string
  /** Every id that ends generation (end-of-turn token and eos ids). */
  stopIds: number[]
  bosId: number | null
  padId: number | null
}

/** config.json, generation_config.json, tokenizer files: what a merged (or GGUF-side) folder needs besides weights. */
export async function writeHfSideFiles(dir: string, input: SideFilesInput): Promise<string[]> {
  const written: string[] = []
  const config = await readJsonFile(join(input.baseDir, 'config.json'))
  if (!config) throw new AppError('NOT_FOUND', `${input.baseDir} has no config.json.`)
  config.torch_dtype = 'bfloat16'
  if ('dtype' in config) config.dtype = 'bfloat16'
  delete config.quantization_config
  await writeFile(join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`)
  written.push('config.json')

  const gen = (await readJsonFile(join(input.baseDir, 'generation_config.json'))) ?? { _from_model_config: true }
  if (input.bosId !== null) gen.bos_token_id = input.bosId
  gen.eos_token_id = input.stopIds.length === 1 ? input.stopIds[0] : input.stopIds
  if (input.padId !== null && gen.pad_token_id === undefined) gen.pad_token_id = input.padId
  await writeFile(join(dir, 'generation_config.json'), `${JSON.stringify(gen, null, 2)}\n`)
  written.push('generation_config.json')

  for (const f of TOKENIZER_FILES) {
    if (existsSync(join(input.baseDir, f))) {
      await copyFile(join(input.baseDir, f), join(dir, f))
      written.push(f)
    }
  }
  const tc = await readJsonFile(join(input.baseDir, 'tokenizer_config.json'))
  if (!tc) throw new AppError('NOT_FOUND', `${input.baseDir} has no tokenizer_config.json.`)
  tc.chat_template = input.chatTemplate
  await writeFile(join(dir, 'tokenizer_config.json'), `${JSON.stringify(tc, null, 2)}\n`)
  written.push('tokenizer_config.json')
  return written
}
