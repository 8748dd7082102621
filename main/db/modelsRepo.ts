// Models table: all model SQL lives here. A model is registered by its folder path (unique); what the folder
// holds (config summary, template choice, estimates) and the state of a download live in info_json.
import type { ModelSource, ModelStatus } from '../../preload/contract'
import type { Db } from './openDatabase'
import { nowIso } from './now'

export interface ModelRow {
  id: number
  name: string
  path: string
  source: ModelSource
  repoId: string | null
  revision: string | null
  architecture: string
  sizeBytes: number
  status: ModelStatus
  /** Parsed info_json (the models domain owns its shape: main/models/modelInfo.ts). */
  info: Record<string, unknown>
  addedAt: string
  /** Projects whose model_id is this model. */
  usedByProjects: number
}

interface Raw {
  id: number
  name: string
  path: string
  source: ModelSource
  repo_id: string | null
  revision: string | null
  architecture: string
  size_bytes: number
  status: ModelStatus
  info_json: string
  added_at: string
  used_by: number
}

function parseInfo(text: string): Record<string, unknown> {
  try {
    const v = JSON.parse(text) as unknown
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {}
  } catch {
    return {}
  }
}

function toRow(r: Raw): ModelRow {
  return {
    id: r.id,
    name: r.name,
    path: r.path,
    source: r.source,
    repoId: r.repo_id,
    revision: r.revision,
    architecture: r.architecture,
    sizeBytes: r.size_bytes,
    status: r.status,
    info: parseInfo(r.info_json),
    addedAt: r.added_at,
    usedByProjects: r.used_by,
  }
}

export interface NewModel {
  name: string
  path: string
  source: ModelSource
  repoId?: string | null
  revision?: string | null
  architecture?: string
  sizeBytes?: number
  status?: ModelStatus
  info?: Record<string, unknown>
}

export interface ModelPatch {
  name?: string
  path?: string
  revision?: string | null
  architecture?: string
  sizeBytes?: number
  status?: ModelStatus
  info?: Record<string, unknown>
}

export type ModelsRepo = ReturnType<typeof createModelsRepo>

const SELECT = `SELECT m.*, (SELECT COUNT(*) FROM projects p WHERE p.model_id = m.id) AS used_by FROM models m`

export function createModelsRepo(db: Db) {
  const list = db.prepare<[], Raw>(`${SELECT} ORDER BY CASE m.source WHEN 'demo' THEN 1 ELSE 0 END, m.added_at DESC, m.id DESC`)
  const get = db.prepare<[number], Raw>(`${SELECT} WHERE m.id = ?`)
  const byPath = db.prepare<[string], Raw>(`${SELECT} WHERE m.path = ?`)
  const bySource = db.prepare<[string], Raw>(`${SELECT} WHERE m.source = ? ORDER BY m.id`)
  const byStatus = db.prepare<[string], Raw>(`${SELECT} WHERE m.status = ? ORDER BY m.id`)
  const insert = db.prepare(
    `INSERT INTO models (name, path, source, repo_id, revision, architecture, size_bytes, status, info_json, added_at)
     VALUES (@name, @path, @source, @repoId, @revision, @architecture, @sizeBytes, @status, @info, @now)`,
  )
  const update = db.prepare(
    `UPDATE models SET name = COALESCE(@name, name), path = COALESCE(@path, path),
       revision = CASE WHEN @setRevision THEN @revision ELSE revision END,
       architecture = COALESCE(@architecture, architecture), size_bytes = COALESCE(@sizeBytes, size_bytes),
       status = COALESCE(@status, status), info_json = COALESCE(@info, info_json)
     WHERE id = @id`,
  )
  const del = db.prepare(`DELETE FROM models WHERE id = ?`)

  const one = (r: Raw | undefined): ModelRow | undefined => (r ? toRow(r) : undefined)

  return {
    list: (): ModelRow[] => list.all().map(toRow),
    get: (id: number): ModelRow | undefined => one(get.get(id)),
    getByPath: (path: string): ModelRow | undefined => one(byPath.get(path)),
    listBySource: (source: ModelSource): ModelRow[] => bySource.all(source).map(toRow),
    listByStatus: (status: ModelStatus): ModelRow[] => byStatus.all(status).map(toRow),
    create: (m: NewModel): number =>
      Number(
        insert.run({
          name: m.name,
          path: m.path,
          source: m.source,
          repoId: m.repoId ?? null,
          revision: m.revision ?? null,
          architecture: m.architecture ?? '',
          sizeBytes: m.sizeBytes ?? 0,
          status: m.status ?? 'ready',
          info: JSON.stringify(m.info ?? {}),
          now: nowIso(),
        }).lastInsertRowid,
      ),
    update: (id: number, p: ModelPatch): boolean =>
      update.run({
        id,
        name: p.name ?? null,
        path: p.path ?? null,
        setRevision: p.revision !== undefined ? 1 : 0,
        revision: p.revision ?? null,
        architecture: p.architecture ?? null,
        sizeBytes: p.sizeBytes ?? null,
        status: p.status ?? null,
        info: p.info === undefined ? null : JSON.stringify(p.info),
      }).changes > 0,
    delete: (id: number): boolean => del.run(id).changes > 0,
  }
}
