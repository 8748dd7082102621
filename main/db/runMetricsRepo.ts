// Per-step training metrics and evaluations of runs (run_metrics). Steps are written in batches (one transaction
// per batch, see main/training); reads downsample long runs in SQL (bucket means, the last step always kept).
import type { EvalPoint, MetricPoint } from '../../preload/contract'
import type { Db } from './openDatabase'
import { nowIso } from './now'

interface TrainRaw {
  step: number
  epoch: number
  loss: number
  lr: number
  grad_norm: number
  tokens_per_s: number
  gpu_mem_bytes: number | null
}

export interface TrainMetricRow extends MetricPoint {
  tokens: number
}

const toPoint = (r: TrainRaw): MetricPoint => ({
  step: r.step,
  epoch: r.epoch,
  loss: r.loss,
  lr: r.lr,
  gradNorm: r.grad_norm,
  tokensPerSecond: r.tokens_per_s,
  memoryBytes: r.gpu_mem_bytes,
})

export type RunMetricsRepo = ReturnType<typeof createRunMetricsRepo>

export function createRunMetricsRepo(db: Db) {
  const insertTrain = db.prepare(
    `INSERT INTO run_metrics (run_id, kind, step, epoch, loss, lr, grad_norm, tokens, tokens_per_s, gpu_mem_bytes, created_at)
     VALUES (@runId, 'train', @step, @epoch, @loss, @lr, @gradNorm, @tokens, @tokensPerSecond, @memoryBytes, @now)`,
  )
  const insertEval = db.prepare(
    `INSERT INTO run_metrics (run_id, kind, step, epoch, loss, created_at) VALUES (@runId, 'eval', @step, @epoch, @loss, @now)`,
  )
  const deleteAfter = db.prepare(`DELETE FROM run_metrics WHERE run_id = ? AND step > ?`)
  const countTrain = db.prepare<[number], { n: number; last: number | null }>(
    `SELECT COUNT(*) AS n, MAX(step) AS last FROM run_metrics WHERE run_id = ? AND kind = 'train'`,
  )
  const allTrain = db.prepare<[number, number], TrainRaw>(
    `SELECT step, epoch, loss, lr, grad_norm, tokens_per_s, gpu_mem_bytes FROM run_metrics WHERE run_id = ? AND kind = 'train' AND step > ? ORDER BY step`,
  )
  const countAfter = db.prepare<[number, number], { n: number }>(`SELECT COUNT(*) AS n FROM run_metrics WHERE run_id = ? AND kind = 'train' AND step > ?`)
  const bucketTrain = db.prepare<[number, number, number, number], TrainRaw>(
    `SELECT MAX(step) AS step, MAX(epoch) AS epoch, AVG(loss) AS loss, AVG(lr) AS lr, AVG(grad_norm) AS grad_norm,
       AVG(tokens_per_s) AS tokens_per_s, MAX(gpu_mem_bytes) AS gpu_mem_bytes
     FROM run_metrics WHERE run_id = ? AND kind = 'train' AND step > ? GROUP BY (step - 1 - CAST(? AS INTEGER)) / CAST(? AS INTEGER) ORDER BY 1`,
  )
  const evals = db.prepare<[number, number], EvalPoint>(`SELECT step, epoch, loss FROM run_metrics WHERE run_id = ? AND kind = 'eval' AND step > ? ORDER BY step`)
  const evalAt = db.prepare<[number, number], { n: number }>(`SELECT COUNT(*) AS n FROM run_metrics WHERE run_id = ? AND kind = 'eval' AND step = ?`)
  const speed = db.prepare<[number, string], { tps: number | null; n: number }>(
    `SELECT AVG(x.tokens_per_s) AS tps, COUNT(*) AS n FROM run_metrics x JOIN runs r ON r.id = x.run_id
     WHERE x.kind = 'train' AND r.model_id = ? AND json_extract(r.settings_json, '$.device') = ? AND x.step > 2`,
  )
  const peak = db.prepare<[number], { peak: number | null; tps: number | null }>(
    `SELECT MAX(gpu_mem_bytes) AS peak, AVG(tokens_per_s) AS tps FROM run_metrics WHERE run_id = ? AND kind = 'train'`,
  )

  return {
    /** Appends training steps (call inside a transaction for a batch). */
    appendTrain: (runId: number, rows: readonly TrainMetricRow[]): void => {
      const now = nowIso()
      for (const m of rows) insertTrain.run({ runId, ...m, now })
    },
    appendEval: (runId: number, p: EvalPoint): void => {
      insertEval.run({ runId, ...p, now: nowIso() })
    },
    hasEvalAt: (runId: number, step: number): boolean => evalAt.get(runId, step)!.n > 0,
    /** Drops everything recorded after `step` (a resume continues from the checkpoint at `step`). */
    deleteAfter: (runId: number, step: number): void => {
      deleteAfter.run(runId, step)
    },
    /** Training steps after `afterStep`, at most maxPoints of them (bucket means when there are more). */
    train: (runId: number, maxPoints = Infinity, afterStep = 0): { points: MetricPoint[]; total: number; lastStep: number; downsampled: boolean } => {
      const { n, last } = countTrain.get(runId)!
      const after = afterStep > 0 ? countAfter.get(runId, afterStep)!.n : n
      if (after <= maxPoints) return { points: allTrain.all(runId, afterStep).map(toPoint), total: n, lastStep: last ?? 0, downsampled: false }
      const span = (last ?? n) - afterStep
      const bucket = Math.max(1, Math.ceil(span / Math.max(1, maxPoints)))
      return { points: bucketTrain.all(runId, afterStep, afterStep, bucket).map(toPoint), total: n, lastStep: last ?? 0, downsampled: true }
    },
    evals: (runId: number, afterStep = 0): EvalPoint[] => evals.all(runId, afterStep),
    /** Mean measured tokens/s of this model on this device over earlier runs (null when never measured). */
    measuredSpeed: (modelId: number, device: string): number | null => {
      const r = speed.get(modelId, device)!
      return r.n >= 3 && r.tps !== null ? r.tps : null
    },
    stats: (runId: number): { peakMemoryBytes: number | null; meanTokensPerSecond: number | null } => {
      const r = peak.get(runId)!
      return { peakMemoryBytes: r.peak, meanTokensPerSecond: r.tps }
    },
  }
}
