// ggml tensor encodings for GGUF export: F32, F16, BF16 (round to nearest even) and the quantized blocks Q8_0, Q4_K
// and Q6_K, written as ggml's reference quantizers do (ggml-quants.c: quantize_row_q8_0_ref, quantize_row_q4_K_ref,
// quantize_row_q6_K_ref, the ones llama-quantize uses without an importance matrix), with every intermediate rounded
// to fp32 (Math.fround) as the C code computes in float. Decoders for all of them (tests, the self-test's checks).
// Block layouts (ggml-common.h), little-endian:
//   Q8_0  per 32 values: f16 d, int8 qs[32]                        x = d * q
//   Q4_K  per 256 values: f16 d, f16 dmin, u8 scales[12], u8 qs[128] 8 sub-blocks of 32 with 6-bit scale sc and min m:
//         x = d*sc * q - dmin*m, q in 0..15; sub-blocks 2k and 2k+1 share qs[32k..32k+31] (low / high nibble)
//   Q6_K  per 256 values: u8 ql[128], u8 qh[64], i8 scales[16], f16 d 16 sub-blocks of 16: x = d*scale * (q - 32)
import { f16ToF32, f32ToF16 } from '../../models/safetensors'
import { GGML_BLOCK, type GgmlType } from './ggufFormat'

const fr = Math.fround

/** ggml's nearest_int: round half to even of a float (valid for |x| < 2^22). */
function nearestInt(x: number): number {
  return fr(fr(x) + 12582912) - 12582912
}


// ---- F32 / F16 / BF16 ----------------------------------------------------------------------------

function encodeF32(x: Float32Array): Buffer {
  return Buffer.from(new Uint8Array(x.buffer, x.byteOffset, x.byteLength)) // a copy; ggml files are little-endian like the host
}

/** fp32 bits -> IEEE half bits, round to nearest even (overflow to infinity, subnormals kept, NaN stays NaN). */
function halfBits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000
  const exp = (bits >>> 23) & 0xff
  const mant = bits & 0x7fffff
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0)
  const e = exp - 112 // rebias 127 -> 15
  if (e >= 31) return sign | 0x7c00
  if (e <= 0) {
    if (e < -10) return sign
    const m = mant | 0x800000
    const shift = 14 - e
    let half = m >>> shift
    const rest = m & ((1 << shift) - 1)
    const mid = 1 << (shift - 1)
    if (rest > mid || (rest === mid && half & 1)) half++
    return sign | half
  }
  let half = (e << 10) | (mant >>> 13)
  const rest = mant & 0x1fff
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half++ // a carry into the exponent rounds up to the next power (or to infinity)
  return sign | half
}

function encodeF16(x: Float32Array): Buffer {
  const out = Buffer.allocUnsafeSlow(x.length * 2)
  const o = new Uint16Array(out.buffer, out.byteOffset, x.length)
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length)
  for (let i = 0; i < x.length; i++) o[i] = halfBits(u[i])
  return out
}

function encodeBf16(x: Float32Array): Buffer {
  const out = Buffer.allocUnsafeSlow(x.length * 2)
  const o = new Uint16Array(out.buffer, out.byteOffset, x.length)
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length)
  for (let i = 0; i < x.length; i++) {
    const bits = u[i]
    o[i] = (bits & 0x7fffffff) > 0x7f800000 ? (bits >>> 16) | 0x40 : (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16
  }
  return out
}

// ---- Q8_0 ----------------------------------------------------------------------------------------

function encodeQ8_0(x: Float32Array): Buffer {
  const nb = x.length / 32
  const out = Buffer.allocUnsafeSlow(nb * 34)
  const q = new Int8Array(out.buffer, out.byteOffset, out.length)
  const f = new Float32Array(1)
  const fu = new Uint32Array(f.buffer)
  for (let b = 0; b < nb; b++) {
    const o = b * 32
    let amax = 0
    for (let j = 0; j < 32; j++) {
      const a = Math.abs(x[o + j])
      if (a > amax) amax = a
    }
    const d = fr(amax / 127)
    const id = d ? fr(1 / d) : 0
    const p = b * 34
    f[0] = d
    const h = halfBits(fu[0])
    out[p] = h & 0xff
    out[p + 1] = h >>> 8
    for (let j = 0; j < 32; j++) {
      const v = fr(x[o + j] * id)
      q[p + 2 + j] = v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5)
    }
  }
  return out
}

