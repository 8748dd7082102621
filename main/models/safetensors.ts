// Safetensors files (https://github.com/huggingface/safetensors): an 8-byte little-endian header length,
// a JSON header { name: { dtype, shape, data_offsets: [begin, end] }, __metadata__?: { k: v } } padded with
// spaces so the data starts 8-byte aligned, then the raw little-endian tensor bytes.
// Writer: fp32 values converted to BF16 (round to nearest even), F16 or F32. Reader: headers and tensors as
// fp32, with the checks a corrupt or truncated file needs. Plain Node, no dependencies.
import { open, readFile, rename, writeFile } from 'node:fs/promises'

export type SafetensorsDtype = 'BF16' | 'F16' | 'F32'

export interface TensorToWrite {
  name: string
  dtype: SafetensorsDtype
  shape: number[]
  /** Row-major values; converted to dtype on write. */
  data: Float32Array
}

export interface SafetensorsEntry {
  name: string
  dtype: string
  shape: number[]
  /** Byte range inside the data section (after the header). */
  begin: number
  end: number
}

export interface SafetensorsHeader {
  /** Byte offset of the data section in the file (8 + header length). */
  dataOffset: number
  tensors: SafetensorsEntry[]
  metadata: Record<string, string>
}

const BYTES: Record<string, number> = { BF16: 2, F16: 2, F32: 4, F64: 8, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 }

export function dtypeBytes(dtype: string): number {
  const n = BYTES[dtype]
  if (!n) throw new Error(`Unknown safetensors dtype "${dtype}"`)
  return n
}

// ---- number conversions --------------------------------------------------------------------------

const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)

/** fp32 -> bf16 bits, round to nearest even (as torch does); NaN stays NaN. */
export function f32ToBf16(x: number): number {
  f32[0] = x
  const bits = u32[0]
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x40) & 0xffff
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff
}

export function bf16ToF32(h: number): number {
  u32[0] = (h & 0xffff) << 16
  return f32[0]
}

/** fp32 -> IEEE half bits, round to nearest even, overflow to infinity, subnormals kept. */
export function f32ToF16(x: number): number {
  f32[0] = x
  const bits = u32[0]
  const sign = (bits >>> 16) & 0x8000
  const exp = (bits >>> 23) & 0xff
  let mant = bits & 0x7fffff
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0)
  let e = exp - 127 + 15
  if (e >= 0x1f) return sign | 0x7c00
  if (e <= 0) {
    if (e < -10) return sign
    mant |= 0x800000
    const shift = 14 - e
    let half = mant >>> shift
    const rest = mant & ((1 << shift) - 1)
    const mid = 1 << (shift - 1)
    if (rest > mid || (rest === mid && (half & 1))) half++
    return sign | half
  }
  let half = (e << 10) | (mant >>> 13)
  const rest = mant & 0x1fff
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1))) half++
  e = half >>> 10
  return sign | (e >= 0x1f ? 0x7c00 : half)
}

export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1
  const exp = (h >>> 10) & 0x1f
  const mant = h & 0x3ff
  if (exp === 0) return sign * mant * 2 ** -24
  if (exp === 0x1f) return mant ? NaN : sign * Infinity
  return sign * (1 + mant / 1024) * 2 ** (exp - 15)
}

/** Values as they will read back after a round trip through dtype (what the engine sees). */
export function roundToDtype(data: Float32Array, dtype: SafetensorsDtype): Float32Array {
  if (dtype === 'F32') return Float32Array.from(data)
  const out = new Float32Array(data.length)
  for (let i = 0; i < data.length; i++) out[i] = dtype === 'BF16' ? bf16ToF32(f32ToBf16(data[i])) : f16ToF32(f32ToF16(data[i]))
  return out
}

export function encodeTensor(data: Float32Array, dtype: SafetensorsDtype): Buffer {
  if (dtype === 'F32') {
    const b = Buffer.alloc(data.length * 4)
    for (let i = 0; i < data.length; i++) b.writeFloatLE(data[i], i * 4)
    return b
  }
  const b = Buffer.alloc(data.length * 2)
  const conv = dtype === 'BF16' ? f32ToBf16 : f32ToF16
  for (let i = 0; i < data.length; i++) b.writeUInt16LE(conv(data[i]), i * 2)
  return b
}

export function decodeTensor(bytes: Buffer, dtype: string): Float32Array {
  const size = dtypeBytes(dtype)
  const n = Math.floor(bytes.length / size)
  const out = new Float32Array(n)
  if (dtype === 'F32') for (let i = 0; i < n; i++) out[i] = bytes.readFloatLE(i * 4)
  else if (dtype === 'BF16') for (let i = 0; i < n; i++) out[i] = bf16ToF32(bytes.readUInt16LE(i * 2))
  else if (dtype === 'F16') for (let i = 0; i < n; i++) out[i] = f16ToF32(bytes.readUInt16LE(i * 2))
  else throw new Error(`Cannot decode safetensors dtype ${dtype} as float`)
  return out
}

// ---- writing -------------------------------------------------------------------------------------

/** The file's first bytes for tensors stored one after another in this order: the 8-byte header length, then the
 *  JSON header padded with spaces so the data starts 8-byte aligned. */
