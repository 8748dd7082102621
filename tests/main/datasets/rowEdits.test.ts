// The undo model against a real SQLite file: every change is one step; undo/redo go both ways, survive a
// restart, restore deleted rows with their ids, and a new edit clears the redo steps.
import { afterEach, describe, expect, it } from 'vitest'
import type { EditHistory, Project, QaPair, RowsMutation } from '../../../preload/contract'
import { tempApp, type TempApp } from '../../helpers/tempContext'

let app: TempApp | undefined
afterEach(async () => {
  await app?.cleanup()
  app = undefined
})

async function setup(): Promise<{ app: TempApp; pid: number; rows: QaPair[] }> {
  app = tempApp()
  const p = await app.call<Project>('projects:create', { name: '人資' })
  const m = await app.call<RowsMutation>('rows:insert', {
    projectId: p.id,
    rows: [
      { question: '上班時間？', answer: '9 點到 6 點。', category: '出勤' },
      { question: '怎麼請假？', answer: '在人資系統申請。', category: '假勤' },
      { question: '薪水何時發？', answer: '每月 5 日。', category: '薪資' },
    ],
  })
  return { app, pid: p.id, rows: m.upserted }
}

const list = (a: TempApp, pid: number) => a.call<QaPair[]>('rows:list', { projectId: pid })

