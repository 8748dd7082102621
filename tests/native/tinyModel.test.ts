// The tiny-model fixture generator and the safetensors writer/reader (no engine needed).
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import {
  bf16ToF32, encodeSafetensors, f16ToF32, f32ToBf16, f32ToF16, parseSafetensorsHeader, readSafetensors, readSafetensorsHeader,
} from '../../main/models/safetensors'
import { tinyModelTensors, writeTinyModel } from '../../main/models/tiny/writeTinyModel'

const root = mkdtempSync(join(tmpdir(), 'qt-tiny-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

const readJson = (p: string): Record<string, unknown> => JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>

describe('number conversions', () => {
  it('bf16 rounds to nearest even and round-trips exact values', () => {
    expect(f32ToBf16(1)).toBe(0x3f80)
    expect(f32ToBf16(-2)).toBe(0xc000)
    expect(bf16ToF32(0x3f80)).toBe(1)
    // 1 + 2^-8 is exactly halfway between two bf16 values (1 and 1 + 2^-7): ties go to the even one (1).
    expect(bf16ToF32(f32ToBf16(1 + 2 ** -8))).toBe(1)
    // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): rounds up.
    expect(bf16ToF32(f32ToBf16(1 + 3 * 2 ** -8))).toBe(1 + 2 ** -6)
    expect(Number.isNaN(bf16ToF32(f32ToBf16(NaN)))).toBe(true)
  })

  it('f16 handles normal, subnormal, overflow and ties', () => {
    expect(f32ToF16(1)).toBe(0x3c00)
    expect(f32ToF16(-0.5)).toBe(0xb800)
    expect(f32ToF16(65504)).toBe(0x7bff)
    expect(f32ToF16(1e6)).toBe(0x7c00)
    expect(f16ToF32(f32ToF16(2 ** -24))).toBe(2 ** -24) // smallest subnormal
    expect(f16ToF32(f32ToF16(3 * 2 ** -20))).toBe(3 * 2 ** -20)
    expect(f16ToF32(f32ToF16(1 + 2 ** -11))).toBe(1) // tie to even
    expect(f16ToF32(f32ToF16(1 + 3 * 2 ** -11))).toBe(1 + 2 ** -9)
    for (const x of [0.1, -3.14159, 1234.5, 6e-5]) expect(Math.abs(f16ToF32(f32ToF16(x)) - x)).toBeLessThanOrEqual(Math.abs(x) * 2 ** -11)
  })
})

describe('safetensors', () => {
  it('writes an 8-byte aligned header with offsets that the reader checks', async () => {
    const buf = encodeSafetensors([
      { name: 'a', dtype: 'F32', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) },
      { name: 'b', dtype: 'BF16', shape: [3], data: Float32Array.from([1, -2, 0.5]) },
      { name: 'c', dtype: 'F16', shape: [1, 1], data: Float32Array.from([0.25]) },
    ], { format: 'pt' })
    const headerLen = Number(buf.readBigUInt64LE(0))
    expect((8 + headerLen) % 8).toBe(0)
    const h = parseSafetensorsHeader(buf, buf.length)
    expect(h.metadata).toEqual({ format: 'pt' })
    expect(h.tensors.map((t) => [t.name, t.dtype, t.shape, t.begin, t.end])).toEqual([
      ['a', 'F32', [2, 3], 0, 24], ['b', 'BF16', [3], 24, 30], ['c', 'F16', [1, 1], 30, 32]])
    expect(buf.length).toBe(8 + headerLen + 32)
    const p = join(root, 'x.safetensors')
    writeFileSync(p, buf)
    const { tensors } = await readSafetensors(p)
    expect(Array.from(tensors.get('a')!.data)).toEqual([1, 2, 3, 4, 5, 6])
    expect(Array.from(tensors.get('b')!.data)).toEqual([1, -2, 0.5])
    expect(Array.from(tensors.get('c')!.data)).toEqual([0.25])
  })

  it('rejects truncated and corrupt files with a message naming the problem', () => {
    const buf = encodeSafetensors([{ name: 'w', dtype: 'F32', shape: [4], data: new Float32Array(4) }])
    expect(() => parseSafetensorsHeader(buf.subarray(0, buf.length - 4), buf.length - 4)).toThrow(/truncated/)
    expect(() => parseSafetensorsHeader(buf.subarray(0, 5), 5)).toThrow(/too short/)
    const bad = Buffer.from(buf)
    bad.writeBigUInt64LE(10_000_000n, 0)
    expect(() => parseSafetensorsHeader(bad, bad.length)).toThrow(/exceeds the file size/)
    const garbled = Buffer.from(buf)
    garbled.write('!!!!', 8)
    expect(() => parseSafetensorsHeader(garbled, garbled.length)).toThrow(/not valid JSON/)
    expect(() => encodeSafetensors([{ name: 'w', dtype: 'F32', shape: [3], data: new Float32Array(4) }])).toThrow(/holds 3 values/)
  })
})

describe('writeTinyModel', () => {
  it('writes a Llama folder transformers would read: config, generation config, weights of the right shapes', async () => {
    const dir = join(root, 'llama')
    const info = await writeTinyModel(dir, { vocabSize: 300, hiddenSize: 32, intermediateSize: 48, numLayers: 3, numHeads: 4, numKvHeads: 2, bosTokenId: 5, eosTokenId: [6, 7] })
    const cfg = readJson(join(dir, 'config.json'))
    expect(cfg).toMatchObject({
      architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 300, hidden_size: 32, intermediate_size: 48,
      num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 2, tie_word_embeddings: false, torch_dtype: 'bfloat16',
      bos_token_id: 5, eos_token_id: [6, 7], attention_bias: false, rope_scaling: null, hidden_act: 'silu',
    })
    expect(cfg.head_dim).toBeUndefined() // 32 / 4 = 8, the default
    expect(readJson(join(dir, 'generation_config.json'))).toMatchObject({ bos_token_id: 5, eos_token_id: [6, 7] })
    expect(info.files).toEqual(['model.safetensors'])

    const header = await readSafetensorsHeader(join(dir, 'model.safetensors'))
    expect(header.dataOffset % 8).toBe(0)
    const shapes = Object.fromEntries(header.tensors.map((t) => [t.name, t.shape]))
    expect(header.tensors.every((t) => t.dtype === 'BF16')).toBe(true)
    expect(shapes['model.embed_tokens.weight']).toEqual([300, 32])
    expect(shapes['lm_head.weight']).toEqual([300, 32])
    expect(shapes['model.norm.weight']).toEqual([32])
    expect(shapes['model.layers.2.self_attn.q_proj.weight']).toEqual([32, 32])
    expect(shapes['model.layers.2.self_attn.k_proj.weight']).toEqual([16, 32])
    expect(shapes['model.layers.2.self_attn.v_proj.weight']).toEqual([16, 32])
    expect(shapes['model.layers.2.self_attn.o_proj.weight']).toEqual([32, 32])
    expect(shapes['model.layers.0.mlp.gate_proj.weight']).toEqual([48, 32])
    expect(shapes['model.layers.0.mlp.up_proj.weight']).toEqual([48, 32])
    expect(shapes['model.layers.0.mlp.down_proj.weight']).toEqual([32, 48])
    expect(shapes['model.layers.0.input_layernorm.weight']).toEqual([32])
    expect(shapes['model.layers.0.post_attention_layernorm.weight']).toEqual([32])
    expect(Object.keys(shapes).filter((n) => n.includes('bias'))).toEqual([])
    expect(header.tensors.length).toBe(3 + 3 * 9)
  })

  it('is deterministic: same seed same bytes, another seed other weights; values are what tinyModelTensors gives', async () => {
    const a = await writeTinyModel(join(root, 'det-a'), { seed: 3 })
    const b = await writeTinyModel(join(root, 'det-b'), { seed: 3 })
    const c = await writeTinyModel(join(root, 'det-c'), { seed: 4 })
    const bytes = (d: string): Buffer => readFileSync(join(d, 'model.safetensors'))
    expect(bytes(a.dir).equals(bytes(b.dir))).toBe(true)
    expect(bytes(a.dir).equals(bytes(c.dir))).toBe(false)
    const { tensors } = await readSafetensors(join(a.dir, 'model.safetensors'))
    for (const t of tinyModelTensors({ seed: 3 })) expect(Array.from(tensors.get(t.name)!.data)).toEqual(Array.from(t.data))
    // Weights look like an initialised model: std near initStd, norm gains near 1.
    const q = tensors.get('model.layers.0.self_attn.q_proj.weight')!.data
    const std = Math.sqrt(q.reduce((s, x) => s + x * x, 0) / q.length)
    expect(std).toBeGreaterThan(0.015)
    expect(std).toBeLessThan(0.025)
    const g = tensors.get('model.norm.weight')!.data
    expect(g.every((x) => x > 0.89 && x < 1.11)).toBe(true)
  })

  it('writes Qwen2 with q/k/v biases and Mistral with its architecture', async () => {
    await writeTinyModel(join(root, 'qwen'), { architecture: 'qwen2' })
    const q = readJson(join(root, 'qwen', 'config.json'))
    expect(q).toMatchObject({ architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', rope_theta: 1000000, rms_norm_eps: 1e-6, use_sliding_window: false })
    const names = (await readSafetensorsHeader(join(root, 'qwen', 'model.safetensors'))).tensors.map((t) => t.name)
    for (const p of ['q', 'k', 'v']) expect(names).toContain(`model.layers.1.self_attn.${p}_proj.bias`)
    expect(names).not.toContain('model.layers.1.self_attn.o_proj.bias')

    await writeTinyModel(join(root, 'mistral'), { architecture: 'mistral' })
    expect(readJson(join(root, 'mistral', 'config.json'))).toMatchObject({ architectures: ['MistralForCausalLM'], model_type: 'mistral', sliding_window: null })
  })

  it('ties embeddings, writes llama3 rope scaling, F16/F32 storage and an explicit head_dim', async () => {
    const dir = join(root, 'tied')
    await writeTinyModel(dir, {
      tieEmbeddings: true, dtype: 'float16', headDim: 32, numHeads: 4, hiddenSize: 64,
      ropeScaling: { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPosition: 64 },
    })
    const cfg = readJson(join(dir, 'config.json'))
    expect(cfg).toMatchObject({ tie_word_embeddings: true, torch_dtype: 'float16', head_dim: 32,
      rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 } })
    const h = await readSafetensorsHeader(join(dir, 'model.safetensors'))
    expect(h.tensors.map((t) => t.name)).not.toContain('lm_head.weight')
    expect(h.tensors.every((t) => t.dtype === 'F16')).toBe(true)
    expect(h.tensors.find((t) => t.name === 'model.layers.0.self_attn.q_proj.weight')!.shape).toEqual([128, 64])

    await writeTinyModel(join(root, 'f32'), { dtype: 'float32' })
    const h32 = await readSafetensorsHeader(join(root, 'f32', 'model.safetensors'))
    expect(h32.tensors.every((t) => t.dtype === 'F32')).toBe(true)
  })

  it('shards with an index whose weight map covers every tensor exactly once', async () => {
    const dir = join(root, 'sharded')
    const info = await writeTinyModel(dir, { shards: 3 })
    expect(info.files).toEqual(['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors'])
    const index = readJson(join(dir, 'model.safetensors.index.json')) as { metadata: { total_size: number }; weight_map: Record<string, string> }
    const all = tinyModelTensors({})
    expect(Object.keys(index.weight_map).sort()).toEqual(all.map((t) => t.name).sort())
    let total = 0
    for (const f of info.files) {
      const h = await readSafetensorsHeader(join(dir, f))
      expect(h.tensors.length).toBeGreaterThan(0)
      for (const t of h.tensors) {
        expect(index.weight_map[t.name]).toBe(f)
        total += t.end - t.begin
      }
      expect(statSync(join(dir, f)).size).toBe(h.dataOffset + h.tensors.reduce((s, t) => Math.max(s, t.end), 0))
    }
    expect(index.metadata.total_size).toBe(total)
  })

  it('lets a test alter or drop tensors, and rejects impossible shapes', async () => {
    const info = await writeTinyModel(join(root, 'hook'), {
      transform: (t) => (t.name === 'model.norm.weight' ? null : t.name === 'lm_head.weight' ? { ...t, shape: [t.shape[1], t.shape[0]] } : t),
    })
    expect(info.shapes.has('model.norm.weight')).toBe(false)
    expect(info.shapes.get('lm_head.weight')).toEqual([64, 256])
    await expect(writeTinyModel(join(root, 'bad'), { numHeads: 4, numKvHeads: 3 })).rejects.toThrow(/multiple of numKvHeads/)
  })
})
