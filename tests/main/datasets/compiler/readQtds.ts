// An independent reader of the training-set file, written from native/engine/FORMATS.md (not from the writer),
// with the bounds checks the engine promises.
export interface Qtds {
  version: number
  numSamples: number
  numTokens: number
  vocabSize: number
  flags: number
  offsets: number[]
  ids: Int32Array
  mask: Uint8Array
  samples: Array<{ ids: number[]; mask: number[] }>
}

export function readQtds(buf: Buffer): Qtds {
  if (buf.length < 64) throw new Error('file shorter than the header')
  if (buf.toString('latin1', 0, 8) !== 'QTDSET1\0') throw new Error('bad magic')
  const version = buf.readUInt32LE(8)
  const numSamples = buf.readUInt32LE(12)
  const numTokens = Number(buf.readBigUInt64LE(16))
  const vocabSize = buf.readUInt32LE(24)
  const flags = buf.readUInt32LE(28)
  for (let i = 32; i < 64; i++) if (buf[i] !== 0) throw new Error('reserved bytes not zero')
  const idsAt = 64 + 8 * (numSamples + 1)
  const maskAt = idsAt + 4 * numTokens
  if (buf.length !== maskAt + numTokens) throw new Error(`size ${buf.length} != ${maskAt + numTokens}`)
  const offsets: number[] = []
  for (let i = 0; i <= numSamples; i++) offsets.push(Number(buf.readBigUInt64LE(64 + 8 * i)))
  if (offsets[0] !== 0 || offsets[numSamples] !== numTokens) throw new Error('offsets do not span the tokens')
  for (let i = 0; i < numSamples; i++) if (offsets[i + 1] < offsets[i]) throw new Error('offsets go backwards')
  const ids = new Int32Array(numTokens)
  for (let t = 0; t < numTokens; t++) ids[t] = buf.readInt32LE(idsAt + 4 * t)
  const mask = new Uint8Array(buf.subarray(maskAt, maskAt + numTokens))
  const samples = []
  for (let i = 0; i < numSamples; i++) {
    samples.push({ ids: Array.from(ids.subarray(offsets[i], offsets[i + 1])), mask: Array.from(mask.subarray(offsets[i], offsets[i + 1])) })
  }
  return { version, numSamples, numTokens, vocabSize, flags, offsets, ids, mask, samples }
}

/** The masked tokens of a sample as contiguous runs of ids. */
export function maskedRuns(sample: { ids: number[]; mask: number[] }): number[][] {
  const runs: number[][] = []
  let cur: number[] | null = null
  sample.mask.forEach((m, t) => {
    if (m === 1) {
      if (!cur) runs.push((cur = []))
      cur.push(sample.ids[t])
    } else cur = null
  })
  return runs
}
