// Every change to a project's rows goes through here, as one undoable step recorded in the dataset_edits
// journal (migration 002). A step is a list of operations that carry the row states needed to go both ways:
//
//   { t: 'u', id, before, after }   fields of one row changed (only the fields that changed)
//   { t: 'i', rows }                 rows inserted (full rows: redo puts them back with the same ids)
//   { t: 'd', rows }                 rows deleted (full rows: undo puts them back with the same ids)
//
// Undo applies the newest active step backwards and marks it undone; redo re-applies the oldest undone step.
// A new step clears the redo steps, so ids freed by a delete can only be reused after that delete can no
// longer be undone out of order. Consecutive saves of one cell editing session share a `mergeKey` and merge
// into one step, so autosave while typing still undoes as one edit.
import type { EditHistory, EditLabel, QaFields, QaPair, RowsMutation } from '../../preload/contract'
import type { Repos } from '../db/repos'
import type { EditRecord } from '../db/qaPairsRepo'
import { AppError, notFound } from '../errors'

export type EditOp =
  | { t: 'u'; id: number; before: Partial<QaFields>; after: Partial<QaFields> }
  | { t: 'i'; rows: QaPair[] }
  | { t: 'd'; rows: QaPair[] }

/** Steps kept per project (older ones can no longer be undone). */
export const JOURNAL_KEEP = 200
/** Saves with the same merge key merge into one step only within this window. */
export const MERGE_WINDOW_MS = 15 * 60_000

const FIELDS = ['question', 'answer', 'category', 'enabled'] as const

export type RowChange = { id: number } & Partial<QaFields>

function opRowCount(ops: EditOp[]): number {
  return ops.reduce((n, op) => n + (op.t === 'u' ? 1 : op.rows.length), 0)
}

function newRow(r: Partial<QaFields>): QaFields {
  return { question: r.question ?? '', answer: r.answer ?? '', category: r.category ?? '', enabled: r.enabled ?? true }
}

function emptyMutation(history: EditHistory): RowsMutation {
  return { upserted: [], deletedIds: [], history, label: null }
}

export interface RowEditor {
  history(projectId: number): EditHistory
  /** Changes fields of rows; `append` adds new rows in the same step (a paste past the last row). */
  update(
    projectId: number,
    changes: RowChange[],
    label: EditLabel,
    mergeKey?: string,
    append?: { rows: Partial<QaFields>[]; afterId: number | null },
  ): RowsMutation
  insert(projectId: number, rows: Partial<QaFields>[], afterId: number | null, label: EditLabel): RowsMutation
  delete(projectId: number, ids: number[]): RowsMutation
  /** Appends (or, with replace, replaces all rows with) the given rows as one step. Runs in the caller's transaction if any. */
  bulkImport(projectId: number, rows: QaFields[], replace: boolean): { added: number; replaced: number; history: EditHistory }
  undo(projectId: number): RowsMutation
  redo(projectId: number): RowsMutation
}

