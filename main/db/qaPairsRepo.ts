// Q&A rows of a project and their edit journal (undo/redo): all qa_pairs and dataset_edits SQL lives here.
// `position` is a REAL so a row can be inserted between two others without renumbering.
import type { EditLabel, QaFields, QaPair } from '../../preload/contract'
import type { Db } from './openDatabase'
import { nowIso } from './now'

interface QaRow {
  id: number
  project_id: number
  question: string
  answer: string
  category: string
  enabled: number
  position: number
  created_at: string
  updated_at: string
}

export function toQaPair(r: QaRow): QaPair {
  return {
    id: r.id,
    projectId: r.project_id,
    question: r.question,
    answer: r.answer,
    category: r.category,
    enabled: r.enabled === 1,
    position: r.position,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  }
}

export interface NewQaPair {
  question: string
  answer: string
  category?: string
  enabled?: boolean
}

/** One stored step of the edit journal. */
export interface EditRecord {
  id: number
  projectId: number
  label: EditLabel
  mergeKey: string | null
  opsJson: string
  undone: boolean
  createdAt: string
}

interface EditRow {
  id: number
  project_id: number
  label: EditLabel
  merge_key: string | null
  ops_json: string
  undone: number
  created_at: string
}

const toEdit = (r: EditRow): EditRecord => ({
  id: r.id,
  projectId: r.project_id,
  label: r.label,
  mergeKey: r.merge_key,
  opsJson: r.ops_json,
  undone: r.undone === 1,
  createdAt: r.created_at,
})

export type QaPairsRepo = ReturnType<typeof createQaPairsRepo>

