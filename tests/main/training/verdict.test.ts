// The plain-language verdict from a run's curves (a pure function).
import { describe, expect, it } from 'vitest'
import { computeVerdict } from '../../../main/training/verdict'

const curve = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => ({ step: i + 1, loss: f(i) }))
const evals = (points: [number, number][]) => points.map(([step, loss]) => ({ step, epoch: step / 10, loss }))

describe('computeVerdict', () => {
  it('not learning: the training loss hardly moves', () => {
    const v = computeVerdict({ train: curve(50, (i) => 2.5 - 0.001 * i + 0.02 * Math.sin(i)), evals: evals([[10, 2.5], [20, 2.49], [30, 2.5]]) })
    expect(v.kind).toBe('notLearning')
    expect(v.message.en).toMatch(/not learning/)
    expect(v.message['zh-TW']).toMatch(/沒有學到/)
  })

  it('not learning: a diverged run (NaN loss)', () => {
    expect(computeVerdict({ train: [...curve(10, (i) => 2 - 0.1 * i), { step: 11, loss: NaN }], evals: [] }).kind).toBe('notLearning')
  })

  it('overfitting: validation bottoms out and rises while training keeps falling', () => {
    const v = computeVerdict({
      train: curve(100, (i) => 3 * Math.exp(-i / 30) + 0.1),
      evals: evals([[20, 2.0], [40, 1.6], [60, 1.75], [80, 1.9], [100, 2.1]]),
      stopReason: 'earlyStopping',
    })
    expect(v.kind).toBe('overfitting')
    expect(v.evidence.bestValStep).toBe(40)
    expect(v.message.en).toMatch(/step 40/)
  })

  it('still learning: the last evaluation is the best and still clearly lower', () => {
    const v = computeVerdict({ train: curve(60, (i) => 3 - i * 0.03), evals: evals([[20, 2.5], [40, 2.2], [60, 1.9]]) })
    expect(v.kind).toBe('stillLearning')
  })

  it('still learning without validation: the training loss still falls at the end', () => {
    expect(computeVerdict({ train: curve(60, (i) => 3 - i * 0.03), evals: [] }).kind).toBe('stillLearning')
  })

  it('good: fell and levelled off', () => {
    const v = computeVerdict({ train: curve(100, (i) => 2 * Math.exp(-i / 10) + 0.5), evals: evals([[25, 0.9], [50, 0.8], [75, 0.79], [100, 0.795]]) })
    expect(v.kind).toBe('good')
    expect(v.evidence.bestValLoss).toBe(0.79)
    const noVal = computeVerdict({ train: curve(100, (i) => 2 * Math.exp(-i / 10) + 0.5), evals: [] })
    expect(noVal.kind).toBe('good')
  })

  it('unknown: too few steps', () => {
    expect(computeVerdict({ train: curve(3, (i) => 3 - i), evals: [] }).kind).toBe('unknown')
  })

  it('a plateau that early stopping ended is not "still learning"', () => {
    const v = computeVerdict({ train: curve(60, (i) => 3 * Math.exp(-i / 10) + 1), evals: evals([[20, 1.5], [40, 1.4], [60, 1.39]]), stopReason: 'earlyStopping' })
    expect(v.kind).toBe('good')
  })
})