export function createRowEditor(repos: () => Repos, onCountChanged: (projectId: number) => void = () => {}): RowEditor {
  const qa = () => repos().qaPairs

  function history(projectId: number): EditHistory {
    const undo = qa().edits.lastActive(projectId)
    const redo = qa().edits.firstUndone(projectId)
    return { canUndo: !!undo, canRedo: !!redo, undoLabel: undo?.label ?? null, redoLabel: redo?.label ?? null }
  }

  function record(projectId: number, label: EditLabel, ops: EditOp[], mergeKey: string | null): void {
    if (ops.length === 0) return
    qa().edits.push(projectId, { label, mergeKey, opsJson: JSON.stringify(ops), rowCount: opRowCount(ops) }, JOURNAL_KEEP)
  }

  /** Merges update ops into the newest step when it has the same merge key; true when merged. */
  function tryMerge(projectId: number, mergeKey: string, ops: EditOp[]): boolean {
    const last = qa().edits.latest(projectId)
    if (!last || last.undone || last.mergeKey !== mergeKey) return false
    if (Date.now() - Date.parse(last.createdAt) > MERGE_WINDOW_MS) return false
    const prev = JSON.parse(last.opsJson) as EditOp[]
    for (const op of ops) {
      if (op.t !== 'u') return false
      const same = prev.find((p): p is Extract<EditOp, { t: 'u' }> => p.t === 'u' && p.id === op.id)
      if (!same) {
        prev.push(op)
        continue
      }
      for (const f of FIELDS) {
        if (op.after[f] === undefined) continue
        if (same.before[f] === undefined) (same.before as Record<string, unknown>)[f] = op.before[f]
        ;(same.after as Record<string, unknown>)[f] = op.after[f]
      }
    }
    // An edit that ended where it started (typed, autosaved, then cancelled) leaves no step behind.
    const effective = prev.filter((op) => op.t !== 'u' || FIELDS.some((f) => op.after[f] !== undefined && op.after[f] !== op.before[f]))
    if (effective.length === 0) qa().edits.remove(last.id)
    else qa().edits.replaceOps(last.id, JSON.stringify(prev), opRowCount(prev))
    return true
  }

  function mustProject(projectId: number): void {
    if (!repos().projects.get(projectId)) throw notFound('Project', projectId)
  }

  function mustRow(projectId: number, id: number): QaPair {
    const row = qa().get(id)
    if (!row || row.projectId !== projectId) throw notFound('Row', id)
    return row
  }

  /** Applies ops forwards (redo = true) or backwards; returns what changed. Call inside a transaction. */
  function apply(ops: EditOp[], forwards: boolean): { upserted: Map<number, QaPair>; deleted: Set<number> } {
    const upserted = new Map<number, QaPair>()
    const deleted = new Set<number>()
    const seq = forwards ? ops : [...ops].reverse()
    for (const op of seq) {
      if (op.t === 'u') {
        const fields = forwards ? op.after : op.before
        const row = qa().update(op.id, fields)
        if (row) upserted.set(row.id, row)
        continue
      }
      const putBack = (op.t === 'i') === forwards
      if (putBack) {
        const missing = op.rows.filter((r) => !qa().get(r.id))
        qa().restore(missing)
        for (const r of op.rows) {
          const row = qa().get(r.id)
          if (row) upserted.set(row.id, row)
          deleted.delete(r.id)
        }
      } else {
        const ids = op.rows.map((r) => r.id)
        qa().delete(ids)
        for (const id of ids) {
          upserted.delete(id)
          deleted.add(id)
        }
      }
    }
    return { upserted, deleted }
  }

  function step(projectId: number, pick: () => EditRecord | undefined, forwards: boolean): RowsMutation {
    mustProject(projectId)
    return qa().transaction(() => {
      const edit = pick()
      if (!edit) return emptyMutation(history(projectId))
      const ops = JSON.parse(edit.opsJson) as EditOp[]
      const { upserted, deleted } = apply(ops, forwards)
      qa().edits.setUndone(edit.id, !forwards)
      qa().touchProject(projectId)
      if (ops.some((o) => o.t !== 'u')) onCountChanged(projectId)
      return { upserted: [...upserted.values()], deletedIds: [...deleted], history: history(projectId), label: edit.label }
    })
  }

  return {
    history(projectId) {
      mustProject(projectId)
      return history(projectId)
    },

    update(projectId, changes, label, mergeKey, append) {
      mustProject(projectId)
      const result = qa().transaction(() => {
        const ops: EditOp[] = []
        const upserted: QaPair[] = []
        const seen = new Set<number>()
        for (const change of changes) {
          if (seen.has(change.id)) throw new AppError('INVALID_ARGUMENT', `Row ${change.id} appears twice in one update.`)
          seen.add(change.id)
          const row = mustRow(projectId, change.id)
          const before: Partial<QaFields> = {}
          const after: Partial<QaFields> = {}
          for (const f of FIELDS) {
            const v = change[f]
            if (v === undefined || v === row[f]) continue
            ;(before as Record<string, unknown>)[f] = row[f]
            ;(after as Record<string, unknown>)[f] = v
          }
          if (Object.keys(after).length === 0) continue
          ops.push({ t: 'u', id: row.id, before, after })
          upserted.push(qa().update(row.id, after)!)
        }
        if (append && append.rows.length > 0) {
          if (append.afterId !== null) mustRow(projectId, append.afterId)
          const positions = qa().positionsAfter(projectId, append.afterId, append.rows.length)
          const inserted = qa().insertAt(projectId, append.rows.map((r, i) => ({ ...newRow(r), position: positions[i]! })))
          ops.push({ t: 'i', rows: inserted })
          upserted.push(...inserted)
        }
        if (ops.length > 0) {
          const merged = !append && mergeKey !== undefined && tryMerge(projectId, mergeKey, ops)
          if (!merged) record(projectId, label, ops, append ? null : (mergeKey ?? null))
          qa().touchProject(projectId)
        }
        return { upserted, deletedIds: [], history: history(projectId), label: null }
      })
      if (append && append.rows.length > 0) onCountChanged(projectId)
      return result
    },

    insert(projectId, rows, afterId, label) {
      mustProject(projectId)
      if (rows.length === 0) return emptyMutation(history(projectId))
      const result = qa().transaction(() => {
        if (afterId !== null) mustRow(projectId, afterId)
        const positions = qa().positionsAfter(projectId, afterId, rows.length)
        const inserted = qa().insertAt(
          projectId,
          rows.map((r, i) => ({ ...newRow(r), position: positions[i]! })),
        )
        record(projectId, label, [{ t: 'i', rows: inserted }], null)
        qa().touchProject(projectId)
        return { upserted: inserted, deletedIds: [], history: history(projectId), label: null }
      })
      onCountChanged(projectId)
      return result
    },

    delete(projectId, ids) {
      mustProject(projectId)
      const unique = [...new Set(ids)]
      if (unique.length === 0) return emptyMutation(history(projectId))
      const result = qa().transaction(() => {
        const rows = unique.map((id) => mustRow(projectId, id))
        qa().delete(unique)
        record(projectId, 'delete', [{ t: 'd', rows }], null)
        qa().touchProject(projectId)
        return { upserted: [], deletedIds: unique, history: history(projectId), label: null }
      })
      onCountChanged(projectId)
      return result
    },

    bulkImport(projectId, rows, replace) {
      mustProject(projectId)
      const result = qa().transaction(() => {
        const ops: EditOp[] = []
        let replaced = 0
        if (replace) {
          const old = qa().list(projectId)
          qa().delete(old.map((r) => r.id))
          replaced = old.length
          if (old.length) ops.push({ t: 'd', rows: old })
        }
        const positions = qa().positionsAfter(projectId, null, rows.length)
        const inserted = qa().insertAt(
          projectId,
          rows.map((r, i) => ({ ...r, position: positions[i]! })),
        )
        if (inserted.length) ops.push({ t: 'i', rows: inserted })
        record(projectId, 'import', ops, null)
        qa().touchProject(projectId)
        return { added: inserted.length, replaced, history: history(projectId) }
      })
      onCountChanged(projectId)
      return result
    },

    undo: (projectId) => step(projectId, () => qa().edits.lastActive(projectId), false),
    redo: (projectId) => step(projectId, () => qa().edits.firstUndone(projectId), true),
  }
}
