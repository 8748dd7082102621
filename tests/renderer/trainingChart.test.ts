// The training charts' update logic (renderer/src/composables/metricSeries.ts): live points appended in step order,
// a resumed run's redone steps replacing the old tail, long runs downsampled, and redraws throttled to one
// chart.update('none') per interval with the last state always drawn.
import { describe, expect, it } from 'vitest'
import type { MetricPoint } from '../../preload/contract'
import {
  appendPoints, ChartBinding, createThrottle, downsampleInPlace, RunSeries, type ChartLike, type ChartSeriesSpec, type Timers, type XY,
} from '../../renderer/src/composables/metricSeries'

const mp = (step: number, loss: number, lr = 1e-3): MetricPoint => ({ step, epoch: step / 10, loss, lr, gradNorm: 1, tokensPerSecond: 100, memoryBytes: null })
const xs = (s: readonly XY[]) => s.map((p) => p.x)

/** Manual clock: timers fire only when advance() passes them. */
function fakeTimers(): Timers & { advance(ms: number): void; pending(): number } {
  let now = 1000
  let next = 1
  const queue = new Map<number, { at: number; fn: () => void }>()
  return {
    now: () => now,
    setTimeout(fn, ms) {
      const id = next++
      queue.set(id, { at: now + ms, fn })
      return id
    },
    clearTimeout(h) {
      queue.delete(h as number)
    },
    advance(ms) {
      const end = now + ms
      for (;;) {
        const due = [...queue.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0]
        if (!due) break
        queue.delete(due[0])
        now = due[1].at
        due[1].fn()
      }
      now = end
    },
    pending: () => queue.size,
  }
}

describe('appendPoints', () => {
  it('appends in step order and skips points without a step', () => {
    const s: XY[] = []
    appendPoints(s, [{ x: 1, y: 5 }, { x: 2, y: 4 }, { x: Number.NaN, y: 1 }, { x: 3, y: 3 }])
    expect(xs(s)).toEqual([1, 2, 3])
  })

  it('a point at or before the last step drops the tail from that step on (a resumed run redoes those steps)', () => {
    const s: XY[] = [1, 2, 3, 4, 5, 6].map((x) => ({ x, y: 10 - x }))
    appendPoints(s, [{ x: 5, y: 0.5 }, { x: 6, y: 0.4 }, { x: 7, y: 0.3 }])
    expect(xs(s)).toEqual([1, 2, 3, 4, 5, 6, 7])
    expect(s[4].y).toBe(0.5)
    appendPoints(s, [{ x: 3, y: 9 }])
    expect(xs(s)).toEqual([1, 2, 3])
    expect(s[2].y).toBe(9)
  })
})

describe('downsampleInPlace', () => {
  it('leaves short series alone', () => {
    const s = [1, 2, 3].map((x) => ({ x, y: x }))
    expect(downsampleInPlace(s, 3)).toBe(false)
    expect(s).toHaveLength(3)
  })

  it('halves a long series by pair means, keeping the newest point exactly', () => {
    const s = Array.from({ length: 11 }, (_, i) => ({ x: i + 1, y: i + 1 }))
    expect(downsampleInPlace(s, 10)).toBe(true)
    expect(s.length).toBeLessThanOrEqual(6)
    expect(s[0]).toEqual({ x: 2, y: 1.5 })
    expect(s[s.length - 1]).toEqual({ x: 11, y: 11 })
    for (let i = 1; i < s.length; i++) expect(s[i].x).toBeGreaterThan(s[i - 1].x)
  })
})

describe('RunSeries', () => {
  it('loads metrics, appends live points and evaluations, and counts revisions', () => {
    const s = new RunSeries(7)
    s.load({ train: [mp(1, 3), mp(2, 2.5)], eval: [{ step: 2, epoch: 0.2, loss: 2.8 }] })
    const r0 = s.revision
    expect(s.append([mp(3, 2.2), mp(4, 2)], [{ step: 4, epoch: 0.4, loss: 2.6 }])).toBe(true)
    expect(xs(s.loss)).toEqual([1, 2, 3, 4])
    expect(xs(s.lr)).toEqual([1, 2, 3, 4])
    expect(xs(s.valLoss)).toEqual([2, 4])
    expect(s.revision).toBe(r0 + 1)
    expect(s.lastStep).toBe(4)
    expect(s.append([], [])).toBe(false)
    expect(s.revision).toBe(r0 + 1)
  })

  it('a resume from the checkpoint at step 2 replaces steps 3-4 and the evaluation at step 4', () => {
    const s = new RunSeries(1)
    s.load({ train: [1, 2, 3, 4].map((n) => mp(n, 5 - n)), eval: [{ step: 2, epoch: 0.2, loss: 3 }, { step: 4, epoch: 0.4, loss: 2 }] })
    s.append([mp(3, 1.9)], [])
    expect(xs(s.loss)).toEqual([1, 2, 3])
    expect(s.loss[2].y).toBe(1.9)
    expect(xs(s.valLoss)).toEqual([2])
    s.append([mp(4, 1.8)], [{ step: 4, epoch: 0.4, loss: 1.7 }])
    expect(xs(s.valLoss)).toEqual([2, 4])
    expect(s.valLoss[1].y).toBe(1.7)
  })

  it('stays under its point cap on a long run', () => {
    const s = new RunSeries(1, 100)
    for (let i = 1; i <= 1000; i++) s.append([mp(i, 1 / i)])
    expect(s.loss.length).toBeLessThanOrEqual(100)
    expect(s.loss[s.loss.length - 1].x).toBe(1000)
    expect(s.lr.length).toBeLessThanOrEqual(100)
  })
})