function decodeQ8_0(buf: Buffer, n: number): Float32Array {
  const out = new Float32Array(n)
  for (let b = 0; b < n / 32; b++) {
    const d = f16ToF32(buf.readUInt16LE(b * 34))
    for (let j = 0; j < 32; j++) out[b * 32 + j] = fr(buf.readInt8(b * 34 + 2 + j) * d)
  }
  return out
}

// ---- Q4_K ----------------------------------------------------------------------------------------

// Scratch for makeQkx2Quants (one sub-block at a time).
const XM = new Float32Array(32)

/**
 * ggml make_qkx2_quants for a sub-block xs[0..n): a scale and a min mapping it to levels 0..nmax (in L[lo..]),
 * refined by trying nstep + 1 scales around nmax / (max - min) and keeping the least weighted squared error.
 * x - min is computed once (it does not change between the tries).
 */
function makeQkx2Quants(n: number, nmax: number, xs: Float32Array, w: Float32Array, L: Uint8Array, lo: number, laux: Uint8Array,
  rmin: number, rdelta: number, nstep: number): { scale: number; min: number } {
  let min = xs[0]
  let max = xs[0]
  let sumW = w[0]
  let sumX = fr(sumW * xs[0])
  for (let i = 1; i < n; i++) {
    const v = xs[i]
    if (v < min) min = v
    if (v > max) max = v
    sumW = fr(sumW + w[i])
    sumX = fr(sumX + fr(w[i] * v))
  }
  if (min > 0) min = 0
  if (max === min) {
    for (let i = 0; i < n; i++) L[lo + i] = 0
    return { scale: 0, min: -min }
  }
  const xm = XM
  for (let i = 0; i < n; i++) xm[i] = xs[i] - min // stored as float: fr(x - min)
  const range = fr(max - min)
  let iscale = fr(nmax / range)
  let scale = fr(1 / iscale)
  let bestError = 0
  for (let i = 0; i < n; i++) {
    let l = fr(fr(iscale * xm[i]) + 12582912) - 12582912
    l = l < 0 ? 0 : l > nmax ? nmax : l
    L[lo + i] = l
    const diff = fr(fr(fr(scale * l) + min) - xs[i])
    bestError = fr(bestError + fr(w[i] * fr(diff * diff)))
  }
  for (let is = 0; is <= nstep; is++) {
    iscale = fr(fr(fr(rmin + fr(rdelta * is)) + nmax) / range)
    let sumL = 0
    let sumL2 = 0
    let sumXL = 0
    for (let i = 0; i < n; i++) {
      let l = fr(fr(iscale * xm[i]) + 12582912) - 12582912
      l = l < 0 ? 0 : l > nmax ? nmax : l
      laux[i] = l
      const wl = fr(w[i] * l)
      sumL = fr(sumL + wl)
      sumL2 = fr(sumL2 + fr(wl * l))
      sumXL = fr(sumXL + fr(wl * xs[i]))
    }
    const D = fr(fr(sumW * sumL2) - fr(sumL * sumL))
    if (D > 0) {
      let thisScale = fr(fr(fr(sumW * sumXL) - fr(sumX * sumL)) / D)
      let thisMin = fr(fr(fr(sumL2 * sumX) - fr(sumL * sumXL)) / D)
      if (thisMin > 0) {
        thisMin = 0
        thisScale = fr(sumXL / sumL2)
      }
      let cur = 0
      for (let i = 0; i < n; i++) {
        const diff = fr(fr(fr(thisScale * laux[i]) + thisMin) - xs[i])
        cur = fr(cur + fr(w[i] * fr(diff * diff)))
      }
      if (cur < bestError) {
        for (let i = 0; i < n; i++) L[lo + i] = laux[i]
        bestError = cur
        scale = thisScale
        min = thisMin
      }
    }
  }
  return { scale, min: -min }
}

