// Training runs (runs): all run SQL lives here. The row keeps the lifecycle columns of schema 1; the run's
// settings (and the device) are in settings_json, the run summary and the run domain's bookkeeping in summary_json,
// the last error as JSON ({ code, message }) in error. main/training owns the shapes of those JSON columns.
import type { RunStatus } from '../../preload/contract'
import type { Db } from './openDatabase'
import { nowIso } from './now'

export interface RunRow {
  id: number
  projectId: number
  modelId: number | null
  /** The model's name now (null when the model was deleted). */
  modelName: string | null
  snapshotId: number | null
  name: string
  status: RunStatus
  preset: string
  settings: Record<string, unknown>
  outputDir: string
  error: Record<string, unknown> | null
  totalSteps: number
  step: number
  epoch: number
  bestValLoss: number | null
  summary: Record<string, unknown>
  /** Loss of the latest training step recorded. */
  lastTrainLoss: number | null
  createdAt: string
  startedAt: string | null
  endedAt: string | null
}

interface Raw {
  id: number
  project_id: number
  model_id: number | null
  model_name: string | null
  snapshot_id: number | null
  name: string
  status: RunStatus
  preset: string
  settings_json: string
  output_dir: string
  error: string | null
  total_steps: number
  step: number
  epoch: number
  best_val_loss: number | null
  summary_json: string
  last_loss: number | null
  created_at: string
  started_at: string | null
  ended_at: string | null
}

function parseObject(text: string | null): Record<string, unknown> | null {
  if (text === null) return null
  try {
    const v = JSON.parse(text) as unknown
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : { message: text }
  } catch {
    return { message: text }
  }
}

function toRow(r: Raw): RunRow {
  return {
    id: r.id,
    projectId: r.project_id,
    modelId: r.model_id,
    modelName: r.model_name,
    snapshotId: r.snapshot_id,
    name: r.name,
    status: r.status,
    preset: r.preset,
    settings: parseObject(r.settings_json) ?? {},
    outputDir: r.output_dir,
    error: parseObject(r.error),
    totalSteps: r.total_steps,
    step: r.step,
    epoch: r.epoch,
    bestValLoss: r.best_val_loss,
    summary: parseObject(r.summary_json) ?? {},
    lastTrainLoss: r.last_loss,
    createdAt: r.created_at,
    startedAt: r.started_at,
    endedAt: r.ended_at,
  }
}

export interface NewRun {
  projectId: number
  modelId: number | null
  name: string
  preset: string
  settings: object
  summary: object
}

export interface RunPatch {
  status?: RunStatus
  snapshotId?: number | null
  name?: string
  outputDir?: string
  /** null clears it. */
  error?: object | null
  totalSteps?: number
  step?: number
  epoch?: number
  bestValLoss?: number | null
  settings?: object
  summary?: object
  startedAt?: string | null
  endedAt?: string | null
}

const COLUMNS: Record<keyof RunPatch, string> = {
  status: 'status',
  snapshotId: 'snapshot_id',
  name: 'name',
  outputDir: 'output_dir',
  error: 'error',
  totalSteps: 'total_steps',
  step: 'step',
  epoch: 'epoch',
  bestValLoss: 'best_val_loss',
  settings: 'settings_json',
  summary: 'summary_json',
  startedAt: 'started_at',
  endedAt: 'ended_at',
}

const SELECT = `SELECT r.*, m.name AS model_name,
  (SELECT x.loss FROM run_metrics x WHERE x.run_id = r.id AND x.kind = 'train' ORDER BY x.step DESC LIMIT 1) AS last_loss
  FROM runs r LEFT JOIN models m ON m.id = r.model_id`

export type RunsRepo = ReturnType<typeof createRunsRepo>

export function createRunsRepo(db: Db) {
  const get = db.prepare<[number], Raw>(`${SELECT} WHERE r.id = ?`)
  const listAll = db.prepare<[], Raw>(`${SELECT} ORDER BY r.created_at DESC, r.id DESC`)
  const listProject = db.prepare<[number], Raw>(`${SELECT} WHERE r.project_id = ? ORDER BY r.created_at DESC, r.id DESC`)
  const insert = db.prepare(
    `INSERT INTO runs (project_id, model_id, name, status, preset, settings_json, summary_json, created_at)
     VALUES (@projectId, @modelId, @name, 'queued', @preset, @settings, @summary, @now)`,
  )
  const del = db.prepare(`DELETE FROM runs WHERE id = ?`)
  const updates = new Map<string, ReturnType<Db['prepare']>>()

  return {
    get: (id: number): RunRow | undefined => {
      const r = get.get(id)
      return r ? toRow(r) : undefined
    },
    list: (projectId?: number): RunRow[] => (projectId === undefined ? listAll.all() : listProject.all(projectId)).map(toRow),
    listByStatus: (statuses: readonly RunStatus[]): RunRow[] => {
      if (statuses.length === 0) return []
      const q = db.prepare<string[], Raw>(`${SELECT} WHERE r.status IN (${statuses.map(() => '?').join(', ')}) ORDER BY r.id`)
      return q.all(...statuses).map(toRow)
    },
    create: (r: NewRun): number =>
      Number(
        insert.run({ projectId: r.projectId, modelId: r.modelId, name: r.name, preset: r.preset, settings: JSON.stringify(r.settings), summary: JSON.stringify(r.summary), now: nowIso() })
          .lastInsertRowid,
      ),
    update: (id: number, patch: RunPatch): void => {
      const keys = (Object.keys(patch) as (keyof RunPatch)[]).filter((k) => patch[k] !== undefined).sort()
      if (keys.length === 0) return
      const sig = keys.join(',')
      let stmt = updates.get(sig)
      if (!stmt) {
        stmt = db.prepare(`UPDATE runs SET ${keys.map((k) => `${COLUMNS[k]} = @${k}`).join(', ')} WHERE id = @id`)
        updates.set(sig, stmt)
      }
      const params: Record<string, unknown> = { id }
      for (const k of keys) {
        const v = patch[k]
        params[k] = k === 'settings' || k === 'summary' || (k === 'error' && v !== null) ? JSON.stringify(v) : v
      }
      stmt.run(params)
    },
    delete: (id: number): void => {
      del.run(id)
    },
    transaction: <T>(fn: () => T): T => db.transaction(fn)(),
  }
}
