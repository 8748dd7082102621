// Frozen dataset snapshots (dataset_snapshots): all snapshot SQL lives here. A snapshot is unique per
// (project, content hash); runs.snapshot_id points at the snapshot a training run used.
import type { DatasetSnapshot } from '../../preload/contract'
import type { Db } from './openDatabase'
import { nowIso } from './now'

interface SnapshotRow {
  id: number
  project_id: number
  content_hash: string
  row_count: number
  system_prompt: string
  created_at: string
}

interface RunRef {
  id: number
  snapshot_id: number
  name: string
  status: string
  created_at: string
}

export type SnapshotsRepo = ReturnType<typeof createSnapshotsRepo>

export function createSnapshotsRepo(db: Db) {
  const cols = `id, project_id, content_hash, row_count, system_prompt, created_at`
  const byHash = db.prepare<[number, string], SnapshotRow>(`SELECT ${cols} FROM dataset_snapshots WHERE project_id = ? AND content_hash = ?`)
  const byId = db.prepare<[number], SnapshotRow>(`SELECT ${cols} FROM dataset_snapshots WHERE id = ?`)
  const list = db.prepare<[number], SnapshotRow>(`SELECT ${cols} FROM dataset_snapshots WHERE project_id = ? ORDER BY created_at DESC, id DESC`)
  const rowsJson = db.prepare<[number], { rows_json: string }>(`SELECT rows_json FROM dataset_snapshots WHERE id = ?`)
  const insert = db.prepare(
    `INSERT INTO dataset_snapshots (project_id, content_hash, row_count, system_prompt, rows_json, created_at)
     VALUES (@projectId, @contentHash, @rowCount, @systemPrompt, @rowsJson, @now)`,
  )
  const runsOfProject = db.prepare<[number], RunRef>(
    `SELECT id, snapshot_id, name, status, created_at FROM runs WHERE project_id = ? AND snapshot_id IS NOT NULL ORDER BY created_at, id`,
  )
  const runsOfSnapshot = db.prepare<[number], RunRef>(
    `SELECT id, snapshot_id, name, status, created_at FROM runs WHERE snapshot_id = ? ORDER BY created_at, id`,
  )

  const toSnapshot = (r: SnapshotRow, runs: RunRef[]): DatasetSnapshot => ({
    id: r.id,
    projectId: r.project_id,
    contentHash: r.content_hash,
    rowCount: r.row_count,
    systemPrompt: r.system_prompt,
    createdAt: r.created_at,
    runs: runs.map((x) => ({ id: x.id, name: x.name, status: x.status, createdAt: x.created_at })),
  })

  return {
    get: (id: number): DatasetSnapshot | undefined => {
      const r = byId.get(id)
      return r ? toSnapshot(r, runsOfSnapshot.all(id)) : undefined
    },
    findByHash: (projectId: number, hash: string): DatasetSnapshot | undefined => {
      const r = byHash.get(projectId, hash)
      return r ? toSnapshot(r, runsOfSnapshot.all(r.id)) : undefined
    },
    list: (projectId: number): DatasetSnapshot[] => {
      const runs = runsOfProject.all(projectId)
      return list.all(projectId).map((r) => toSnapshot(r, runs.filter((x) => x.snapshot_id === r.id)))
    },
    rowsJson: (id: number): string | undefined => rowsJson.get(id)?.rows_json,
    insert: (s: { projectId: number; contentHash: string; rowCount: number; systemPrompt: string; rowsJson: string }): number =>
      Number(insert.run({ ...s, now: nowIso() }).lastInsertRowid),
  }
}
