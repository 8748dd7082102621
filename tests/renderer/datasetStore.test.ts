// The dataset store's contract with main: optimistic edits that roll back on failure, one request at a
// time in order, and structural changes applied from main's answer. `api` is the transport boundary; main's
// side of these channels is tested against a real SQLite file in tests/main/datasets.
import { createPinia, setActivePinia } from 'pinia'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import type { EditHistory, QaPair, RowsMutation } from '../../preload/contract'

const calls: { channel: string; arg: unknown }[] = []
let failNextUpdate: string | null = null
let release: (() => void) | null = null
const history: EditHistory = { canUndo: true, canRedo: false, undoLabel: 'edit', redoLabel: null }
const rows: QaPair[] = [1, 2, 3].map((id) => ({
  id,
  projectId: 7,
  question: `Q${id}`,
  answer: `A${id}`,
  category: '',
  enabled: true,
  position: id,
  createdAt: 't',
  updatedAt: 't',
}))

vi.mock('../../renderer/src/api', () => ({
  api: new Proxy(
    {},
    {
      get: (_t, channel: string) => async (arg: Record<string, unknown>) => {
        calls.push({ channel, arg })
        if (channel === 'rows:list') return rows
        if (channel === 'rows:history') return history
        if (channel === 'dataset:check') return { rows: [], byCode: {}, rowsWithProblems: 0 }
        if (channel === 'rows:update') {
          if (release) await new Promise<void>((r) => (release = r))
          if (failNextUpdate) {
            const m = failNextUpdate
            failNextUpdate = null
            throw new Error(m)
          }
          return { upserted: (arg.changes as { id: number }[]).map((c) => ({ ...rows.find((r) => r.id === c.id)!, ...c, updatedAt: 'u' })), deletedIds: [], history, label: null } satisfies RowsMutation
        }
        if (channel === 'rows:undo') return { upserted: [{ ...rows[0]!, question: 'restored' }], deletedIds: [2], history, label: 'edit' } satisfies RowsMutation
        throw new Error(`unexpected ${channel}`)
      },
    },
  ),
}))

const { useDatasetStore } = await import('../../renderer/src/stores/dataset')

beforeEach(() => {
  setActivePinia(createPinia())
  calls.length = 0
  failNextUpdate = null
  release = null
})

describe('dataset store', () => {
  it('loads rows in position order and shows them all', async () => {
    const store = useDatasetStore()
    await store.load(7)
    expect(store.viewIds).toEqual([1, 2, 3])
    expect(store.rowCount).toBe(3)
    expect(store.rowNumbers.get(3)).toBe(3)
  })

  it('applies an edit at once, saves it, and rolls it back with the reason when main refuses', async () => {
    const store = useDatasetStore()
    await store.load(7)
    const ok = store.saveFields([{ id: 1, answer: 'new' }], { mergeKey: 'k1' })
    expect(store.getRow(1)!.answer).toBe('new')
    expect(store.saveState).toBe('saving')
    await ok
    expect(store.saveState).toBe('saved')
    expect(calls.find((c) => c.channel === 'rows:update')!.arg).toMatchObject({ projectId: 7, changes: [{ id: 1, answer: 'new' }], mergeKey: 'k1' })

    failNextUpdate = 'Use at most 100000 characters'
    await expect(store.saveFields([{ id: 2, question: 'x'.repeat(10) }])).rejects.toThrow('100000')
    expect(store.getRow(2)!.question).toBe('Q2')
    expect(store.saveState).toBe('error')
    expect(store.saveError).toContain('100000')
  })

  it('sends edits one at a time in order; a rollback does not undo a later edit of the same cell', async () => {
    const store = useDatasetStore()
    await store.load(7)
    release = () => {}
    failNextUpdate = 'boom'
    const first = store.saveFields([{ id: 3, answer: 'first' }])
    const second = store.saveFields([{ id: 3, answer: 'second' }])
    expect(store.getRow(3)!.answer).toBe('second')
    await new Promise((r) => setTimeout(r, 0))
    const r1 = release as unknown as () => void
    release = null
    r1()
    await expect(first).rejects.toThrow('boom')
    await second
    expect(store.getRow(3)!.answer).toBe('second')
    const updates = calls.filter((c) => c.channel === 'rows:update').map((c) => (c.arg as { changes: { answer: string }[] }).changes[0]!.answer)
    expect(updates).toEqual(['first', 'second'])
  })

  it('undo applies main\'s answer: restored rows come back, deleted rows leave the view', async () => {
    const store = useDatasetStore()
    await store.load(7)
    await store.undo()
    expect(store.getRow(1)!.question).toBe('restored')
    expect(store.viewIds).toEqual([1, 3])
    expect(store.reveal?.ids).toEqual([1])
  })
})
