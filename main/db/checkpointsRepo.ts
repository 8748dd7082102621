// Checkpoints of training runs (checkpoints): one row per checkpoint folder the engine wrote successfully.
import type { CheckpointInfo } from '../../preload/contract'
import type { Db } from './openDatabase'
import { nowIso } from './now'

interface Raw {
  id: number
  run_id: number
  step: number
  epoch: number
  kind: CheckpointInfo['kind']
  path: string
  val_loss: number | null
  created_at: string
}

const toInfo = (r: Raw): CheckpointInfo => ({ id: r.id, step: r.step, epoch: r.epoch, kind: r.kind, path: r.path, valLoss: r.val_loss, createdAt: r.created_at })

export type CheckpointsRepo = ReturnType<typeof createCheckpointsRepo>

export function createCheckpointsRepo(db: Db) {
  const insert = db.prepare(
    `INSERT INTO checkpoints (run_id, step, epoch, kind, path, val_loss, created_at) VALUES (@runId, @step, @epoch, @kind, @path, @valLoss, @now)`,
  )
  const list = db.prepare<[number], Raw>(`SELECT * FROM checkpoints WHERE run_id = ? ORDER BY step, id`)
  const del = db.prepare(`DELETE FROM checkpoints WHERE id = ?`)
  const delPath = db.prepare(`DELETE FROM checkpoints WHERE run_id = ? AND path = ?`)

  return {
    add: (c: { runId: number; step: number; epoch: number; kind: CheckpointInfo['kind']; path: string; valLoss: number | null }): number =>
      Number(insert.run({ ...c, now: nowIso() }).lastInsertRowid),
    list: (runId: number): CheckpointInfo[] => list.all(runId).map(toInfo),
    delete: (id: number): void => {
      del.run(id)
    },
    /** Forgets every row of a folder (the 'best' folder is rewritten in place). */
    deleteByPath: (runId: number, path: string): void => {
      delPath.run(runId, path)
    },
  }
}
