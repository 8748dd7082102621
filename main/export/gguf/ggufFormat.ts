// GGUF version 3, the file format of llama.cpp / ggml (read from ggml's gguf-py: constants.py, gguf_writer.py, and
// the loader in llama.cpp's gguf.cpp). Little-endian throughout:
//   u32 magic "GGUF" | u32 version 3 | u64 tensor count | u64 metadata count
//   metadata: string key (u64 byte length + UTF-8), u32 value type, value (arrays: u32 item type, u64 count, items)
//   tensor infos: string name, u32 n_dims, u64 ne[n_dims] (innermost first: a torch [rows, cols] weight is
//                 ne = [cols, rows]), u32 ggml type, u64 offset inside the data section (a multiple of the alignment)
//   zero padding up to the alignment (general.alignment, default 32), then the data section: every tensor's bytes,
//   each padded with zeros to the alignment.
// This file: the value and tensor types, the header encoder (metadata + tensor infos, sizes and offsets computed up
// front so tensors can be streamed afterwards) and a reader that parses a header back (tests, the self-test).
import { open } from 'node:fs/promises'

export const GGUF_MAGIC = 0x46554747 // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3
export const GGUF_DEFAULT_ALIGNMENT = 32
/** GGML_QNT_VERSION: written as general.quantization_version. */
export const GGML_QUANT_VERSION = 2

/** gguf value types (GGUFValueType). */
export const GgufValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const

export type ScalarKind = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'bool' | 'string' | 'u64' | 'i64' | 'f64'

const KIND_TYPE: Record<ScalarKind, number> = {
  u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, u64: 10, i64: 11, f64: 12,
}
const TYPE_KIND = new Map<number, ScalarKind>(Object.entries(KIND_TYPE).map(([k, v]) => [v, k as ScalarKind]))

/** A metadata value with its exact GGUF type. bigint only for u64/i64. */
export type GgufValue =
  | { kind: Exclude<ScalarKind, 'string' | 'bool' | 'u64' | 'i64'>; value: number }
  | { kind: 'u64' | 'i64'; value: bigint }
  | { kind: 'bool'; value: boolean }
  | { kind: 'string'; value: string }
  | { kind: 'array'; itemKind: Exclude<ScalarKind, 'u64' | 'i64'>; value: (number | string | boolean)[] }

export type GgufMetadata = Map<string, GgufValue>

/** ggml tensor types this exporter writes (GGMLQuantizationType ids). */
export type GgmlType = 'F32' | 'F16' | 'BF16' | 'Q8_0' | 'Q4_K' | 'Q6_K'

export const GGML_TYPE_ID: Record<GgmlType, number> = { F32: 0, F16: 1, Q8_0: 8, Q4_K: 12, Q6_K: 14, BF16: 30 }
const GGML_TYPE_NAME = new Map<number, GgmlType>(Object.entries(GGML_TYPE_ID).map(([k, v]) => [v, k as GgmlType]))

/** Elements per block and bytes per block (GGML_QUANT_SIZES). A row's length must be a multiple of the block. */
export const GGML_BLOCK: Record<GgmlType, { elements: number; bytes: number }> = {
  F32: { elements: 1, bytes: 4 },
  F16: { elements: 1, bytes: 2 },
  BF16: { elements: 1, bytes: 2 },
  Q8_0: { elements: 32, bytes: 34 }, // f16 scale + 32 x int8
  Q4_K: { elements: 256, bytes: 144 }, // f16 d + f16 dmin + 12 bytes of 6-bit scales/mins + 128 bytes of nibbles
  Q6_K: { elements: 256, bytes: 210 }, // 128 bytes low nibbles + 64 bytes high bits + 16 int8 scales + f16 d
}

export function ggmlTypeName(id: number): GgmlType | undefined {
  return GGML_TYPE_NAME.get(id)
}

/** Bytes of a tensor of this type with `ne` (innermost first). */
export function ggmlTensorBytes(type: GgmlType, ne: number[]): number {
  const { elements, bytes } = GGML_BLOCK[type]
  if (ne[0] % elements !== 0) throw new Error(`A row of ${ne[0]} values cannot be stored as ${type} (blocks of ${elements}).`)
  return (ne.reduce((a, b) => a * b, 1) / elements) * bytes
}

export interface GgufTensorInfo {
  name: string
  /** Dimensions innermost first (ggml's ne). */
  ne: number[]
  type: GgmlType
}

export interface GgufLayout {
  /** Everything before the data section: header, metadata, tensor infos, padding. */
  header: Buffer
  /** Per tensor: byte offset inside the data section, and its length (without padding). */
  offsets: number[]
  sizes: number[]
  /** Bytes of the whole file. */
  fileBytes: number
  alignment: number
}

export function alignUp(x: number, n: number): number {
  return Math.ceil(x / n) * n
}

