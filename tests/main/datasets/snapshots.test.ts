// Snapshots: enabled rows + system prompt frozen under a sha256 of the canonical serialisation, stored once
// per content; diffs against the current rows.
import { createHash } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import type { DatasetSnapshot, Project, RowsMutation, SnapshotDiff } from '../../../preload/contract'
import { createSnapshot, loadSnapshot } from '../../../main/datasets/snapshots'
import { tempApp, type TempApp } from '../../helpers/tempContext'

let app: TempApp
afterEach(async () => app?.cleanup())

async function setup() {
  app = tempApp()
  const p = await app.call<Project>('projects:create', { name: '版本' })
  const m = await app.call<RowsMutation>('rows:insert', {
    projectId: p.id,
    rows: [
      { question: 'Q1', answer: 'A1', category: 'c' },
      { question: 'Q2', answer: 'A2' },
      { question: 'Q3', answer: 'A3', enabled: false },
    ],
  })
  return { pid: p.id, ids: m.upserted.map((r) => r.id) }
}

describe('snapshots', () => {
  it('hashes the canonical serialisation of the system prompt and the enabled rows', async () => {
    const { pid, ids } = await setup()
    const s = createSnapshot(app.ctx.repos(), pid)
    expect(s).toMatchObject({ projectId: pid, rowCount: 2, systemPrompt: '你是一個zh-tw版本的聊天機器人', created: true, runs: [] })
    const canonical =
      '{"format":"qa-tuner-snapshot/1","systemPrompt":"你是一個zh-tw版本的聊天機器人","rows":[' +
      `{"id":${ids[0]},"question":"Q1","answer":"A1","category":"c"},{"id":${ids[1]},"question":"Q2","answer":"A2","category":""}]}`
    expect(s.contentHash).toBe(createHash('sha256').update(canonical, 'utf8').digest('hex'))
    expect(loadSnapshot(app.ctx.repos(), s.id).rows.map((r) => r.question)).toEqual(['Q1', 'Q2'])
  })

  it('dedupes by hash: the same content returns the same snapshot; any change makes a new one', async () => {
    const { pid, ids } = await setup()
    const a = createSnapshot(app.ctx.repos(), pid)
    const b = createSnapshot(app.ctx.repos(), pid)
    expect(b).toMatchObject({ id: a.id, created: false })
    // Disabled rows are not part of the content.
    await app.call('rows:update', { projectId: pid, changes: [{ id: ids[2]!, answer: 'changed while disabled' }] })
    expect(createSnapshot(app.ctx.repos(), pid).id).toBe(a.id)
    await app.call('rows:update', { projectId: pid, changes: [{ id: ids[0]!, answer: 'A1!' }] })
    const c = createSnapshot(app.ctx.repos(), pid)
    expect(c.created).toBe(true)
    expect(c.contentHash).not.toBe(a.contentHash)
    await app.call('projects:update', { id: pid, systemPrompt: '你是人資助理' })
    const d = await app.call<DatasetSnapshot>('snapshots:create', { projectId: pid })
    expect(d.id).not.toBe(c.id)
    // Undo back to the first content: the first snapshot again.
    await app.call('projects:update', { id: pid, systemPrompt: '你是一個zh-tw版本的聊天機器人' })
    await app.call('rows:undo', { projectId: pid })
    await app.call('rows:undo', { projectId: pid })
    expect((await app.call<DatasetSnapshot>('snapshots:create', { projectId: pid })).id).toBe(a.id)
    expect((await app.call<DatasetSnapshot[]>('snapshots:list', { projectId: pid })).map((s) => s.id).sort()).toEqual([a.id, c.id, d.id].sort())
  })

  it('lists the runs that used a snapshot', async () => {
    const { pid } = await setup()
    const s = createSnapshot(app.ctx.repos(), pid)
    app.ctx
      .db()
      .prepare(`INSERT INTO runs (project_id, snapshot_id, name, status, created_at) VALUES (?, ?, 'run 1', 'completed', '2026-11-28T00:00:00Z')`)
      .run(pid, s.id)
    const [listed] = await app.call<DatasetSnapshot[]>('snapshots:list', { projectId: pid })
    expect(listed!.runs).toEqual([{ id: expect.any(Number), name: 'run 1', status: 'completed', createdAt: '2026-11-28T00:00:00Z' }])
  })

  it('diffs added, removed, disabled and modified rows and the system prompt', async () => {
    const { pid, ids } = await setup()
    const s = createSnapshot(app.ctx.repos(), pid)
    await app.call('rows:update', { projectId: pid, changes: [{ id: ids[0]!, question: 'Q1 改' }, { id: ids[1]!, enabled: false }, { id: ids[2]!, enabled: true }] })
    const added = await app.call<RowsMutation>('rows:insert', { projectId: pid, rows: [{ question: 'Q4', answer: 'A4' }] })
    await app.call('projects:update', { id: pid, systemPrompt: 'new' })
    const d = await app.call<SnapshotDiff>('snapshots:diff', { projectId: pid, snapshotId: s.id })
    expect(d.systemPromptChanged).toBe(true)
    expect(d.modified).toEqual([{ id: ids[0], before: { id: ids[0], question: 'Q1', answer: 'A1', category: 'c' }, after: { id: ids[0], question: 'Q1 改', answer: 'A1', category: 'c' } }])
    expect(d.removed).toEqual([{ id: ids[1], question: 'Q2', answer: 'A2', category: '', disabled: true }])
    expect(d.added.map((r) => r.id)).toEqual([ids[2], added.upserted[0]!.id])
    expect(d.unchanged).toBe(0)
    await app.call('rows:delete', { projectId: pid, ids: [ids[1]!] })
    const d2 = await app.call<SnapshotDiff>('snapshots:diff', { projectId: pid, snapshotId: s.id })
    expect(d2.removed[0]).toMatchObject({ id: ids[1], disabled: false })
  })

  it('detects a snapshot whose stored rows no longer match the hash, and unknown ids', async () => {
    const { pid } = await setup()
    const s = createSnapshot(app.ctx.repos(), pid)
    app.ctx.db().prepare(`UPDATE dataset_snapshots SET rows_json = '[]' WHERE id = ?`).run(s.id)
    expect(() => loadSnapshot(app.ctx.repos(), s.id)).toThrow(/does not match its content hash/)
    await expect(app.call('snapshots:diff', { projectId: pid, snapshotId: 9999 })).rejects.toMatchObject({ code: 'NOT_FOUND' })
    await expect(app.call('snapshots:create', { projectId: 9999 })).rejects.toMatchObject({ code: 'NOT_FOUND' })
  })
})
