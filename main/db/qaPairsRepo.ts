// Q&A rows of a project: all qa_pairs SQL lives here. `position` is a REAL so a row can be inserted
// between two others without renumbering.
import type { QaPair } from '../../preload/contract'
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

export type QaPairsRepo = ReturnType<typeof createQaPairsRepo>

export function createQaPairsRepo(db: Db) {
  const list = db.prepare<[number], QaRow>(`SELECT * FROM qa_pairs WHERE project_id = ? ORDER BY position, id`)
  const maxPos = db.prepare<[number], { p: number | null }>(`SELECT MAX(position) AS p FROM qa_pairs WHERE project_id = ?`)
  const insert = db.prepare(
    `INSERT INTO qa_pairs (project_id, question, answer, category, enabled, position, created_at, updated_at)
     VALUES (@projectId, @question, @answer, @category, @enabled, @position, @now, @now)`,
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

  return {
    list: (projectId: number): QaPair[] => list.all(projectId).map(toQaPair),
    appendMany: (projectId: number, rows: NewQaPair[]): number[] => appendMany(projectId, rows),
  }
}
