// GGUF container and ggml encodings, checked against the spec (gguf-py constants/gguf_writer, ggml-quants.c) with
// hand-built bytes and values: header fields, metadata of every type, tensor infos (dimensions innermost first),
// alignment, and the block formats (Q8_0 rounding, Q4_K/Q6_K errors, F16/BF16 rounding to nearest even).
import { writeFile } from 'node:fs/promises'
import { afterAll, describe, expect, it } from 'vitest'
import { decodeGgml, encodeGgml } from '../../../main/export/gguf/ggmlQuant'
import { GGML_BLOCK, kv, layoutGguf, readGgufHeader, readGgufTensorBytes, type GgufMetadata } from '../../../main/export/gguf/ggufFormat'
import { permuteHeads, useMoreBits } from '../../../main/export/gguf/writeGguf'
import { f16ToF32 } from '../../../main/models/safetensors'
import { scratchDir } from './helpers'

const s = scratchDir('qt-gguf-fmt-')
afterAll(() => s.cleanup())

function rng(seed: number): () => number {
  let x = seed >>> 0
  return () => {
    x = (x + 0x6d2b79f5) >>> 0
    let t = x
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function gaussian(n: number, seed: number, std = 1): Float32Array {
  const r = rng(seed)
  const out = new Float32Array(n)
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(Math.max(r(), 1e-12))) * Math.cos(2 * Math.PI * r()) * std
  return out
}

describe('GGUF container', () => {
  it('writes the v3 header, typed metadata and tensor infos exactly as the spec lays them out', async () => {
    const md: GgufMetadata = new Map()
    md.set('general.architecture', kv.str('llama'))
    md.set('a.u32', kv.u32(4096))
    md.set('a.f32', kv.f32(1e-5))
    md.set('a.bool', kv.bool(true))
    md.set('a.tokens', kv.strings(['<|eot_id|>', 'Ġthe', '年']))
    md.set('a.types', kv.i32s([3, 1, 1]))
    const layout = layoutGguf(md, [
      { name: 'token_embd.weight', ne: [64, 10], type: 'F16' },
      { name: 'blk.0.attn_norm.weight', ne: [64], type: 'F32' },
      { name: 'blk.0.ffn_up.weight', ne: [64, 3], type: 'Q8_0' },
    ])
    const h = layout.header
    expect(h.subarray(0, 4).toString('latin1')).toBe('GGUF')
    expect(h.readUInt32LE(4)).toBe(3)
    expect(h.readBigUInt64LE(8)).toBe(3n) // tensors
    expect(h.readBigUInt64LE(16)).toBe(6n) // metadata entries
    // first key: u64 length + "general.architecture", type STRING (8), value
    expect(h.readBigUInt64LE(24)).toBe(20n)
    expect(h.subarray(32, 52).toString()).toBe('general.architecture')
    expect(h.readUInt32LE(52)).toBe(8)
    expect(h.readBigUInt64LE(56)).toBe(5n)
    expect(h.subarray(64, 69).toString()).toBe('llama')
    expect(h.length % 32).toBe(0)
    // data: F16 10x64 = 1280 bytes, F32 64 = 256 bytes, Q8_0 3 rows x 2 blocks x 34 = 204 bytes; each aligned to 32
    expect(layout.sizes).toEqual([1280, 256, 204])
    expect(layout.offsets).toEqual([0, 1280, 1536])
    expect(layout.fileBytes).toBe(h.length + 1536 + 224)

    const path = s.path('hand.gguf')
    const data = Buffer.alloc(layout.fileBytes - h.length, 7)
    await writeFile(path, Buffer.concat([h, data]))
    const file = await readGgufHeader(path)
    expect(file.version).toBe(3)
    expect([...file.metadata.keys()]).toEqual(['general.architecture', 'a.u32', 'a.f32', 'a.bool', 'a.tokens', 'a.types'])
    expect(file.metadata.get('a.u32')).toEqual({ kind: 'u32', value: 4096 })
    expect(file.metadata.get('a.f32')).toEqual({ kind: 'f32', value: Math.fround(1e-5) })
    expect(file.metadata.get('a.bool')).toEqual({ kind: 'bool', value: true })
    expect(file.metadata.get('a.tokens')).toEqual({ kind: 'array', itemKind: 'string', value: ['<|eot_id|>', 'Ġthe', '年'] })
    expect(file.metadata.get('a.types')).toEqual({ kind: 'array', itemKind: 'i32', value: [3, 1, 1] })
    expect(file.tensors.map((t) => [t.name, t.ne, t.type, t.fileOffset - file.dataOffset])).toEqual([
      ['token_embd.weight', [64, 10], 'F16', 0],
      ['blk.0.attn_norm.weight', [64], 'F32', 1280],
      ['blk.0.ffn_up.weight', [64, 3], 'Q8_0', 1536],
    ])
    expect((await readGgufTensorBytes(path, file.tensors[2])).length).toBe(204)
  })

  it('refuses what llama.cpp would refuse: empty arrays, bad rows, long names; and reports truncated files', async () => {
    const md: GgufMetadata = new Map([['x', kv.strings([])]])
    expect(() => layoutGguf(md, [])).toThrow(/cannot be empty/)
    expect(() => layoutGguf(new Map(), [{ name: 't', ne: [48, 2], type: 'Q8_0' }])).toThrow(/blocks of 32/)
    expect(() => layoutGguf(new Map(), [{ name: 'x'.repeat(64), ne: [4], type: 'F32' }])).toThrow(/too long/)
    expect(() => layoutGguf(new Map([['n', kv.u32(-1)]]), [])).toThrow(/not a valid u32/)
    const layout = layoutGguf(new Map([['general.architecture', kv.str('llama')]]), [{ name: 't', ne: [32, 4], type: 'F32' }])
    const path = s.path('short.gguf')
    await writeFile(path, Buffer.concat([layout.header, Buffer.alloc(100)]))
    await expect(readGgufHeader(path)).rejects.toThrow(/truncated/)
    await writeFile(s.path('junk.gguf'), Buffer.from('not a gguf file at all'))
    await expect(readGgufHeader(s.path('junk.gguf'))).rejects.toThrow(/magic/)
  })
})

describe('ggml encodings', () => {
  it('F16 and BF16 round to nearest even', () => {
    // 1 + 2^-11 is halfway between two halves (1 and 1 + 2^-10): ties to the even one (1).
    const x = new Float32Array([1 + 2 ** -11, 1 + 3 * 2 ** -11, 65520, -0.1])
    const h = decodeGgml('F16', encodeGgml('F16', x, 4), 4)
    expect(Array.from(h)).toEqual([1, 1 + 2 ** -9, Infinity, f16ToF32(0xae66)])
    const b = decodeGgml('BF16', encodeGgml('BF16', new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8]), 2), 2)
    expect(Array.from(b)).toEqual([1, 1 + 2 ** -6])
  })

  it('Q8_0 is ggml quantize_row_q8_0_ref: d = amax/127 as f16, q = roundf(x / d) with ties away from zero', () => {
    const x = new Float32Array(32)
    x[0] = 127 // amax: d = 1, id = 1
    x[1] = 2.5 // tie: roundf -> 3 (Math.round would give 3 too)
    x[2] = -2.5 // tie: roundf -> -3 (Math.round would give -2)
    x[3] = -127
    x[4] = 0.49
    const buf = encodeGgml('Q8_0', x, 32)
    expect(buf.length).toBe(34)
    expect(f16ToF32(buf.readUInt16LE(0))).toBe(1)
    expect([buf.readInt8(2), buf.readInt8(3), buf.readInt8(4), buf.readInt8(5), buf.readInt8(6)]).toEqual([127, 3, -3, -127, 0])
    // An all-zero block: d = 0, all quants 0.
    expect(Array.from(decodeGgml('Q8_0', encodeGgml('Q8_0', new Float32Array(32), 32), 32))).toEqual(new Array(32).fill(0))
    // Random rows: every value within half a step of the original.
    const r = gaussian(32 * 64, 3, 0.02)
    const d = decodeGgml('Q8_0', encodeGgml('Q8_0', r, 256), r.length)
    for (let bIdx = 0; bIdx < r.length / 32; bIdx++) {
      let amax = 0
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(r[bIdx * 32 + j]))
      // half a step, plus the f16 rounding of the step times the largest level
      for (let j = 0; j < 32; j++) expect(Math.abs(d[bIdx * 32 + j] - r[bIdx * 32 + j])).toBeLessThanOrEqual((amax / 127) * (0.5 + 127 * 2 ** -11))
    }
  })

  it('Q4_K and Q6_K keep 4- and 6-bit precision and survive zero and constant blocks', () => {
    const r = gaussian(256 * 16, 9, 0.05)
    const err = (type: 'Q4_K' | 'Q6_K') => {
      const d = decodeGgml(type, encodeGgml(type, r, 1024), r.length)
      let se = 0
      let ss = 0
      for (let i = 0; i < r.length; i++) {
        se += (d[i] - r[i]) ** 2
        ss += r[i] ** 2
      }
      return Math.sqrt(se / ss)
    }
    expect(encodeGgml('Q4_K', r, 1024).length).toBe(16 * GGML_BLOCK.Q4_K.bytes)
    expect(encodeGgml('Q6_K', r, 1024).length).toBe(16 * GGML_BLOCK.Q6_K.bytes)
    const e4 = err('Q4_K')
    const e6 = err('Q6_K')
    expect(e4).toBeGreaterThan(0.03) // 4 bits are not free ...
    expect(e4).toBeLessThan(0.1) // ... but about 7% for Gaussian weights, as llama.cpp's Q4_K
    expect(e6).toBeLessThan(0.03)
    expect(e6).toBeLessThan(e4 / 3)
    for (const type of ['Q4_K', 'Q6_K'] as const) {
      expect(decodeGgml(type, encodeGgml(type, new Float32Array(256), 256), 256).every((v) => v === 0)).toBe(true)
      const c = decodeGgml(type, encodeGgml(type, new Float32Array(256).fill(0.25), 256), 256)
      for (const v of c) expect(Math.abs(v - 0.25)).toBeLessThan(0.01)
    }
  })
})

