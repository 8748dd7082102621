// Shared fixtures of the engine tests: temp folders, tiny models and training sets, a reference cross-entropy.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { writeTinyModel, type TinyModelOptions } from '../../../main/models/tiny/writeTinyModel'
import { randomSamples, writeQtds, type QtdsSample } from './qtds'

/** Small enough for fast CPU steps, big enough to have GQA (4 heads, 2 KV heads) and 2 layers. */
export const TINY: TinyModelOptions = { vocabSize: 128, hiddenSize: 64, intermediateSize: 96, numLayers: 2, numHeads: 4, numKvHeads: 2, seed: 11, initStd: 0.05 }

export interface Scratch {
  dir: string
  path(...parts: string[]): string
  cleanup(): void
}

export function scratch(prefix = 'qt-engine-'): Scratch {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  return { dir, path: (...parts) => join(dir, ...parts), cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

export async function tinyModelFolder(s: Scratch, name: string, opts: TinyModelOptions = {}): Promise<string> {
  const dir = s.path(name)
  await writeTinyModel(dir, { ...TINY, ...opts })
  return dir
}

export function trainingSet(s: Scratch, name: string, lengths: number[], vocabSize = TINY.vocabSize!, seed = 7): { path: string; samples: QtdsSample[] } {
  const samples = randomSamples(lengths, vocabSize, seed)
  return { path: writeQtds(s.path(name), samples, vocabSize), samples }
}

/** Mean cross-entropy over target tokens of one sample from its full-forward logits [T * V]. */
export function sampleLoss(logits: Float32Array, vocab: number, sample: QtdsSample): { sum: number; count: number } {
  const mask = sample.mask ?? sample.ids.map((_, j) => (j === 0 ? 0 : 1))
  let sum = 0
  let count = 0
  for (let t = 1; t < sample.ids.length; t++) {
    if (!mask[t]) continue
    const row = logits.subarray((t - 1) * vocab, t * vocab)
    let max = -Infinity
    for (const x of row) max = Math.max(max, x)
    let z = 0
    for (const x of row) z += Math.exp(x - max)
    sum += -(row[sample.ids[t]] - max - Math.log(z))
    count++
  }
  return { sum, count }
}

export function argmax(row: Float32Array): number {
  let best = 0
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i
  return best
}