// ---- encoding ------------------------------------------------------------------------------------

class ByteSink {
  private chunks: Buffer[] = []
  private cur = Buffer.allocUnsafe(1 << 16)
  private pos = 0
  length = 0

  private room(n: number): void {
    if (this.pos + n <= this.cur.length) return
    this.chunks.push(this.cur.subarray(0, this.pos))
    this.cur = Buffer.allocUnsafe(Math.max(1 << 16, n))
    this.pos = 0
  }

  u8(v: number): void { this.room(1); this.cur.writeUInt8(v, this.pos); this.pos += 1; this.length += 1 }
  i8(v: number): void { this.room(1); this.cur.writeInt8(v, this.pos); this.pos += 1; this.length += 1 }
  u16(v: number): void { this.room(2); this.cur.writeUInt16LE(v, this.pos); this.pos += 2; this.length += 2 }
  i16(v: number): void { this.room(2); this.cur.writeInt16LE(v, this.pos); this.pos += 2; this.length += 2 }
  u32(v: number): void { this.room(4); this.cur.writeUInt32LE(v, this.pos); this.pos += 4; this.length += 4 }
  i32(v: number): void { this.room(4); this.cur.writeInt32LE(v, this.pos); this.pos += 4; this.length += 4 }
  f32(v: number): void { this.room(4); this.cur.writeFloatLE(v, this.pos); this.pos += 4; this.length += 4 }
  f64(v: number): void { this.room(8); this.cur.writeDoubleLE(v, this.pos); this.pos += 8; this.length += 8 }
  u64(v: number | bigint): void { this.room(8); this.cur.writeBigUInt64LE(BigInt(v), this.pos); this.pos += 8; this.length += 8 }
  i64(v: bigint): void { this.room(8); this.cur.writeBigInt64LE(v, this.pos); this.pos += 8; this.length += 8 }
  bytes(b: Buffer): void {
    this.room(b.length)
    b.copy(this.cur, this.pos)
    this.pos += b.length
    this.length += b.length
  }
  string(s: string): void {
    const b = Buffer.from(s, 'utf8')
    this.u64(b.length)
    this.bytes(b)
  }
  zeros(n: number): void { this.bytes(Buffer.alloc(n)) }

  toBuffer(): Buffer {
    return Buffer.concat([...this.chunks, this.cur.subarray(0, this.pos)])
  }
}

function writeScalar(sink: ByteSink, kind: ScalarKind, v: number | string | boolean | bigint, key: string): void {
  const bad = (): never => {
    throw new Error(`GGUF metadata ${key}: ${String(v)} is not a valid ${kind}`)
  }
  switch (kind) {
    case 'string':
      if (typeof v !== 'string') bad()
      sink.string(v as string)
      return
    case 'bool':
      if (typeof v !== 'boolean') bad()
      sink.u8(v ? 1 : 0)
      return
    case 'u64':
    case 'i64':
      if (typeof v !== 'bigint') bad()
      if (kind === 'u64') sink.u64(v as bigint)
      else sink.i64(v as bigint)
      return
    default:
      break
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) bad()
  const n = v as number
  const int = (lo: number, hi: number) => (Number.isInteger(n) && n >= lo && n <= hi ? n : bad())
  switch (kind) {
    case 'u8': sink.u8(int(0, 0xff)); break
    case 'i8': sink.i8(int(-0x80, 0x7f)); break
    case 'u16': sink.u16(int(0, 0xffff)); break
    case 'i16': sink.i16(int(-0x8000, 0x7fff)); break
    case 'u32': sink.u32(int(0, 0xffffffff)); break
    case 'i32': sink.i32(int(-0x80000000, 0x7fffffff)); break
    case 'f32': sink.f32(n); break
    case 'f64': sink.f64(n); break
  }
}

/**
 * The bytes before the data section, and where each tensor goes. general.alignment in the metadata (u32) sets the
 * alignment; otherwise 32.
 */
