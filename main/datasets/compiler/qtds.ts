// The engine's training-set file (native/engine/FORMATS.md, version 1): header, u64 offsets, i32 ids, u8 loss mask.
// SampleStore collects samples in memory; writeQtds writes a chosen subset to a temporary file and renames it.
import { writeFileAtomic } from './writeFileAtomic'

export const QTDS_MAGIC = 'QTDSET1\0'
export const QTDS_VERSION = 1
export const QTDS_HEADER_BYTES = 64

/** Growable arrays of samples: ids and mask for all samples back to back, and where each starts. */
export class SampleStore {
  ids = new Int32Array(1 << 16)
  mask = new Uint8Array(1 << 16)
  /** starts[i] = first token of sample i; starts[count] = total tokens. */
  starts: number[] = [0]

  get count(): number {
    return this.starts.length - 1
  }

  get totalTokens(): number {
    return this.starts[this.starts.length - 1]
  }

  length(i: number): number {
    return this.starts[i + 1] - this.starts[i]
  }

  /** Appends a sample; returns its token range in `ids`/`mask` so the caller can fill the mask. */
  push(ids: ArrayLike<number>, length: number): number {
    const at = this.totalTokens
    const need = at + length
    if (need > this.ids.length) {
      let size = this.ids.length
      while (size < need) size *= 2
      const ids2 = new Int32Array(size)
      ids2.set(this.ids.subarray(0, at))
      const mask2 = new Uint8Array(size)
      mask2.set(this.mask.subarray(0, at))
      this.ids = ids2
      this.mask = mask2
    }
    for (let i = 0; i < length; i++) this.ids[at + i] = ids[i]
    this.mask.fill(0, at, need)
    this.starts.push(need)
    return at
  }
}

/** Bytes of the file for the samples `which` (in that order) of `store`. */
export function encodeQtds(store: SampleStore, which: readonly number[], vocabSize: number): Buffer[] {
  const n = which.length
  let total = 0
  for (const i of which) total += store.length(i)
  const header = Buffer.alloc(QTDS_HEADER_BYTES + 8 * (n + 1))
  header.write(QTDS_MAGIC, 0, 'latin1')
  header.writeUInt32LE(QTDS_VERSION, 8)
  header.writeUInt32LE(n, 12)
  header.writeBigUInt64LE(BigInt(total), 16)
  header.writeUInt32LE(vocabSize, 24)
  header.writeUInt32LE(0, 28) // flags
  let off = 0
  header.writeBigUInt64LE(0n, QTDS_HEADER_BYTES)
  const ids = new Int32Array(total)
  const mask = new Uint8Array(total)
  which.forEach((s, k) => {
    const a = store.starts[s]
    const len = store.length(s)
    ids.set(store.ids.subarray(a, a + len), off)
    mask.set(store.mask.subarray(a, a + len), off)
    off += len
    header.writeBigUInt64LE(BigInt(off), QTDS_HEADER_BYTES + 8 * (k + 1))
  })
  // Int32Array is little-endian on every platform Node supports (x64, arm64).
  return [header, Buffer.from(ids.buffer, ids.byteOffset, ids.byteLength), Buffer.from(mask.buffer, mask.byteOffset, mask.byteLength)]
}

export async function writeQtds(path: string, store: SampleStore, which: readonly number[], vocabSize: number): Promise<void> {
  await writeFileAtomic(path, encodeQtds(store, which, vocabSize))
}