/** 6-bit scale and min of sub-block j from the packed 12 bytes (ggml get_scale_min_k4). */
function scaleMinK4(j: number, q: Buffer, o: number): [number, number] {
  if (j < 4) return [q[o + j] & 63, q[o + j + 4] & 63]
  return [(q[o + j + 4] & 0xf) | ((q[o + j - 4] >> 6) << 4), (q[o + j + 4] >> 4) | ((q[o + j] >> 6) << 4)]
}

function encodeQ4_K(x: Float32Array): Buffer {
  const nb = x.length / 256
  const out = Buffer.alloc(nb * 144)
  const L = new Uint8Array(256)
  const laux = new Uint8Array(32)
  const weights = new Float32Array(32)
  const xs = new Float32Array(32)
  const scales = new Float32Array(8)
  const mins = new Float32Array(8)
  for (let b = 0; b < nb; b++) {
    const xo = b * 256
    const p = b * 144
    let maxScale = 0
    let maxMin = 0
    for (let j = 0; j < 8; j++) {
      let sumX2 = 0
      for (let l = 0; l < 32; l++) {
        const v = x[xo + 32 * j + l]
        xs[l] = v
        sumX2 = fr(sumX2 + fr(v * v))
      }
      const avX = fr(Math.sqrt(fr(sumX2 / 32)))
      for (let l = 0; l < 32; l++) weights[l] = fr(avX + Math.abs(xs[l]))
      const r = makeQkx2Quants(32, 15, xs, weights, L, 32 * j, laux, -1, fr(0.1), 20)
      scales[j] = r.scale
      mins[j] = r.min
      if (r.scale > maxScale) maxScale = r.scale
      if (r.min > maxMin) maxMin = r.min
    }
    const invScale = maxScale > 0 ? fr(63 / maxScale) : 0
    const invMin = maxMin > 0 ? fr(63 / maxMin) : 0
    const sc = p + 4 // scales[12] start
    for (let j = 0; j < 8; j++) {
      const ls = Math.min(63, nearestInt(fr(invScale * scales[j])) & 0xff)
      const lm = Math.min(63, nearestInt(fr(invMin * mins[j])) & 0xff)
      if (j < 4) {
        out[sc + j] = ls
        out[sc + j + 4] = lm
      } else {
        out[sc + j + 4] = (ls & 0xf) | ((lm & 0xf) << 4)
        out[sc + j - 4] |= (ls >> 4) << 6
        out[sc + j] |= (lm >> 4) << 6
      }
    }
    const dBits = f32ToF16(fr(maxScale / 63))
    const dminBits = f32ToF16(fr(maxMin / 63))
    out.writeUInt16LE(dBits, p)
    out.writeUInt16LE(dminBits, p + 2)
    const dAll = f16ToF32(dBits)
    const dminAll = f16ToF32(dminBits)
    for (let j = 0; j < 8; j++) {
      const [s, m] = scaleMinK4(j, out, sc)
      const d = fr(dAll * s)
      if (!d) continue
      const dm = fr(dminAll * m)
      for (let ii = 0; ii < 32; ii++) {
        L[32 * j + ii] = Math.max(0, Math.min(15, nearestInt(fr(fr(x[xo + 32 * j + ii] + dm) / d))))
      }
    }
    const qs = p + 16
    for (let j = 0, q = qs; j < 256; j += 64, q += 32) {
      for (let l = 0; l < 32; l++) out[q + l] = L[j + l] | (L[j + l + 32] << 4)
    }
  }
  return out
}

