// Chat persistence on a real SQLite file: chats and messages survive closing and reopening the database (zh-TW text,
// JSON columns), the list shows counts and the last question, truncation for edit/regenerate, cascades (project ->
// chats -> messages; run -> checks -> items), and the checks' per-split summary aggregates.
import { rmSync } from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { openDatabase } from '../../../main/db/openDatabase'
import { createRepos, type Repos } from '../../../main/db/repos'
import { tempDir } from '../../helpers/tempContext'
import { join } from 'node:path'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

function open(dir: string): { repos: Repos; close: () => void } {
  const { db } = openDatabase(join(dir, 'qa-tuner.sqlite'))
  return { repos: createRepos(db), close: () => db.close() }
}

function setup(): { dir: string; repos: Repos; close: () => void; projectId: number } {
  const dir = tempDir('qt-chats-')
  dirs.push(dir)
  const o = open(dir)
  const projectId = o.repos.projects.create({ name: '人資', language: 'zh-TW', systemPrompt: '你是人資助理' })
  return { dir, ...o, projectId }
}

describe('chats repo', () => {
  it('chats and messages survive a restart, with their JSON columns', () => {
    const { dir, repos, close, projectId } = setup()
    const sampling = { greedy: false, temperature: 0.7, topP: 0.9, topK: 40, maxNewTokens: 512, repetitionPenalty: 1.1 }
    const chatId = repos.chats.create({ projectId, title: '', modelId: null, adapter: { runId: 3, checkpointId: null }, settings: { mode: 'compare', sampling } })
    const q = repos.chats.addMessage({ chatId, role: 'user', content: '年假有幾天？😀', meta: {} })
    const a1 = repos.chats.addMessage({ chatId, role: 'assistant', content: '', meta: { variant: 'base', generation: { state: 'generating' } } })
    const a2 = repos.chats.addMessage({ chatId, role: 'assistant', content: '七天。', meta: { variant: 'tuned', generation: { state: 'done', tokens: 4 } } })
    repos.chats.update(chatId, { title: '年假' })
    close()

    const again = open(dir)
    const row = again.repos.chats.get(chatId)!
    expect(row).toMatchObject({ projectId, title: '年假', adapter: { runId: 3, checkpointId: null }, settings: { mode: 'compare', sampling }, messageCount: 3, preview: '年假有幾天？😀' })
    const msgs = again.repos.chats.messages(chatId)
    expect(msgs.map((m) => [m.id, m.role, m.content])).toEqual([
      [q, 'user', '年假有幾天？😀'],
      [a1, 'assistant', ''],
      [a2, 'assistant', '七天。'],
    ])
    expect(msgs[2].meta).toEqual({ variant: 'tuned', generation: { state: 'done', tokens: 4 } })
    expect(again.repos.chats.generatingMessages().map((m) => m.id)).toEqual([a1])

    again.repos.chats.updateMessage(a1, { content: '也是七天', meta: { variant: 'base', generation: { state: 'stopped' } } })
    expect(again.repos.chats.generatingMessages()).toEqual([])
    expect(again.repos.chats.message(a1)!.content).toBe('也是七天')
    again.close()
  })

  it('lists a project\'s chats newest first, with counts and the last question; update clears the model or the adapter on request', async () => {
    const { repos, close, projectId } = setup()
    const model = repos.models.create({ name: 'tiny', path: '/m/tiny', source: 'local', architecture: 'LlamaForCausalLM', sizeBytes: 1, status: 'ready', info: {} })
    const first = repos.chats.create({ projectId, title: '第一', modelId: model, adapter: null, settings: {} })
    await new Promise((r) => setTimeout(r, 5))
    const second = repos.chats.create({ projectId, title: '第二', modelId: null, adapter: null, settings: {} })
    repos.chats.addMessage({ chatId: first, role: 'user', content: '舊問題', meta: {} })
    repos.chats.addMessage({ chatId: first, role: 'user', content: '新問題', meta: {} })
    expect(repos.chats.list(projectId).map((c) => c.id)).toEqual([second, first])
    const f = repos.chats.list(projectId).find((c) => c.id === first)!
    expect(f).toMatchObject({ messageCount: 2, preview: '新問題', modelName: 'tiny', modelId: model })
    await new Promise((r) => setTimeout(r, 5))
    repos.chats.touch(first)
    expect(repos.chats.list(projectId)[0].id).toBe(first)
    repos.chats.update(first, { adapter: { runId: 9, checkpointId: 2 } })
    expect(repos.chats.get(first)!.adapter).toEqual({ runId: 9, checkpointId: 2 })
    repos.chats.update(first, { adapter: null, modelId: null })
    expect(repos.chats.get(first)).toMatchObject({ adapter: null, modelId: null, title: '第一' })
    close()
  })

  it('deleteMessagesFrom truncates the conversation after an edited question; deleting a chat or its project removes its messages', () => {
    const { repos, close, projectId } = setup()
    const chatId = repos.chats.create({ projectId, title: 't', modelId: null, adapter: null, settings: {} })
    const ids = ['q1', 'a1', 'q2', 'a2', 'q3', 'a3'].map((c, i) => repos.chats.addMessage({ chatId, role: i % 2 ? 'assistant' : 'user', content: c, meta: {} }))
    expect(repos.chats.deleteMessagesFrom(chatId, ids[2] + 1)).toBe(3)
    expect(repos.chats.messages(chatId).map((m) => m.content)).toEqual(['q1', 'a1', 'q2'])
    const other = repos.chats.create({ projectId, title: 'o', modelId: null, adapter: null, settings: {} })
    repos.chats.addMessage({ chatId: other, role: 'user', content: 'x', meta: {} })
    repos.chats.delete(chatId)
    expect(repos.chats.get(chatId)).toBeUndefined()
    expect(repos.chats.message(ids[0])).toBeUndefined()
    repos.projects.delete(projectId)
    expect(repos.chats.get(other)).toBeUndefined()
    close()
  })
})

