// Test helper: writes a training-set file (*.qtds v1, native/engine/FORMATS.md) from token ids and loss masks.
// The real writer is the training-set compiler (main/datasets/); this one exists so engine tests need no tokenizer.
import { writeFileSync } from 'node:fs'

export interface QtdsSample {
  ids: number[]
  /** 1 = this token is a target; defaults to every token but the first. */
  mask?: number[]
}

export function encodeQtds(samples: QtdsSample[], vocabSize: number): Buffer {
  const N = samples.length
  const T = samples.reduce((a, s) => a + s.ids.length, 0)
  const buf = Buffer.alloc(64 + 8 * (N + 1) + 4 * T + T)
  buf.write('QTDSET1\0', 0, 'latin1')
  buf.writeUInt32LE(1, 8)
  buf.writeUInt32LE(N, 12)
  buf.writeBigUInt64LE(BigInt(T), 16)
  buf.writeUInt32LE(vocabSize, 24)
  buf.writeUInt32LE(0, 28)
  let off = 64
  let acc = 0
  for (let i = 0; i <= N; i++) {
    buf.writeBigUInt64LE(BigInt(acc), off)
    off += 8
    if (i < N) acc += samples[i].ids.length
  }
  for (const s of samples) for (const id of s.ids) {
    buf.writeInt32LE(id, off)
    off += 4
  }
  for (const s of samples) {
    const mask = s.mask ?? s.ids.map((_, j) => (j === 0 ? 0 : 1))
    if (mask.length !== s.ids.length) throw new Error('mask length differs from ids length')
    for (const m of mask) buf.writeUInt8(m, off++)
  }
  return buf
}

export function writeQtds(path: string, samples: QtdsSample[], vocabSize: number): string {
  writeFileSync(path, encodeQtds(samples, vocabSize))
  return path
}

/** Deterministic pseudo-random samples of the given lengths over ids [3, vocab) (0-2 left for special tokens). */
export function randomSamples(lengths: number[], vocabSize: number, seed = 7): QtdsSample[] {
  let s = seed >>> 0
  const next = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s
  }
  return lengths.map((len) => ({ ids: Array.from({ length: len }, (_, j) => (j === 0 ? 1 : 3 + (next() % (vocabSize - 3)))) }))
}