function decodeQ4_K(buf: Buffer, n: number): Float32Array {
  const out = new Float32Array(n)
  for (let b = 0; b < n / 256; b++) {
    const p = b * 144
    const d = f16ToF32(buf.readUInt16LE(p))
    const dmin = f16ToF32(buf.readUInt16LE(p + 2))
    let y = b * 256
    let q = p + 16
    for (let j = 0, is = 0; j < 256; j += 64, q += 32, is += 2) {
      const [s1, m1] = scaleMinK4(is, buf, p + 4)
      const [s2, m2] = scaleMinK4(is + 1, buf, p + 4)
      const d1 = fr(d * s1)
      const mm1 = fr(dmin * m1)
      const d2 = fr(d * s2)
      const mm2 = fr(dmin * m2)
      for (let l = 0; l < 32; l++) out[y++] = fr(fr(d1 * (buf[q + l] & 0xf)) - mm1)
      for (let l = 0; l < 32; l++) out[y++] = fr(fr(d2 * (buf[q + l] >> 4)) - mm2)
    }
  }
  return out
}

// ---- Q6_K ----------------------------------------------------------------------------------------

const GROUP_MAX_EPS = fr(1e-15)

/** ggml make_qx_quants with rmse_type 1 (weights x^2) and no importance weights: symmetric levels -nmax..nmax-1. */
function makeQxQuants(n: number, nmax: number, x: Float32Array, xo: number, L: Int8Array, lo: number): number {
  let max = 0
  let amax = 0
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[xo + i])
    if (ax > amax) {
      amax = ax
      max = x[xo + i]
    }
  }
  if (amax < GROUP_MAX_EPS) {
    for (let i = 0; i < n; i++) L[lo + i] = 0
    return 0
  }
  const sums = (iscale: number, store: boolean): [number, number] => {
    let sumlx = 0
    let suml2 = 0
    for (let i = 0; i < n; i++) {
      const v = x[xo + i]
      const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(fr(iscale * v))))
      if (store) L[lo + i] = l + nmax
      const w = fr(v * v)
      sumlx = fr(sumlx + fr(fr(w * v) * l))
      suml2 = fr(suml2 + fr(fr(w * l) * l))
    }
    return [sumlx, suml2]
  }
  let [sumlx, suml2] = sums(fr(-nmax / max), true)
  let scale = suml2 ? fr(sumlx / suml2) : 0
  let best = fr(scale * sumlx)
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue
    const iscale = fr(-fr(nmax + fr(fr(0.1) * is)) / max)
    ;[sumlx, suml2] = sums(iscale, false)
    if (suml2 > 0 && fr(sumlx * sumlx) > fr(best * suml2)) {
      sums(iscale, true)
      scale = fr(sumlx / suml2)
      best = fr(scale * sumlx)
    }
  }
  return scale
}

function encodeQ6_K(x: Float32Array): Buffer {
  const nb = x.length / 256
  const out = Buffer.alloc(nb * 210)
  const L = new Int8Array(256)
  const scales = new Float32Array(16)
  for (let b = 0; b < nb; b++) {
    const xo = b * 256
    const p = b * 210 // ql[128] qh[64] scales[16] d
    let maxScale = 0
    let maxAbsScale = 0
    for (let ib = 0; ib < 16; ib++) {
      const s = makeQxQuants(16, 32, x, xo + 16 * ib, L, 16 * ib)
      scales[ib] = s
      if (Math.abs(s) > maxAbsScale) {
        maxAbsScale = Math.abs(s)
        maxScale = s
      }
    }
    if (maxAbsScale < GROUP_MAX_EPS) continue // all zero: a zero block (d = 0)
    const iscale = fr(-128 / maxScale)
    const dBits = f32ToF16(fr(1 / iscale))
    out.writeUInt16LE(dBits, p + 208)
    const dAll = f16ToF32(dBits)
    for (let ib = 0; ib < 16; ib++) out.writeInt8(Math.min(127, nearestInt(fr(iscale * scales[ib]))), p + 192 + ib)
    for (let j = 0; j < 16; j++) {
      const d = fr(dAll * out.readInt8(p + 192 + j))
      if (!d) continue
      for (let ii = 0; ii < 16; ii++) L[16 * j + ii] = Math.max(-32, Math.min(31, nearestInt(fr(x[xo + 16 * j + ii] / d)))) + 32
    }
    for (let j = 0, ql = p, qh = p + 128; j < 256; j += 128, ql += 64, qh += 32) {
      for (let l = 0; l < 32; l++) {
        const q1 = L[j + l] & 0xf
        const q2 = L[j + l + 32] & 0xf
        const q3 = L[j + l + 64] & 0xf
        const q4 = L[j + l + 96] & 0xf
        out[ql + l] = q1 | (q3 << 4)
        out[ql + l + 32] = q2 | (q4 << 4)
        out[qh + l] = (L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6)
      }
    }
  }
  return out
}