describe('learn checks repo', () => {
  it('keeps items with the run, aggregates per split, and goes when the run is deleted', () => {
    const { dir, repos, close, projectId } = setup()
    const runId = repos.runs.create({ projectId, modelId: null, name: 'Run A', preset: 'demo', settings: {}, summary: {} })
    const adapter = { runId, runName: 'Run A', checkpointId: null, kind: 'adapter', adapterFrom: 'best', step: 12 }
    const id = repos.learnChecks.create({ runId, checkpointId: null, adapter, adapterPath: '/runs/1/adapter', perSplit: 2, maxNewTokens: 64, total: 3 })
    const item = (position: number, split: 'train' | 'validation', base: number, tuned: number) =>
      repos.learnChecks.addItem(id, {
        position, split, rowId: position === 2 ? 'row-x' : position + 10, question: `問${position}`, reference: `答${position}`, baseAnswer: 'b', tunedAnswer: 't',
        baseScore: base, tunedScore: tuned, baseCharF1: base / 2, tunedCharF1: tuned / 2, baseExact: false, tunedExact: tuned === 1,
      })
    const first = item(0, 'train', 0.1, 1)
    expect(first).toMatchObject({ id: expect.any(Number), rowId: 10, question: '問0', tunedScore: 1 })
    item(1, 'train', 0.3, 0.5)
    item(2, 'validation', 0.2, 0.4)
    repos.learnChecks.finish(id, 'completed')
    close()

    const again = open(dir)
    const row = again.repos.learnChecks.get(id)!
    expect(row).toMatchObject({ runId, projectId, runName: 'Run A', status: 'completed', total: 3, done: 3, adapter, error: null })
    expect(row.finishedAt).not.toBeNull()
    const s = again.repos.learnChecks.summary(id)
    expect(s.train.count).toBe(2)
    expect(s.train.baseScore).toBeCloseTo(0.2, 12)
    expect(s.train.tunedScore).toBeCloseTo(0.75, 12)
    expect(s.train.tunedCharF1).toBeCloseTo(0.375, 12)
    expect(s.train.tunedExact).toBe(1)
    expect(s.validation).toMatchObject({ count: 1, baseExact: 0, tunedExact: 0 })
    expect(s.validation.tunedScore).toBeCloseTo(0.4, 12)
    expect(again.repos.learnChecks.items(id).map((i) => i.rowId)).toEqual([10, 11, 'row-x'])
    expect(again.repos.learnChecks.listByRun(runId).map((c) => c.id)).toEqual([id])
    expect(again.repos.learnChecks.listByProject(projectId).map((c) => c.id)).toEqual([id])

    const running = again.repos.learnChecks.create({ runId, checkpointId: 4, adapter, adapterPath: '/x', perSplit: 1, maxNewTokens: 8, total: 2 })
    expect(again.repos.learnChecks.runningIds()).toEqual([running])
    again.repos.learnChecks.finish(running, 'interrupted', { code: 'CANCELLED', message: 'closed' })
    expect(again.repos.learnChecks.get(running)!.error).toEqual({ code: 'CANCELLED', message: 'closed' })

    again.repos.runs.delete(runId)
    expect(again.repos.learnChecks.get(id)).toBeUndefined()
    expect(again.repos.learnChecks.items(id)).toEqual([])
    again.close()
  })
})