export function layoutGguf(metadata: GgufMetadata, tensors: GgufTensorInfo[]): GgufLayout {
  const alignValue = metadata.get('general.alignment')
  const alignment = alignValue && alignValue.kind === 'u32' ? alignValue.value : GGUF_DEFAULT_ALIGNMENT
  if (alignment <= 0 || (alignment & (alignment - 1)) !== 0) throw new Error(`GGUF alignment must be a power of two (got ${alignment}).`)

  const sink = new ByteSink()
  sink.u32(GGUF_MAGIC)
  sink.u32(GGUF_VERSION)
  sink.u64(tensors.length)
  sink.u64(metadata.size)
  for (const [key, val] of metadata) {
    sink.string(key)
    if (val.kind === 'array') {
      if (val.value.length === 0) throw new Error(`GGUF metadata ${key}: arrays cannot be empty.`)
      sink.u32(GgufValueType.ARRAY)
      sink.u32(KIND_TYPE[val.itemKind])
      sink.u64(val.value.length)
      for (const item of val.value) writeScalar(sink, val.itemKind, item, key)
    } else {
      sink.u32(KIND_TYPE[val.kind])
      writeScalar(sink, val.kind, val.value, key)
    }
  }
  const offsets: number[] = []
  const sizes: number[] = []
  const names = new Set<string>()
  let offset = 0
  for (const t of tensors) {
    if (names.has(t.name)) throw new Error(`Duplicate GGUF tensor ${t.name}`)
    names.add(t.name)
    if (Buffer.byteLength(t.name, 'utf8') >= 64) throw new Error(`GGUF tensor name ${t.name} is too long (ggml allows 63 bytes).`)
    if (t.ne.length < 1 || t.ne.length > 4) throw new Error(`GGUF tensor ${t.name} has ${t.ne.length} dimensions (1 to 4 allowed).`)
    const size = ggmlTensorBytes(t.type, t.ne)
    sink.string(t.name)
    sink.u32(t.ne.length)
    for (const d of t.ne) sink.u64(d)
    sink.u32(GGML_TYPE_ID[t.type])
    sink.u64(offset)
    offsets.push(offset)
    sizes.push(size)
    offset += alignUp(size, alignment)
  }
  sink.zeros(alignUp(sink.length, alignment) - sink.length)
  const header = sink.toBuffer()
  const last = tensors.length - 1
  const dataBytes = tensors.length === 0 ? 0 : offsets[last] + alignUp(sizes[last], alignment)
  return { header, offsets, sizes, fileBytes: header.length + dataBytes, alignment }
}

// ---- metadata helpers ------------------------------------------------------------------------------

export const kv = {
  u32: (value: number): GgufValue => ({ kind: 'u32', value }),
  i32: (value: number): GgufValue => ({ kind: 'i32', value }),
  f32: (value: number): GgufValue => ({ kind: 'f32', value }),
  bool: (value: boolean): GgufValue => ({ kind: 'bool', value }),
  str: (value: string): GgufValue => ({ kind: 'string', value }),
  strings: (value: string[]): GgufValue => ({ kind: 'array', itemKind: 'string', value }),
  i32s: (value: number[]): GgufValue => ({ kind: 'array', itemKind: 'i32', value }),
  f32s: (value: number[]): GgufValue => ({ kind: 'array', itemKind: 'f32', value }),
}

// ---- reading -------------------------------------------------------------------------------------

export interface GgufReadTensor extends GgufTensorInfo {
  /** Absolute byte offset of the tensor's data in the file. */
  fileOffset: number
  bytes: number
}

export interface GgufFile {
  version: number
  metadata: GgufMetadata
  tensors: GgufReadTensor[]
  alignment: number
  dataOffset: number
  fileBytes: number
}

class NeedMore extends Error {}

class Cursor {
  pos = 0
  constructor(private readonly buf: Buffer, private readonly complete: boolean) {}
  private need(n: number): void {
    if (this.pos + n > this.buf.length) {
      if (this.complete) throw new Error('The GGUF file is truncated (its header runs past the end of the file).')
      throw new NeedMore()
    }
  }
  u8(): number { this.need(1); return this.buf.readUInt8(this.pos++) }
  i8(): number { this.need(1); return this.buf.readInt8(this.pos++) }
  u16(): number { this.need(2); const v = this.buf.readUInt16LE(this.pos); this.pos += 2; return v }
  i16(): number { this.need(2); const v = this.buf.readInt16LE(this.pos); this.pos += 2; return v }
  u32(): number { this.need(4); const v = this.buf.readUInt32LE(this.pos); this.pos += 4; return v }
  i32(): number { this.need(4); const v = this.buf.readInt32LE(this.pos); this.pos += 4; return v }
  f32(): number { this.need(4); const v = this.buf.readFloatLE(this.pos); this.pos += 4; return v }
  f64(): number { this.need(8); const v = this.buf.readDoubleLE(this.pos); this.pos += 8; return v }
  u64(): bigint { this.need(8); const v = this.buf.readBigUInt64LE(this.pos); this.pos += 8; return v }
  i64(): bigint { this.need(8); const v = this.buf.readBigInt64LE(this.pos); this.pos += 8; return v }
  size(what: string): number {
    const v = this.u64()
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`GGUF ${what} ${v} is too large.`)
    return Number(v)
  }
  string(): string {
    const n = this.size('string length')
    this.need(n)
    const s = this.buf.toString('utf8', this.pos, this.pos + n)
    this.pos += n
    return s
  }
  scalar(type: number): number | string | boolean | bigint {
    switch (type) {
      case 0: return this.u8()
      case 1: return this.i8()
      case 2: return this.u16()
      case 3: return this.i16()
      case 4: return this.u32()
      case 5: return this.i32()
      case 6: return this.f32()
      case 7: {
        const b = this.u8()
        if (b > 1) throw new Error(`GGUF bool value ${b} is not 0 or 1.`)
        return b === 1
      }
      case 8: return this.string()
      case 10: return this.u64()
      case 11: return this.i64()
      case 12: return this.f64()
      default: throw new Error(`Unknown GGUF value type ${type}.`)
    }
  }
}

