// Projects table: all project SQL lives here. Statements are prepared once per database.
import type { Language, Project } from '../../preload/contract'
import type { Db } from './openDatabase'
import { nowIso } from './now'

interface ProjectRow {
  id: number
  name: string
  language: Language
  system_prompt: string
  model_id: number | null
  created_at: string
  updated_at: string
  row_count: number
}

function toProject(r: ProjectRow): Project {
  return {
    id: r.id,
    name: r.name,
    language: r.language,
    systemPrompt: r.system_prompt,
    modelId: r.model_id,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    rowCount: r.row_count,
  }
}

const SELECT = `SELECT p.*, (SELECT COUNT(*) FROM qa_pairs q WHERE q.project_id = p.id) AS row_count FROM projects p`

export type ProjectsRepo = ReturnType<typeof createProjectsRepo>

export function createProjectsRepo(db: Db) {
  const list = db.prepare<[], ProjectRow>(`${SELECT} ORDER BY p.updated_at DESC, p.id DESC`)
  const get = db.prepare<[number], ProjectRow>(`${SELECT} WHERE p.id = ?`)
  const getByName = db.prepare<[string], ProjectRow>(`${SELECT} WHERE p.name = ?`)
  const insert = db.prepare(
    `INSERT INTO projects (name, language, system_prompt, created_at, updated_at) VALUES (@name, @language, @systemPrompt, @now, @now)`,
  )
  const rename = db.prepare(`UPDATE projects SET name = ?, updated_at = ? WHERE id = ?`)
  const update = db.prepare(
    `UPDATE projects SET system_prompt = COALESCE(@systemPrompt, system_prompt), language = COALESCE(@language, language),
       model_id = CASE WHEN @setModel THEN @modelId ELSE model_id END, updated_at = @now WHERE id = @id`,
  )
  const touch = db.prepare(`UPDATE projects SET updated_at = ? WHERE id = ?`)
  const del = db.prepare(`DELETE FROM projects WHERE id = ?`)

  return {
    list: (): Project[] => list.all().map(toProject),
    get: (id: number): Project | undefined => {
      const r = get.get(id)
      return r ? toProject(r) : undefined
    },
    getByName: (name: string): Project | undefined => {
      const r = getByName.get(name)
      return r ? toProject(r) : undefined
    },
    create: (p: { name: string; language: Language; systemPrompt: string }): number =>
      Number(insert.run({ ...p, now: nowIso() }).lastInsertRowid),
    rename: (id: number, name: string): boolean => rename.run(name, nowIso(), id).changes > 0,
    update: (id: number, p: { systemPrompt?: string; language?: Language; modelId?: number | null }): boolean =>
      update.run({
        id,
        systemPrompt: p.systemPrompt ?? null,
        language: p.language ?? null,
        setModel: p.modelId !== undefined ? 1 : 0,
        modelId: p.modelId ?? null,
        now: nowIso(),
      }).changes > 0,
    touch: (id: number): void => void touch.run(nowIso(), id),
    delete: (id: number): boolean => del.run(id).changes > 0,
  }
}
