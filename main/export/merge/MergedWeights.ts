// The merged model's weights, computed on demand a block of rows at a time: for every linear the LoRA adapter
// targets, W' = W + (alpha / r) * B A (ENGINE_FACTS §5), in fp32 from the ORIGINAL 16-bit base weights (not the NF4
// values the engine trains and chats with, so the merged model differs slightly from the one the user tried);
// every other tensor is the base tensor as stored. Rows [r0, r1) of W' need rows [r0, r1) of W and of B and all
// of A ([r, in]), so neither the model nor a whole merged matrix has to be in memory at once.
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { AppError } from '../../errors'
import { SafetensorsFolder } from './SafetensorsFolder'

export interface PeftAdapterConfig {
  r: number
  alpha: number
  dropout: number
  /** Module names as written in adapter_config.json (q_proj, ...). */
  targets: string[]
  baseModelNameOrPath: string
  /** The whole adapter_config.json object, as read. */
  raw: Record<string, unknown>
}

export interface LoraPair {
  /** Base weight name, e.g. model.layers.0.self_attn.q_proj.weight */
  weight: string
  a: string
  b: string
}

const FIX = 'Export again from a finished training run, or pick an adapter folder written by QA Tuner or PEFT.'

/** Reads and checks adapter_config.json (the same limits as the engine's PEFT loader). */
export async function readPeftConfig(dir: string): Promise<PeftAdapterConfig> {
  const path = join(dir, 'adapter_config.json')
  if (!existsSync(path)) throw new AppError('NOT_FOUND', `${dir} is not a LoRA adapter folder (adapter_config.json is missing). ${FIX}`)
  let raw: Record<string, unknown>
  try {
    raw = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>
  } catch (err) {
    throw new AppError('INVALID_ARGUMENT', `${path} is not valid JSON (${(err as Error).message}). ${FIX}`)
  }
  const unsupported = (what: string): never => {
    throw new AppError('UNSUPPORTED', `The adapter in ${dir} uses ${what}, which export does not support. ${FIX}`)
  }
  if (raw.peft_type !== 'LORA') unsupported(`peft_type ${JSON.stringify(raw.peft_type)} (only LORA)`)
  const r = raw.r
  if (typeof r !== 'number' || !Number.isInteger(r) || r <= 0) throw new AppError('INVALID_ARGUMENT', `${path}: "r" must be a positive whole number. ${FIX}`)
  const alpha = typeof raw.lora_alpha === 'number' ? raw.lora_alpha : 8
  for (const flag of ['use_dora', 'use_rslora', 'fan_in_fan_out']) if (raw[flag] === true) unsupported(`${flag} = true`)
  if (raw.bias !== undefined && raw.bias !== null && raw.bias !== 'none') unsupported(`bias = ${JSON.stringify(raw.bias)}`)
  for (const pat of ['rank_pattern', 'alpha_pattern']) {
    const v = raw[pat]
    if (v && typeof v === 'object' && Object.keys(v).length > 0) unsupported(`a non-empty ${pat}`)
  }
  if (Array.isArray(raw.modules_to_save) && raw.modules_to_save.length > 0) unsupported('modules_to_save')
  const tm = raw.target_modules
  const targets = typeof tm === 'string' ? [tm] : Array.isArray(tm) ? tm.filter((t): t is string => typeof t === 'string') : []
  if (targets.length === 0) throw new AppError('INVALID_ARGUMENT', `${path}: target_modules is missing. ${FIX}`)
  return {
    r,
    alpha,
    dropout: typeof raw.lora_dropout === 'number' ? raw.lora_dropout : 0,
    targets,
    baseModelNameOrPath: typeof raw.base_model_name_or_path === 'string' ? raw.base_model_name_or_path : '',
    raw,
  }
}

/** PEFT key -> base weight name: base_model.model.<module>.lora_A[.default].weight -> <module>.weight */
export function loraPairs(names: Iterable<string>): Map<string, LoraPair> {
  const pairs = new Map<string, Partial<LoraPair>>()
  const re = /^base_model\.model\.(.+)\.lora_([AB])(?:\.default)?\.weight$/
  for (const key of names) {
    const m = re.exec(key)
    if (!m) continue
    const weight = `${m[1]}.weight`
    const p = pairs.get(weight) ?? { weight }
    if (m[2] === 'A') p.a = key
    else p.b = key
    pairs.set(weight, p)
  }
  const out = new Map<string, LoraPair>()
  for (const [w, p] of pairs) {
    if (!p.a || !p.b) throw new AppError('INVALID_ARGUMENT', `The adapter has lora_${p.a ? 'A' : 'B'} for ${w} but not lora_${p.a ? 'B' : 'A'}. ${FIX}`)
    out.set(w, p as LoraPair)
  }
  return out
}