describe('createThrottle', () => {
  it('runs the first request at once and batches later ones into one trailing call', () => {
    const timers = fakeTimers()
    let calls = 0
    const th = createThrottle(() => calls++, 250, timers)
    th.request()
    expect(calls).toBe(1)
    th.request()
    th.request()
    th.request()
    expect(calls).toBe(1)
    timers.advance(249)
    expect(calls).toBe(1)
    timers.advance(1)
    expect(calls).toBe(2)
    timers.advance(1000)
    expect(calls).toBe(2)
    th.request()
    expect(calls).toBe(3)
  })

  it('flush runs a pending call now; cancel drops it', () => {
    const timers = fakeTimers()
    let calls = 0
    const th = createThrottle(() => calls++, 250, timers)
    th.request()
    th.request()
    expect(th.pending).toBe(true)
    th.flush()
    expect(calls).toBe(2)
    expect(th.pending).toBe(false)
    th.request()
    th.cancel()
    timers.advance(1000)
    expect(calls).toBe(2)
  })
})

describe('ChartBinding', () => {
  function fakeChart(): ChartLike & { modes: (string | undefined)[] } {
    const modes: (string | undefined)[] = []
    return { data: { datasets: [] }, modes, update: (mode) => void modes.push(mode) }
  }

  it('copies the series into the chart and redraws with update("none"), at most once per interval', () => {
    const timers = fakeTimers()
    const chart = fakeChart()
    const s = new RunSeries(1)
    const specs = (): ChartSeriesSpec[] => [
      { key: 'loss', label: 'loss', color: '--accent', points: s.loss },
      { key: 'val', label: 'val', color: 'red', points: s.valLoss, markers: true },
    ]
    const drawn: number[][] = []
    const b = new ChartBinding(chart, specs, (x) => ({ label: x.label, data: [] }), (n) => drawn.push(n), 250, timers)
    b.sync()
    expect(chart.data.datasets.map((d) => d.label)).toEqual(['loss', 'val'])
    expect(drawn.at(-1)).toEqual([0, 0])

    // 40 progress events within one interval: one immediate redraw, one trailing.
    const before = chart.modes.length
    for (let i = 1; i <= 40; i++) {
      s.append([mp(i, 1 / i)], i % 10 === 0 ? [{ step: i, epoch: i / 10, loss: 2 / i }] : [])
      b.request()
      timers.advance(5)
    }
    timers.advance(300)
    expect(chart.modes.length - before).toBeLessThanOrEqual(2)
    expect(chart.modes.every((m) => m === 'none')).toBe(true)
    expect(drawn.at(-1)).toEqual([40, 4])
    expect(chart.data.datasets[0].data).toHaveLength(40)
    // A copy: later appends do not reach the chart until the next redraw.
    expect(chart.data.datasets[0].data).not.toBe(s.loss)
    s.append([mp(41, 0.01)])
    expect(chart.data.datasets[0].data).toHaveLength(40)
    b.request()
    expect(chart.data.datasets[0].data).toHaveLength(41)
  })

  it('rebuilds the datasets when the series change (another run compared)', () => {
    const chart = fakeChart()
    let specs: ChartSeriesSpec[] = [{ key: 'a', label: 'A', color: 'red', points: [{ x: 1, y: 1 }] }]
    const made: string[] = []
    const b = new ChartBinding(chart, () => specs, (x) => (made.push(x.key), { label: x.label, data: [] }), () => {}, 0, fakeTimers())
    b.sync()
    b.sync()
    expect(made).toEqual(['a'])
    specs = [...specs, { key: 'b', label: 'B', color: 'blue', points: [{ x: 1, y: 2 }, { x: 2, y: 1 }] }]
    b.sync()
    expect(made).toEqual(['a', 'a', 'b'])
    expect(chart.data.datasets.map((d) => d.data.length)).toEqual([1, 2])
  })
})
