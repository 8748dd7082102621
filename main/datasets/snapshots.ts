// Dataset versions. `createSnapshot` freezes what a training run will learn from: the project's enabled rows
// (in editor order) and its system prompt. The content hash is sha256 over one canonical serialisation,
// so the same content always gives the same hash and is stored once per project (dataset_snapshots is
// unique on (project_id, content_hash)); a run records the snapshot id and can be reproduced from it.
//
// Canonical serialisation (UTF-8, no whitespace, keys in this order, strings exactly as stored):
//   {"format":"qa-tuner-snapshot/1","systemPrompt":<string>,"rows":[{"id":<int>,"question":<string>,
//    "answer":<string>,"category":<string>}, ...]}
// Row ids are part of the content so "what changed since this run" can tell an edit from a delete + add.
import { createHash } from 'node:crypto'
import type { DatasetSnapshot, QaPair, SnapshotDiff, SnapshotRow } from '../../preload/contract'
import type { Repos } from '../db/repos'
import { AppError, notFound } from '../errors'

export const SNAPSHOT_FORMAT = 'qa-tuner-snapshot/1'

function toSnapshotRow(r: QaPair): SnapshotRow {
  return { id: r.id, question: r.question, answer: r.answer, category: r.category }
}

export function canonicalSnapshot(systemPrompt: string, rows: SnapshotRow[]): string {
  const canonRows = rows.map((r) => ({ id: r.id, question: r.question, answer: r.answer, category: r.category }))
  return JSON.stringify({ format: SNAPSHOT_FORMAT, systemPrompt, rows: canonRows })
}

export function snapshotHash(systemPrompt: string, rows: SnapshotRow[]): string {
  return createHash('sha256').update(canonicalSnapshot(systemPrompt, rows), 'utf8').digest('hex')
}

/**
 * Freezes the enabled rows and the system prompt of a project. Returns the existing snapshot when the same
 * content was frozen before (`created: false`), else a new one (`created: true`).
 * Throws NOT_FOUND for an unknown project.
 */
export function createSnapshot(repos: Repos, projectId: number): DatasetSnapshot & { created: boolean } {
  const project = repos.projects.get(projectId)
  if (!project) throw notFound('Project', projectId)
  return repos.qaPairs.transaction(() => {
    const rows = repos.qaPairs.listEnabled(projectId).map(toSnapshotRow)
    const contentHash = snapshotHash(project.systemPrompt, rows)
    const existing = repos.snapshots.findByHash(projectId, contentHash)
    if (existing) return { ...existing, created: false }
    const id = repos.snapshots.insert({
      projectId,
      contentHash,
      rowCount: rows.length,
      systemPrompt: project.systemPrompt,
      rowsJson: JSON.stringify(rows),
    })
    return { ...repos.snapshots.get(id)!, created: true }
  })
}

/** A snapshot with its frozen rows (for the training-set compiler and for diffs). Throws NOT_FOUND. */
export function loadSnapshot(repos: Repos, snapshotId: number): { snapshot: DatasetSnapshot; rows: SnapshotRow[] } {
  const snapshot = repos.snapshots.get(snapshotId)
  const json = repos.snapshots.rowsJson(snapshotId)
  if (!snapshot || json === undefined) throw notFound('Snapshot', snapshotId)
  const rows = JSON.parse(json) as SnapshotRow[]
  if (snapshotHash(snapshot.systemPrompt, rows) !== snapshot.contentHash) {
    throw new AppError('DB_CORRUPT', `Snapshot ${snapshotId} does not match its content hash: the stored rows were changed.`)
  }
  return { snapshot, rows }
}

/** What changed between a snapshot and the project's rows now (enabled rows; disabled ones count as removed). */
export function diffSnapshot(repos: Repos, projectId: number, snapshotId: number): SnapshotDiff {
  const project = repos.projects.get(projectId)
  if (!project) throw notFound('Project', projectId)
  const { snapshot, rows: before } = loadSnapshot(repos, snapshotId)
  if (snapshot.projectId !== projectId) throw notFound('Snapshot', snapshotId)
  const now = repos.qaPairs.list(projectId)
  const nowById = new Map(now.map((r) => [r.id, r]))
  const beforeIds = new Set(before.map((r) => r.id))

  const removed: SnapshotDiff['removed'] = []
  const modified: SnapshotDiff['modified'] = []
  let unchanged = 0
  for (const b of before) {
    const cur = nowById.get(b.id)
    if (!cur || !cur.enabled) {
      removed.push({ ...b, disabled: !!cur })
      continue
    }
    if (cur.question === b.question && cur.answer === b.answer && cur.category === b.category) unchanged++
    else modified.push({ id: b.id, before: b, after: toSnapshotRow(cur) })
  }
  const added = now.filter((r) => r.enabled && !beforeIds.has(r.id)).map(toSnapshotRow)
  return {
    snapshot,
    systemPromptChanged: project.systemPrompt !== snapshot.systemPrompt,
    currentSystemPrompt: project.systemPrompt,
    added,
    removed,
    modified,
    unchanged,
  }
}