function parseGguf(buf: Buffer, fileBytes: number, complete: boolean): GgufFile {
  const c = new Cursor(buf, complete)
  if (c.u32() !== GGUF_MAGIC) throw new Error('Not a GGUF file (the magic bytes are not "GGUF").')
  const version = c.u32()
  if (version !== 3 && version !== 2) throw new Error(`GGUF version ${version} is not supported (2 or 3 expected).`)
  const nTensors = c.size('tensor count')
  const nKv = c.size('metadata count')
  const metadata: GgufMetadata = new Map()
  for (let i = 0; i < nKv; i++) {
    const key = c.string()
    const type = c.u32()
    if (type === GgufValueType.ARRAY) {
      const itemType = c.u32()
      const n = c.size('array length')
      const itemKind = TYPE_KIND.get(itemType)
      if (!itemKind || itemKind === 'u64' || itemKind === 'i64') throw new Error(`GGUF metadata ${key}: unsupported array item type ${itemType}.`)
      const value: (number | string | boolean)[] = new Array(n)
      for (let j = 0; j < n; j++) value[j] = c.scalar(itemType) as number | string | boolean
      metadata.set(key, { kind: 'array', itemKind, value })
    } else {
      const kind = TYPE_KIND.get(type)
      if (!kind) throw new Error(`GGUF metadata ${key}: unknown value type ${type}.`)
      metadata.set(key, { kind, value: c.scalar(type) } as GgufValue)
    }
  }
  const alignValue = metadata.get('general.alignment')
  const alignment = alignValue && alignValue.kind === 'u32' ? alignValue.value : GGUF_DEFAULT_ALIGNMENT
  const infos: { name: string; ne: number[]; type: GgmlType; offset: number }[] = []
  for (let i = 0; i < nTensors; i++) {
    const name = c.string()
    const nd = c.u32()
    if (nd < 1 || nd > 4) throw new Error(`GGUF tensor ${name} has ${nd} dimensions.`)
    const ne: number[] = []
    for (let d = 0; d < nd; d++) ne.push(c.size('dimension'))
    const typeId = c.u32()
    const type = ggmlTypeName(typeId)
    if (!type) throw new Error(`GGUF tensor ${name} has a ggml type (${typeId}) this reader does not know.`)
    const offset = c.size('tensor offset')
    if (offset % alignment !== 0) throw new Error(`GGUF tensor ${name} is not aligned to ${alignment} bytes.`)
    infos.push({ name, ne, type, offset })
  }
  const dataOffset = alignUp(c.pos, alignment)
  const tensors: GgufReadTensor[] = infos.map((t) => {
    const bytes = ggmlTensorBytes(t.type, t.ne)
    const fileOffset = dataOffset + t.offset
    if (fileOffset + bytes > fileBytes) throw new Error(`GGUF tensor ${t.name} runs past the end of the file (the file is truncated).`)
    return { name: t.name, ne: t.ne, type: t.type, fileOffset, bytes }
  })
  return { version, metadata, tensors, alignment, dataOffset, fileBytes }
}

/** Parses a GGUF file's header (metadata and tensor infos), reading only as much of the file as it needs. */
export async function readGgufHeader(path: string): Promise<GgufFile> {
  const fh = await open(path, 'r')
  try {
    const { size } = await fh.stat()
    let want = Math.min(size, 1 << 20)
    for (;;) {
      const buf = Buffer.alloc(want)
      const { bytesRead } = await fh.read(buf, 0, want, 0)
      try {
        return parseGguf(buf.subarray(0, bytesRead), size, bytesRead >= size)
      } catch (err) {
        if (!(err instanceof NeedMore)) throw err
        want = Math.min(size, want * 4)
      }
    }
  } finally {
    await fh.close()
  }
}

/** Reads one tensor's raw bytes. */
export async function readGgufTensorBytes(path: string, t: GgufReadTensor): Promise<Buffer> {
  const fh = await open(path, 'r')
  try {
    const buf = Buffer.alloc(t.bytes)
    await fh.read(buf, 0, t.bytes, t.fileOffset)
    return buf
  } finally {
    await fh.close()
  }
}

/** A metadata value as a plain JS value (tests and reports). */
export function metadataValue(file: GgufFile, key: string): unknown {
  const v = file.metadata.get(key)
  return v === undefined ? undefined : v.value
}