function decodeQ6_K(buf: Buffer, n: number): Float32Array {
  const out = new Float32Array(n)
  for (let b = 0; b < n / 256; b++) {
    const p = b * 210
    const d = f16ToF32(buf.readUInt16LE(p + 208))
    for (let half = 0; half < 2; half++) {
      const ql = p + 64 * half
      const qh = p + 128 + 32 * half
      const sc = p + 192 + 8 * half
      const y = b * 256 + 128 * half
      for (let l = 0; l < 32; l++) {
        const is = l >> 4
        const q1 = ((buf[ql + l] & 0xf) | (((buf[qh + l] >> 0) & 3) << 4)) - 32
        const q2 = ((buf[ql + l + 32] & 0xf) | (((buf[qh + l] >> 2) & 3) << 4)) - 32
        const q3 = ((buf[ql + l] >> 4) | (((buf[qh + l] >> 4) & 3) << 4)) - 32
        const q4 = ((buf[ql + l + 32] >> 4) | (((buf[qh + l] >> 6) & 3) << 4)) - 32
        out[y + l] = fr(fr(d * buf.readInt8(sc + is)) * q1)
        out[y + l + 32] = fr(fr(d * buf.readInt8(sc + is + 2)) * q2)
        out[y + l + 64] = fr(fr(d * buf.readInt8(sc + is + 4)) * q3)
        out[y + l + 96] = fr(fr(d * buf.readInt8(sc + is + 6)) * q4)
      }
    }
  }
  return out
}

// ---- public --------------------------------------------------------------------------------------

/** Encodes whole rows (row length a multiple of the type's block) into ggml's bytes for `type`. */
export function encodeGgml(type: GgmlType, x: Float32Array, rowLength: number): Buffer {
  const block = GGML_BLOCK[type].elements
  if (rowLength % block !== 0 || x.length % rowLength !== 0) {
    throw new Error(`Cannot encode rows of ${rowLength} values as ${type} (blocks of ${block}).`)
  }
  switch (type) {
    case 'F32': return encodeF32(x)
    case 'F16': return encodeF16(x)
    case 'BF16': return encodeBf16(x)
    case 'Q8_0': return encodeQ8_0(x)
    case 'Q4_K': return encodeQ4_K(x)
    case 'Q6_K': return encodeQ6_K(x)
  }
}

/** Decodes `n` values of ggml type `type` (tests and checks). */
export function decodeGgml(type: GgmlType, buf: Buffer, n: number): Float32Array {
  switch (type) {
    case 'F32': {
      const out = new Float32Array(n)
      for (let i = 0; i < n; i++) out[i] = buf.readFloatLE(4 * i)
      return out
    }
    case 'F16': {
      const out = new Float32Array(n)
      for (let i = 0; i < n; i++) out[i] = f16ToF32(buf.readUInt16LE(2 * i))
      return out
    }
    case 'BF16': {
      const out = new Float32Array(n)
      const u = new Uint32Array(out.buffer)
      for (let i = 0; i < n; i++) u[i] = buf.readUInt16LE(2 * i) << 16
      return out
    }
    case 'Q8_0': return decodeQ8_0(buf, n)
    case 'Q4_K': return decodeQ4_K(buf, n)
    case 'Q6_K': return decodeQ6_K(buf, n)
  }
}
