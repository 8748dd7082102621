// The curves of one run as the charts draw them: training loss, validation loss and learning rate against the step.
// Loaded once from runs:metrics (possibly downsampled), then extended by the points each training:progress event
// carries. Pure and framework-free (instances are markRaw'd by the store), so the charts read plain arrays and the
// logic is unit-tested (tests/renderer/trainingChart.test.ts).
//
// Rules:
// - Points arrive in step order. A point at or before the last step drops the tail from that step on first: a run
//   resumed from its checkpoint at step S redoes the steps after S, and main deleted the old ones too.
// - A series never holds more than `maxPoints`: when it grows past that, neighbouring pairs are merged (means),
//   the newest point always kept, so a very long run stays cheap to draw.
import type { EvalPoint, MetricPoint, RunMetrics } from '../../../preload/contract'

export interface XY {
  x: number
  y: number
}

export const MAX_SERIES_POINTS = 4000

/** Appends points (ascending x) to `series`, dropping any tail at or after the first new point's x. */
export function appendPoints(series: XY[], points: readonly XY[]): void {
  for (const p of points) {
    if (!Number.isFinite(p.x)) continue
    const last = series[series.length - 1]
    if (last && p.x <= last.x) {
      let cut = series.length
      while (cut > 0 && series[cut - 1].x >= p.x) cut--
      series.length = cut
    }
    series.push({ x: p.x, y: p.y })
  }
}

/** Halves a series longer than `max` by merging neighbouring pairs (mean x and y); the newest point is kept
 *  as is. Returns whether it changed. */
export function downsampleInPlace(series: XY[], max: number = MAX_SERIES_POINTS): boolean {
  if (series.length <= max) return false
  const last = series[series.length - 1]
  const body = series.slice(0, -1)
  const merged: XY[] = []
  for (let i = 0; i < body.length; i += 2) {
    const a = body[i]
    const b = body[i + 1]
    merged.push(b ? { x: Math.round((a.x + b.x) / 2), y: (a.y + b.y) / 2 } : a)
  }
  if (merged.length > 0 && merged[merged.length - 1].x >= last.x) merged.pop()
  merged.push(last)
  series.length = 0
  for (const p of merged) series.push(p)
  return true
}

/** The drawable curves of one run. `revision` grows with every change (the charts redraw on it). */
export class RunSeries {
  readonly loss: XY[] = []
  readonly valLoss: XY[] = []
  readonly lr: XY[] = []
  revision = 0

  constructor(readonly runId: number, readonly maxPoints: number = MAX_SERIES_POINTS) {}

  /** Replaces everything with what runs:metrics returned. */
  load(m: Pick<RunMetrics, 'train' | 'eval'>): void {
    this.loss.length = 0
    this.valLoss.length = 0
    this.lr.length = 0
    this.append(m.train, m.eval)
  }

  /** Adds the points of a progress event (or a metrics page). Returns whether anything changed. */
  append(points: readonly MetricPoint[], evals: readonly EvalPoint[] = []): boolean {
    if (points.length === 0 && evals.length === 0) return false
    if (points.length > 0) {
      appendPoints(this.loss, points.map((p) => ({ x: p.step, y: p.loss })))
      appendPoints(this.lr, points.map((p) => ({ x: p.step, y: p.lr })))
      // A resumed run redoes its evaluations too: drop those after the first redone step.
      const first = points[0].step
      while (this.valLoss.length > 0 && this.valLoss[this.valLoss.length - 1].x >= first) this.valLoss.pop()
      downsampleInPlace(this.loss, this.maxPoints)
      downsampleInPlace(this.lr, this.maxPoints)
    }
    if (evals.length > 0) appendPoints(this.valLoss, evals.map((e) => ({ x: e.step, y: e.loss })))
    this.revision++
    return true
  }

  get lastStep(): number {
    return this.loss[this.loss.length - 1]?.x ?? 0
  }
}

export interface Timers {
  now(): number
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

const realTimers: Timers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
}

/** Runs `fn` at most once per `intervalMs`: the first request right away, later ones batched into one trailing
 *  call at the end of the interval (so the last state is always drawn). */
export function createThrottle(fn: () => void, intervalMs: number, timers: Timers = realTimers) {
  let last = -Infinity
  let handle: unknown = null
  const run = () => {
    handle = null
    last = timers.now()
    fn()
  }
  return {
    request(): void {
      if (handle !== null) return
      const wait = last + intervalMs - timers.now()
      if (wait <= 0) run()
      else handle = timers.setTimeout(run, wait)
    },
    /** Runs a pending call now. */
    flush(): void {
      if (handle === null) return
      timers.clearTimeout(handle)
      run()
    },
    cancel(): void {
      if (handle !== null) timers.clearTimeout(handle)
      handle = null
    },
    get pending(): boolean {
      return handle !== null
    },
  }
}

/** What a line chart needs to know about one dataset. `points` is read, never changed. */
export interface ChartSeriesSpec {
  key: string
  label: string
  /** A CSS colour or a CSS variable name ('--accent'). */
  color: string
  points: readonly XY[]
  dashed?: boolean
  /** Dots on each point (validation loss: few points). */
  markers?: boolean
}

/** The part of a Chart.js instance the binding touches (a fake in unit tests). */
export interface ChartLike {
  data: { datasets: { label?: string; data: unknown[] }[] }
  update(mode?: 'none'): void
}

/** Keeps a chart's datasets in step with the series, redrawing with chart.update('none') (no animation) at most
 *  once per interval however often progress arrives. `onDrawn` gets the point count of each dataset drawn. */
export class ChartBinding {
  private readonly throttle
  private keys = ''

  constructor(
    private readonly chart: ChartLike,
    private readonly getSeries: () => readonly ChartSeriesSpec[],
    private readonly makeDataset: (s: ChartSeriesSpec) => { label?: string; data: unknown[] },
    private readonly onDrawn: (counts: number[]) => void = () => {},
    intervalMs = 250,
    timers: Timers = realTimers,
  ) {
    this.throttle = createThrottle(() => this.sync(), intervalMs, timers)
  }

  /** Asks for a redraw (throttled). */
  request(): void {
    this.throttle.request()
  }

  /** Redraws now if one is pending. */
  flush(): void {
    this.throttle.flush()
  }

  destroy(): void {
    this.throttle.cancel()
  }

  /** Copies the points into the chart (a copy: Chart.js instruments the arrays it is given) and redraws. */
  sync(): void {
    const series = this.getSeries()
    const keys = series.map((s) => `${s.key}|${s.label}|${s.color}`).join(',')
    if (keys !== this.keys) {
      this.chart.data.datasets = series.map((s) => this.makeDataset(s))
      this.keys = keys
    }
    series.forEach((s, i) => {
      this.chart.data.datasets[i].data = s.points.slice()
    })
    this.chart.update('none')
    this.onDrawn(series.map((s) => s.points.length))
  }
}