describe('row edits and undo/redo', () => {
  it('edits a cell, undoes and redoes it, and reports the history labels', async () => {
    const { app, pid, rows } = await setup()
    const m = await app.call<RowsMutation>('rows:update', { projectId: pid, changes: [{ id: rows[0]!.id, answer: '彈性上班。' }] })
    expect(m.upserted[0]).toMatchObject({ id: rows[0]!.id, answer: '彈性上班。', question: '上班時間？' })
    expect(m.history).toEqual<EditHistory>({ canUndo: true, canRedo: false, undoLabel: 'edit', redoLabel: null })

    const u = await app.call<RowsMutation>('rows:undo', { projectId: pid })
    expect(u.label).toBe('edit')
    expect(u.upserted[0]!.answer).toBe('9 點到 6 點。')
    expect(u.history).toMatchObject({ canUndo: true, undoLabel: 'insert', canRedo: true, redoLabel: 'edit' })
    expect((await list(app, pid))[0]!.answer).toBe('9 點到 6 點。')

    const r = await app.call<RowsMutation>('rows:redo', { projectId: pid })
    expect(r.upserted[0]!.answer).toBe('彈性上班。')
    expect(r.history.canRedo).toBe(false)
  })

  it('merges autosaves of one editing session (same mergeKey) into one undo step', async () => {
    const { app, pid, rows } = await setup()
    const id = rows[1]!.id
    for (const answer of ['在', '在系統', '在系統申請，主管核准。']) {
      await app.call('rows:update', { projectId: pid, changes: [{ id, answer }], mergeKey: 'cell-7' })
    }
    await app.call('rows:update', { projectId: pid, changes: [{ id, category: '請假' }], mergeKey: 'cell-8' })
    await app.call('rows:undo', { projectId: pid })
    expect((await list(app, pid))[1]).toMatchObject({ answer: '在系統申請，主管核准。', category: '假勤' })
    await app.call('rows:undo', { projectId: pid })
    expect((await list(app, pid))[1]!.answer).toBe('在人資系統申請。')
  })

  it('a paste that runs past the last row updates and appends in one undoable step', async () => {
    const { app, pid, rows } = await setup()
    const m = await app.call<RowsMutation>('rows:update', {
      projectId: pid,
      label: 'paste',
      changes: [{ id: rows[2]!.id, question: '貼上 1', answer: '答 1' }],
      append: { rows: [{ question: '貼上 2', answer: '答 2' }, { question: '貼上 3', answer: '答 3', category: '新' }], afterId: rows[2]!.id },
    })
    expect(m.upserted.map((r) => r.question)).toEqual(['貼上 1', '貼上 2', '貼上 3'])
    expect(m.history.undoLabel).toBe('paste')
    expect((await list(app, pid)).map((r) => r.question)).toEqual(['上班時間？', '怎麼請假？', '貼上 1', '貼上 2', '貼上 3'])
    const u = await app.call<RowsMutation>('rows:undo', { projectId: pid })
    expect(u.label).toBe('paste')
    expect(u.deletedIds).toHaveLength(2)
    expect((await list(app, pid)).map((r) => r.question)).toEqual(['上班時間？', '怎麼請假？', '薪水何時發？'])
    await expect(app.call('rows:update', { projectId: pid, changes: [] })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
  })

  it('an editing session that ends where it started (autosaved, then cancelled) leaves no undo step', async () => {
    const { app, pid, rows } = await setup()
    const id = rows[0]!.id
    await app.call('rows:update', { projectId: pid, changes: [{ id, answer: '打到一半' }], mergeKey: 'cell-9' })
    const back = await app.call<RowsMutation>('rows:update', { projectId: pid, changes: [{ id, answer: '9 點到 6 點。' }], mergeKey: 'cell-9' })
    expect(back.history.undoLabel).toBe('insert')
  })

  it('a no-op update records no step', async () => {
    const { app, pid, rows } = await setup()
    const m = await app.call<RowsMutation>('rows:update', { projectId: pid, changes: [{ id: rows[0]!.id, question: '上班時間？' }] })
    expect(m.upserted).toEqual([])
    expect(m.history.undoLabel).toBe('insert')
  })

  it('deletes rows and undo puts them back with the same ids and order', async () => {
    const { app, pid, rows } = await setup()
    const before = await list(app, pid)
    const d = await app.call<RowsMutation>('rows:delete', { projectId: pid, ids: [rows[0]!.id, rows[2]!.id] })
    expect(d.deletedIds.sort()).toEqual([rows[0]!.id, rows[2]!.id].sort())
    expect((await list(app, pid)).map((r) => r.id)).toEqual([rows[1]!.id])
    const u = await app.call<RowsMutation>('rows:undo', { projectId: pid })
    expect(u.upserted.map((r) => r.id).sort()).toEqual([rows[0]!.id, rows[2]!.id].sort())
    expect(await list(app, pid)).toEqual(before)
    const r = await app.call<RowsMutation>('rows:redo', { projectId: pid })
    expect(r.deletedIds.sort()).toEqual([rows[0]!.id, rows[2]!.id].sort())
  })

  it('inserts after a given row, between its neighbours', async () => {
    const { app, pid, rows } = await setup()
    const m = await app.call<RowsMutation>('rows:insert', { projectId: pid, rows: [{ question: 'A' }, { question: 'B' }], afterId: rows[0]!.id })
    expect(m.upserted.map((r) => r.question)).toEqual(['A', 'B'])
    expect((await list(app, pid)).map((r) => r.question)).toEqual(['上班時間？', 'A', 'B', '怎麼請假？', '薪水何時發？'])
    // Many inserts at the same spot exhaust the gap: positions are renumbered, order is kept.
    let after = rows[0]!.id
    for (let i = 0; i < 60; i++) {
      const x = await app.call<RowsMutation>('rows:insert', { projectId: pid, rows: [{ question: `n${i}` }], afterId: after })
      after = x.upserted[0]!.id
    }
    const qs = (await list(app, pid)).map((r) => r.question)
    expect(qs.slice(0, 3)).toEqual(['上班時間？', 'n0', 'n1'])
    expect(qs.slice(60, 63)).toEqual(['n59', 'A', 'B'])
  })

  it('a new edit clears the redo steps; undo history survives a restart', async () => {
    const { app: first, pid, rows } = await setup()
    await first.call('rows:update', { projectId: pid, changes: [{ id: rows[0]!.id, category: 'X' }] })
    await first.call('rows:undo', { projectId: pid })
    const h = await first.call<RowsMutation>('rows:update', { projectId: pid, changes: [{ id: rows[0]!.id, enabled: false }], label: 'toggle' })
    expect(h.history).toMatchObject({ canRedo: false, undoLabel: 'toggle' })
    await first.ctx.close()

    app = tempApp({ dataDir: first.dataDir })
    expect(await app.call<EditHistory>('rows:history', { projectId: pid })).toMatchObject({ canUndo: true, undoLabel: 'toggle' })
    await app.call('rows:undo', { projectId: pid })
    expect((await list(app, pid))[0]).toMatchObject({ enabled: true, category: '出勤' })
    await app.call('rows:undo', { projectId: pid }) // the insert
    expect(await list(app, pid)).toEqual([])
    const nothing = await app.call<RowsMutation>('rows:undo', { projectId: pid })
    expect(nothing).toMatchObject({ label: null, upserted: [], deletedIds: [] })
    await app.call('rows:redo', { projectId: pid })
    expect(await list(app, pid)).toHaveLength(3)
    rmLater(first)
  })

  it('refuses rows of another project, unknown rows and invalid arguments without changing anything', async () => {
    const { app, pid, rows } = await setup()
    const other = await app.call<Project>('projects:create', { name: '其他' })
    await expect(app.call('rows:update', { projectId: other.id, changes: [{ id: rows[0]!.id, answer: 'x' }] })).rejects.toMatchObject({ code: 'NOT_FOUND' })
    await expect(
      app.call('rows:update', { projectId: pid, changes: [{ id: rows[0]!.id, answer: 'x' }, { id: 999999, answer: 'y' }] }),
    ).rejects.toMatchObject({ code: 'NOT_FOUND' })
    expect((await list(app, pid))[0]!.answer).toBe('9 點到 6 點。') // the first change was rolled back
    await expect(app.call('rows:update', { projectId: pid, changes: [{ id: rows[0]!.id, answer: 'x'.repeat(100_001) }] })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    })
    await expect(app.call('rows:update', { projectId: pid, changes: [{ id: rows[0]!.id, enabled: 'yes' }] })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    await expect(app.call('rows:delete', { projectId: pid, ids: [] })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
  })
})

const toRemove: TempApp[] = []
function rmLater(a: TempApp): void {
  toRemove.push(a)
}
afterEach(async () => {
  for (const a of toRemove.splice(0)) await a.cleanup()
})