export class MergedWeights {
  private cache: { weight: string; a: Float32Array; b: Float32Array } | null = null

  private constructor(
    readonly base: SafetensorsFolder,
    readonly adapter: SafetensorsFolder | null,
    readonly adapterConfig: PeftAdapterConfig | null,
    readonly pairs: Map<string, LoraPair>,
  ) {}

  /** The base folder's weights, merged with the PEFT adapter in adapterDir (null: the base model alone). */
  static async open(baseDir: string, adapterDir: string | null): Promise<MergedWeights> {
    const base = await SafetensorsFolder.open(baseDir)
    if (adapterDir === null) return new MergedWeights(base, null, null, new Map())
    let adapter: SafetensorsFolder | null = null
    try {
      const config = await readPeftConfig(adapterDir)
      adapter = await SafetensorsFolder.open(adapterDir, 'adapter_model.safetensors')
      const pairs = loraPairs(adapter.tensors.keys())
      if (pairs.size === 0) throw new AppError('INVALID_ARGUMENT', `The adapter in ${adapterDir} has no LoRA weights. ${FIX}`)
      for (const p of pairs.values()) {
        if (!base.has(p.weight)) {
          throw new AppError('INVALID_ARGUMENT', `The adapter changes ${p.weight}, which the base model in ${baseDir} does not have: it was trained for another model. Pick the adapter's own base model.`)
        }
        const w = base.get(p.weight).shape
        const a = adapter.get(p.a).shape
        const b = adapter.get(p.b).shape
        if (w.length !== 2 || a.length !== 2 || b.length !== 2 || a[0] !== config.r || b[1] !== config.r || a[1] !== w[1] || b[0] !== w[0]) {
          throw new AppError(
            'INVALID_ARGUMENT',
            `The adapter's ${p.weight} (A [${a}], B [${b}], r ${config.r}) does not fit the base weight [${w}]: it was trained for another model. Pick the adapter's own base model.`,
          )
        }
      }
      return new MergedWeights(base, adapter, config, pairs)
    } catch (err) {
      await base.close()
      await adapter?.close()
      throw err
    }
  }

  /** alpha / r (0 without an adapter). */
  get scale(): number {
    return this.adapterConfig ? this.adapterConfig.alpha / this.adapterConfig.r : 0
  }

  /** Tensor names in the base folder's order (files, then position in the file). */
  names(): string[] {
    return [...this.base.tensors.values()].sort((x, y) => (x.file === y.file ? x.offset - y.offset : x.file < y.file ? -1 : 1)).map((t) => t.name)
  }

  shape(name: string): number[] {
    return this.base.get(name).shape
  }

  dtype(name: string): string {
    return this.base.get(name).dtype
  }

  isMerged(name: string): boolean {
    return this.pairs.has(name)
  }

  private async factors(pair: LoraPair): Promise<{ a: Float32Array; b: Float32Array }> {
    if (this.cache?.weight !== pair.weight) {
      const a = await this.adapter!.readAll(pair.a)
      const b = await this.adapter!.readAll(pair.b)
      this.cache = { weight: pair.weight, a, b }
    }
    return this.cache
  }

  /** Rows [r0, r1) of the merged tensor as fp32 (a 1-D tensor has a single row... of one value per element). */
  async rows(name: string, r0: number, r1: number): Promise<Float32Array> {
    const w = await this.base.readRows(name, r0, r1)
    const pair = this.pairs.get(name)
    if (!pair) return w
    const { a, b } = await this.factors(pair)
    const R = this.adapterConfig!.r
    const cols = this.shape(name)[1]
    const s = this.scale
    const delta = new Float64Array(cols)
    for (let o = r0; o < r1; o++) {
      delta.fill(0)
      for (let k = 0; k < R; k++) {
        const c = s * b[o * R + k]
        if (c === 0) continue
        const ak = k * cols
        for (let j = 0; j < cols; j++) delta[j] += c * a[ak + j]
      }
      const row = (o - r0) * cols
      for (let j = 0; j < cols; j++) w[row + j] = w[row + j] + delta[j]
    }
    return w
  }

  async close(): Promise<void> {
    this.cache = null
    await this.base.close()
    await this.adapter?.close()
  }
}
