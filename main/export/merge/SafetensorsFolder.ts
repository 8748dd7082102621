// Random access to the tensors of a Hugging Face model folder (model.safetensors, or shards listed in
// model.safetensors.index.json) without loading them: headers are parsed once, then rows of a tensor are read by
// file offset (positioned reads into a buffer of exactly those rows), so an 8B model is processed a few
// megabytes at a time. Values come back as fp32 (BF16/F16/F32 stored), or as the raw stored bytes.
import { existsSync } from 'node:fs'
import { open, readFile, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { AppError } from '../../errors'
import { dtypeBytes, readSafetensorsHeader } from '../../models/safetensors'

export interface FolderTensor {
  name: string
  dtype: string
  shape: number[]
  file: string
  /** Absolute byte offset of the data in its file. */
  offset: number
  bytes: number
}

const FLOAT_DTYPES = new Set(['BF16', 'F16', 'F32'])

export class SafetensorsFolder {
  private readonly handles = new Map<string, Promise<FileHandle>>()

  private constructor(readonly dir: string, readonly tensors: Map<string, FolderTensor>, readonly files: string[]) {}

  /** Opens a model or adapter folder: `fileName` (default model.safetensors) or its sharded index. */
  static async open(dir: string, fileName = 'model.safetensors'): Promise<SafetensorsFolder> {
    let files: string[]
    const indexPath = join(dir, `${fileName}.index.json`)
    if (existsSync(join(dir, fileName))) {
      files = [fileName]
    } else if (existsSync(indexPath)) {
      let index: { weight_map?: Record<string, string> }
      try {
        index = JSON.parse(await readFile(indexPath, 'utf8')) as typeof index
      } catch (err) {
        throw new AppError('INVALID_ARGUMENT', `${indexPath} is not valid JSON (${(err as Error).message}). Download the model again.`)
      }
      if (!index.weight_map || typeof index.weight_map !== 'object') {
        throw new AppError('INVALID_ARGUMENT', `${indexPath} has no weight_map. Download the model again.`)
      }
      files = [...new Set(Object.values(index.weight_map))].sort()
    } else {
      throw new AppError('NOT_FOUND', `${dir} has no ${fileName} (nor ${fileName}.index.json). Pick the folder that holds the weights.`)
    }
    const tensors = new Map<string, FolderTensor>()
    for (const file of files) {
      const path = join(dir, file)
      if (!existsSync(path)) throw new AppError('NOT_FOUND', `${path} is missing (it is listed in the index). Download the model again.`)
      let header
      try {
        header = await readSafetensorsHeader(path)
      } catch (err) {
        throw new AppError('INVALID_ARGUMENT', `${(err as Error).message} Download the model again.`)
      }
      for (const t of header.tensors) {
        if (tensors.has(t.name)) throw new AppError('INVALID_ARGUMENT', `The tensor ${t.name} appears twice in ${dir}. The model folder is inconsistent: download it again.`)
        tensors.set(t.name, { name: t.name, dtype: t.dtype, shape: t.shape, file, offset: header.dataOffset + t.begin, bytes: t.end - t.begin })
      }
    }
    return new SafetensorsFolder(dir, tensors, files)
  }

  get(name: string): FolderTensor {
    const t = this.tensors.get(name)
    if (!t) throw new AppError('NOT_FOUND', `The tensor ${name} is missing from ${this.dir}.`)
    return t
  }

  has(name: string): boolean {
    return this.tensors.has(name)
  }

  private handle(file: string): Promise<FileHandle> {
    let h = this.handles.get(file)
    if (!h) {
      h = open(join(this.dir, file), 'r')
      this.handles.set(file, h)
    }
    return h
  }

  /** The stored bytes of rows [r0, r1) of a tensor (row = everything after the first dimension). */
  async readRawRows(name: string, r0: number, r1: number): Promise<Buffer> {
    const t = this.get(name)
    const rows = t.shape.length === 0 ? 1 : t.shape[0]
    if (r0 < 0 || r1 > rows || r0 > r1) throw new Error(`Rows [${r0}, ${r1}) out of range for ${name} with ${rows} rows`)
    const rowBytes = rows === 0 ? 0 : t.bytes / rows
    const len = (r1 - r0) * rowBytes
    const buf = Buffer.allocUnsafeSlow(len)
    const fh = await this.handle(t.file)
    let done = 0
    while (done < len) {
      const { bytesRead } = await fh.read(buf, done, len - done, t.offset + r0 * rowBytes + done)
      if (bytesRead === 0) throw new AppError('INVALID_ARGUMENT', `${join(this.dir, t.file)} ends early (the file is truncated). Download the model again.`)
      done += bytesRead
    }
    return buf
  }

  /** Rows [r0, r1) as fp32 values (BF16/F16/F32 tensors). */
  async readRows(name: string, r0: number, r1: number): Promise<Float32Array> {
    const t = this.get(name)
    if (!FLOAT_DTYPES.has(t.dtype)) {
      throw new AppError('UNSUPPORTED', `The tensor ${name} is stored as ${t.dtype}; export needs 16- or 32-bit floating-point weights (an already quantized model cannot be merged).`)
    }
    return bytesToF32(await this.readRawRows(name, r0, r1), t.dtype)
  }

  async readAll(name: string): Promise<Float32Array> {
    const t = this.get(name)
    return this.readRows(name, 0, t.shape.length === 0 ? 1 : t.shape[0])
  }

  async close(): Promise<void> {
    const hs = [...this.handles.values()]
    this.handles.clear()
    await Promise.all(hs.map(async (h) => (await h.catch(() => null))?.close()))
  }
}

/** Stored little-endian bytes (a fresh, aligned Buffer) to fp32. */
export function bytesToF32(buf: Buffer, dtype: string): Float32Array {
  const size = dtypeBytes(dtype)
  const n = buf.length / size
  const aligned = buf.byteOffset % size === 0
  if (dtype === 'F32') {
    const out = new Float32Array(n)
    out.set(aligned ? new Float32Array(buf.buffer, buf.byteOffset, n) : new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length)))
    return out
  }
  const src = aligned ? new Uint16Array(buf.buffer, buf.byteOffset, n) : new Uint16Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length))
  const out = new Float32Array(n)
  if (dtype === 'BF16') {
    const u = new Uint32Array(out.buffer)
    for (let i = 0; i < n; i++) u[i] = src[i] << 16
    return out
  }
  if (dtype === 'F16') {
    for (let i = 0; i < n; i++) out[i] = HALF[src[i]]
    return out
  }
  throw new Error(`Cannot read ${dtype} as floating point`)
}

// All 65536 half values, for a fast F16 -> fp32 table lookup.
const HALF: Float32Array = (() => {
  const t = new Float32Array(65536)
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1
    const exp = (h >>> 10) & 0x1f
    const mant = h & 0x3ff
    t[h] = exp === 0 ? sign * mant * 2 ** -24 : exp === 0x1f ? (mant ? NaN : sign * Infinity) : sign * (1 + mant / 1024) * 2 ** (exp - 15)
  }
  return t
})()