export function createQaPairsRepo(db: Db) {
  const list = db.prepare<[number], QaRow>(`SELECT * FROM qa_pairs WHERE project_id = ? ORDER BY position, id`)
  const listEnabled = db.prepare<[number], QaRow>(`SELECT * FROM qa_pairs WHERE project_id = ? AND enabled = 1 ORDER BY position, id`)
  const listTexts = db.prepare<[number], { id: number; question: string; answer: string; category: string; enabled: number }>(
    `SELECT id, question, answer, category, enabled FROM qa_pairs WHERE project_id = ? ORDER BY position, id`,
  )
  const get = db.prepare<[number], QaRow>(`SELECT * FROM qa_pairs WHERE id = ?`)
  const count = db.prepare<[number], { n: number }>(`SELECT COUNT(*) AS n FROM qa_pairs WHERE project_id = ?`)
  const maxPos = db.prepare<[number], { p: number | null }>(`SELECT MAX(position) AS p FROM qa_pairs WHERE project_id = ?`)
  const nextPos = db.prepare<[number, number], { p: number | null }>(
    `SELECT MIN(position) AS p FROM qa_pairs WHERE project_id = ? AND position > ?`,
  )
  const insert = db.prepare(
    `INSERT INTO qa_pairs (project_id, question, answer, category, enabled, position, created_at, updated_at)
     VALUES (@projectId, @question, @answer, @category, @enabled, @position, @now, @now)`,
  )
  const insertWithId = db.prepare(
    `INSERT INTO qa_pairs (id, project_id, question, answer, category, enabled, position, created_at, updated_at)
     VALUES (@id, @projectId, @question, @answer, @category, @enabled, @position, @createdAt, @updatedAt)`,
  )
  const update = db.prepare(
    `UPDATE qa_pairs SET question = COALESCE(@question, question), answer = COALESCE(@answer, answer),
       category = COALESCE(@category, category), enabled = COALESCE(@enabled, enabled), updated_at = @now WHERE id = @id`,
  )
  const del = db.prepare<[number]>(`DELETE FROM qa_pairs WHERE id = ?`)
  const renumber = db.prepare<[number, number]>(`UPDATE qa_pairs SET position = ? WHERE id = ?`)
  const touchProject = db.prepare<[string, number]>(`UPDATE projects SET updated_at = ? WHERE id = ?`)

  const lastActive = db.prepare<[number], EditRow>(
    `SELECT * FROM dataset_edits WHERE project_id = ? AND undone = 0 ORDER BY id DESC LIMIT 1`,
  )
  const firstUndone = db.prepare<[number], EditRow>(
    `SELECT * FROM dataset_edits WHERE project_id = ? AND undone = 1 ORDER BY id ASC LIMIT 1`,
  )
  const latest = db.prepare<[number], EditRow>(`SELECT * FROM dataset_edits WHERE project_id = ? ORDER BY id DESC LIMIT 1`)
  const insertEdit = db.prepare(
    `INSERT INTO dataset_edits (project_id, label, merge_key, ops_json, row_count, undone, created_at)
     VALUES (@projectId, @label, @mergeKey, @opsJson, @rowCount, 0, @now)`,
  )
  const replaceEditOps = db.prepare<[string, number, number]>(`UPDATE dataset_edits SET ops_json = ?, row_count = ? WHERE id = ?`)
  const setUndone = db.prepare<[number, number]>(`UPDATE dataset_edits SET undone = ? WHERE id = ?`)
  const removeEdit = db.prepare<[number]>(`DELETE FROM dataset_edits WHERE id = ?`)
  const clearRedo = db.prepare<[number]>(`DELETE FROM dataset_edits WHERE project_id = ? AND undone = 1`)
  const trimOld = db.prepare<[number, number, number]>(
    `DELETE FROM dataset_edits WHERE project_id = ? AND id <= (
       SELECT id FROM dataset_edits WHERE project_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`,
  )

  /** Appends rows after the last one, in one transaction; returns the new ids. */
  const appendMany = db.transaction((projectId: number, rows: NewQaPair[]): number[] => {
    let pos = maxPos.get(projectId)?.p ?? 0
    const now = nowIso()
    const ids: number[] = []
    for (const r of rows) {
      pos += 1
      const info = insert.run({
        projectId,
        question: r.question,
        answer: r.answer,
        category: r.category ?? '',
        enabled: r.enabled === false ? 0 : 1,
        position: pos,
        now,
      })
      ids.push(Number(info.lastInsertRowid))
    }
    return ids
  })

  /** Rewrites the positions of a project's rows as 1, 2, 3... (keeps the order); used when a gap gets too small. */
  const renumberAll = (projectId: number): void => {
    let i = 0
    for (const r of list.all(projectId)) renumber.run(++i, r.id)
  }

  return {
    list: (projectId: number): QaPair[] => list.all(projectId).map(toQaPair),
    listEnabled: (projectId: number): QaPair[] => listEnabled.all(projectId).map(toQaPair),
    /** Just the texts and the enabled flag, in order (what the quality checks read): lighter than list(). */
    listTexts: (projectId: number): { id: number; question: string; answer: string; category: string; enabled: boolean }[] =>
      listTexts.all(projectId).map((r) => ({ id: r.id, question: r.question, answer: r.answer, category: r.category, enabled: r.enabled === 1 })),
    get: (id: number): QaPair | undefined => {
      const r = get.get(id)
      return r ? toQaPair(r) : undefined
    },
    count: (projectId: number): number => count.get(projectId)?.n ?? 0,
    appendMany: (projectId: number, rows: NewQaPair[]): number[] => appendMany(projectId, rows),

    /**
     * Positions for `n` new rows right after row `afterId` (null: after the last row). Call inside a transaction.
     * When the gap to the next row is too small for n more rows, the project's positions are renumbered first.
     */
    positionsAfter(projectId: number, afterId: number | null, n: number): number[] {
      const compute = (): number[] | null => {
        const after = afterId === null ? undefined : get.get(afterId)
        if (!after || after.project_id !== projectId) {
          const start = maxPos.get(projectId)?.p ?? 0
          return Array.from({ length: n }, (_, i) => start + i + 1)
        }
        const next = nextPos.get(projectId, after.position)?.p
        if (next === null || next === undefined) return Array.from({ length: n }, (_, i) => after.position + i + 1)
        const step = (next - after.position) / (n + 1)
        if (step < 1e-7) return null
        return Array.from({ length: n }, (_, i) => after.position + step * (i + 1))
      }
      const first = compute()
      if (first) return first
      renumberAll(projectId)
      return compute()!
    },

    /** Inserts rows at the given positions; returns the new rows. Call inside a transaction. */
    insertAt(projectId: number, rows: (QaFields & { position: number })[]): QaPair[] {
      const now = nowIso()
      const out: QaPair[] = []
      for (const r of rows) {
        const info = insert.run({
          projectId,
          question: r.question,
          answer: r.answer,
          category: r.category,
          enabled: r.enabled ? 1 : 0,
          position: r.position,
          now,
        })
        out.push({
          id: Number(info.lastInsertRowid),
          projectId,
          question: r.question,
          answer: r.answer,
          category: r.category,
          enabled: r.enabled,
          position: r.position,
          createdAt: now,
          updatedAt: now,
        })
      }
      return out
    },

    /** Puts back rows exactly as they were (same ids, positions and timestamps): undo of a delete, redo of an insert. */
    restore(rows: QaPair[]): void {
      for (const r of rows) {
        insertWithId.run({
          id: r.id,
          projectId: r.projectId,
          question: r.question,
          answer: r.answer,
          category: r.category,
          enabled: r.enabled ? 1 : 0,
          position: r.position,
          createdAt: r.createdAt,
          updatedAt: r.updatedAt,
        })
      }
    },

    /** Sets the given fields of one row (others unchanged); returns the row after the change. */
    update(id: number, fields: Partial<QaFields>): QaPair | undefined {
      update.run({
        id,
        question: fields.question ?? null,
        answer: fields.answer ?? null,
        category: fields.category ?? null,
        enabled: fields.enabled === undefined ? null : fields.enabled ? 1 : 0,
        now: nowIso(),
      })
      const r = get.get(id)
      return r ? toQaPair(r) : undefined
    },

    delete(ids: number[]): number {
      let n = 0
      for (const id of ids) n += del.run(id).changes
      return n
    },

    touchProject: (projectId: number): void => void touchProject.run(nowIso(), projectId),

    transaction: <T>(fn: () => T): T => db.transaction(fn)(),

    // --- edit journal -------------------------------------------------------------------------
    edits: {
      lastActive: (projectId: number): EditRecord | undefined => {
        const r = lastActive.get(projectId)
        return r ? toEdit(r) : undefined
      },
      firstUndone: (projectId: number): EditRecord | undefined => {
        const r = firstUndone.get(projectId)
        return r ? toEdit(r) : undefined
      },
      latest: (projectId: number): EditRecord | undefined => {
        const r = latest.get(projectId)
        return r ? toEdit(r) : undefined
      },
      /** Records a new step: clears the redo stack, appends, keeps the newest `keep` steps. */
      push(projectId: number, e: { label: EditLabel; mergeKey: string | null; opsJson: string; rowCount: number }, keep: number): number {
        clearRedo.run(projectId)
        const id = Number(insertEdit.run({ projectId, ...e, now: nowIso() }).lastInsertRowid)
        trimOld.run(projectId, projectId, keep)
        return id
      },
      replaceOps: (id: number, opsJson: string, rowCount: number): void => void replaceEditOps.run(opsJson, rowCount, id),
      setUndone: (id: number, undone: boolean): void => void setUndone.run(undone ? 1 : 0, id),
      remove: (id: number): void => void removeEdit.run(id),
    },
  }
}