export function encodeSafetensorsHeader(tensors: { name: string; dtype: string; shape: number[]; bytes: number }[], metadata?: Record<string, string>): Buffer {
  const header: Record<string, unknown> = {}
  if (metadata) header.__metadata__ = metadata
  let offset = 0
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes] }
    offset += t.bytes
  }
  let json = JSON.stringify(header)
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json, 'utf8')) % 8)) % 8)
  const head = Buffer.from(json, 'utf8')
  const len = Buffer.alloc(8)
  len.writeBigUInt64LE(BigInt(head.length))
  return Buffer.concat([len, head])
}

/** The whole file as bytes: header (8-byte aligned) + data in the given tensor order. */
export function encodeSafetensors(tensors: TensorToWrite[], metadata?: Record<string, string>): Buffer {
  const seen = new Set<string>()
  const chunks = tensors.map((t) => {
    if (seen.has(t.name)) throw new Error(`Duplicate tensor name ${t.name}`)
    seen.add(t.name)
    const count = t.shape.reduce((a, b) => a * b, 1)
    if (count !== t.data.length) throw new Error(`Tensor ${t.name}: shape [${t.shape}] holds ${count} values, data has ${t.data.length}`)
    return encodeTensor(t.data, t.dtype)
  })
  const header = encodeSafetensorsHeader(tensors.map((t, i) => ({ name: t.name, dtype: t.dtype, shape: t.shape, bytes: chunks[i].length })), metadata)
  return Buffer.concat([header, ...chunks])
}

/** Writes a safetensors file atomically (temporary name, then rename). */
export async function writeSafetensors(path: string, tensors: TensorToWrite[], metadata?: Record<string, string>): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`
  await writeFile(tmp, encodeSafetensors(tensors, metadata))
  await rename(tmp, path)
}

// ---- reading -------------------------------------------------------------------------------------

/** Parses and checks a header from the file's first bytes (fileSize to check that data fits). */
export function parseSafetensorsHeader(head: Buffer, fileSize: number, label = 'safetensors file'): SafetensorsHeader {
  if (head.length < 8) throw new Error(`${label} is too short to be a safetensors file (${fileSize} bytes).`)
  const len = head.readBigUInt64LE(0)
  if (len > BigInt(fileSize - 8) || len > 100_000_000n) throw new Error(`${label}: header length ${len} exceeds the file size (${fileSize} bytes): the file is truncated or not safetensors.`)
  const n = Number(len)
  if (head.length < 8 + n) throw new Error(`${label}: header truncated.`)
  let raw: unknown
  try {
    raw = JSON.parse(head.subarray(8, 8 + n).toString('utf8'))
  } catch {
    throw new Error(`${label}: the header is not valid JSON (the file is corrupt).`)
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${label}: the header is not a JSON object.`)
  const dataOffset = 8 + n
  const dataSize = fileSize - dataOffset
  const tensors: SafetensorsEntry[] = []
  let metadata: Record<string, string> = {}
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = (value ?? {}) as Record<string, string>
      continue
    }
    const v = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown }
    if (typeof v?.dtype !== 'string' || !Array.isArray(v.shape) || !Array.isArray(v.data_offsets) || v.data_offsets.length !== 2) {
      throw new Error(`${label}: tensor ${name} has a malformed header entry.`)
    }
    const shape = v.shape as number[]
    const [begin, end] = v.data_offsets as number[]
    if (!shape.every((d) => Number.isInteger(d) && d >= 0)) throw new Error(`${label}: tensor ${name} has an invalid shape.`)
    if (!Number.isInteger(begin) || !Number.isInteger(end) || begin < 0 || end < begin) throw new Error(`${label}: tensor ${name} has invalid data offsets.`)
    if (end > dataSize) throw new Error(`${label}: tensor ${name} ends at byte ${end} of a ${dataSize}-byte data section (the file is truncated).`)
    const bytes = BYTES[v.dtype]
    if (bytes && shape.reduce((a, b) => a * b, 1) * bytes !== end - begin) throw new Error(`${label}: tensor ${name} has ${end - begin} bytes for shape [${shape}] ${v.dtype}.`)
    tensors.push({ name, dtype: v.dtype, shape, begin, end })
  }
  return { dataOffset, tensors, metadata }
}

/** Reads only the header of a file (no tensor data). */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const fh = await open(path, 'r')
  try {
    const { size } = await fh.stat()
    const lenBuf = Buffer.alloc(8)
    await fh.read(lenBuf, 0, 8, 0)
    const len = size >= 8 ? Number(lenBuf.readBigUInt64LE(0)) : 0
    const want = Math.min(size, 8 + Math.min(len, 100_000_000))
    const head = Buffer.alloc(want)
    await fh.read(head, 0, want, 0)
    return parseSafetensorsHeader(head, size, path)
  } finally {
    await fh.close()
  }
}

/** Reads a whole file: every tensor as fp32 (BF16/F16/F32 only). For tests and small files. */
export async function readSafetensors(path: string): Promise<{ header: SafetensorsHeader; tensors: Map<string, { dtype: string; shape: number[]; data: Float32Array }> }> {
  const buf = await readFile(path)
  const header = parseSafetensorsHeader(buf, buf.length, path)
  const tensors = new Map<string, { dtype: string; shape: number[]; data: Float32Array }>()
  for (const t of header.tensors) {
    tensors.set(t.name, { dtype: t.dtype, shape: t.shape, data: decodeTensor(buf.subarray(header.dataOffset + t.begin, header.dataOffset + t.end), t.dtype) })
  }
  return { header, tensors }
}