describe('llama.cpp conversion rules', () => {
  it('permutes q/k rows per head like convert_hf_to_gguf (reshape(n_head, 2, hd/2, in).swapaxes(1, 2))', () => {
    // 2 heads of 4 rows, rows of 1 value: HF rows [h0: a0 a1 b0 b1 | h1: c0 c1 d0 d1] -> [a0 b0 a1 b1 | c0 d0 c1 d1]
    const x = new Float32Array([0, 1, 2, 3, 10, 11, 12, 13])
    expect(Array.from(permuteHeads(x, 1, 4))).toEqual([0, 2, 1, 3, 10, 12, 11, 13])
    // Rows of 3 values move as whole rows.
    const y = new Float32Array(Array.from({ length: 12 }, (_, i) => i))
    expect(Array.from(permuteHeads(y, 3, 4))).toEqual([0, 1, 2, 6, 7, 8, 3, 4, 5, 9, 10, 11])
  })

  it('use_more_bits picks the Q4_K_M layers of llama-quantize', () => {
    // 32 layers (Llama 3 8B): the first 4, the last 4, and every third one from layer 6.
    const picked = Array.from({ length: 32 }, (_, i) => i).filter((i) => useMoreBits(i, 32))
    expect(picked).toEqual([0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31])
  })
})
