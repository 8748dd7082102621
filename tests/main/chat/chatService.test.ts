// The chat through the real stack: handlers -> ChatService -> engine host child process (native addon, CPU) ->
// SQLite. Streamed pieces rebuild exactly the saved answer, which is exactly the engine's tokens decoded; stop keeps
// the partial answer; edit truncates, regenerate replaces; multi-turn prompts carry the history; after a training run
// its adapter and checkpoints are offered, switching between them never reloads the base model, compare streams both
// answers together; the chat refuses while a run trains; "Did it learn?" answers sampled training and validation
// questions, scores them and keeps them with the run; answers left mid-way by a dead process are marked interrupted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type {
  ChatDetail, ChatGeneration, ChatMessageEntry, ChatOptions, ChatStatusEvent, ChatStreamEvent, LearnCheck, LearnCheckDetail, Run, RunDetail,
} from '../../../preload/contract'
import { runCompileSummary } from '../../../main/chat/adapters'
import { buildChatPrompt, type Turn } from '../../../main/chat/chatPrompt'
import { engineSampling } from '../../../main/chat/sampling'
import { engineOf } from '../../../main/engine/host/engineForContext'
import { chatFormatFor } from '../../../main/tokenizer/ChatFormat'
import { trainingServiceOf } from '../../../main/training/trainingHandlers'
import { loadTokenizer } from '../../../main/tokenizer/loadTokenizer'
import { chatApp, QA, SYSTEM, tinyModel, type ChatApp } from './helpers'

let a: ChatApp
let run: Run
/** Questions the run trained on (its compiled training split), with their answers. */
let trained: string[][] = []
const reloads: boolean[] = []

beforeAll(async () => {
  a = await chatApp()
  // Watch every model load of the engine host: reused (kept) or loaded from disk.
  const sup = engineOf(a.ctx)
  const call = sup.call.bind(sup)
  sup.call = ((method: string, params: unknown, options: unknown) => {
    const p = (call as (m: string, p: unknown, o: unknown) => Promise<unknown>)(method, params, options)
    if (method === 'model.load') void p.then((r) => reloads.push(!(r as { reused: boolean }).reused), () => undefined)
    return p
  }) as typeof sup.call
}, 120_000)
afterAll(async () => {
  await a?.cleanup()
})

const GREEDY = { greedy: true, maxNewTokens: 48, repetitionPenalty: 1.1 }

/** Sends and waits for the saved answer(s). */
async function ask(chatId: number, content: string): Promise<{ gen: ChatGeneration; chat: ChatDetail; answers: ChatMessageEntry[]; stream: ChatStreamEvent[]; status: ChatStatusEvent[] }> {
  const gen = await a.call<ChatGeneration>('chat:send', { chatId, content })
  await a.services.chat.whenIdle(chatId)
  const chat = await a.call<ChatDetail>('chats:get', { id: chatId })
  const status = a.eventsOf('chat:status').filter((e) => e.generationId === gen.generationId)
  const stream = a.eventsOf('chat:stream').filter((e) => e.generationId === gen.generationId)
  const answers = status.at(-1)!.messages!
  return { gen, chat, answers, stream, status }
}

/** The answer text rebuilt from the stream events of one message. */
function rebuilt(stream: ChatStreamEvent[], messageId: number): string {
  let text = ''
  for (const e of stream.filter((x) => x.messageId === messageId)) {
    expect(e.offset).toBeLessThanOrEqual(text.length)
    text = text.slice(0, e.offset) + e.text
  }
  return text
}

/** What the engine itself generates greedily for this conversation (decoded without the stop token). */
async function engineAnswer(modelDir: string, turns: Turn[], maxNewTokens: number, adapterId: number | null = null): Promise<string> {
  const tok = await loadTokenizer(modelDir)
  const format = chatFormatFor(tok, 'model')
  const prompt = buildChatPrompt(format, SYSTEM, turns, 4096, maxNewTokens)
  const r = await engineOf(a.ctx).call('generate', {
    promptIds: prompt.ids,
    sampling: engineSampling({ ...GREEDY, temperature: 0.7, topP: 0.9, topK: 40, maxNewTokens }, prompt.stopIds, tok.vocabSize, 0),
    adapterId,
  })
  const stop = new Set(prompt.stopIds)
  return tok.decode(r.tokens.filter((t) => !stop.has(t)), { skipSpecialTokens: true })
}

describe('chat with the base model', () => {
  it('options: the project model by default, no adapters yet, the sampling defaults', async () => {
    const o = await a.call<ChatOptions>('chat:options', { projectId: a.projectId })
    expect(o.defaultModelId).toBe(a.smallModelId)
    expect(o.defaultAdapter).toBeNull()
    expect(o.adapters).toEqual([])
    expect(o.systemPrompt).toBe(SYSTEM)
    expect(o.models.find((m) => m.id === a.smallModelId)).toMatchObject({ name: 'tiny', problem: null })
    expect(o.models.some((m) => m.source === 'demo')).toBe(true)
    expect(o.defaults).toEqual({ greedy: false, temperature: 0.7, topP: 0.9, topK: 40, maxNewTokens: 512, repetitionPenalty: 1.1 })
    // Compare needs an adapter.
    expect((await a.fail('chats:create', { projectId: a.projectId, mode: 'compare' })).message).toMatch(/training run/)
  })

  it('streams an answer whose pieces rebuild the saved text, which is exactly the engine\'s tokens decoded; the next question carries the history', async () => {
    const chat = await a.call<ChatDetail>('chats:create', { projectId: a.projectId, sampling: GREEDY })
    expect(chat).toMatchObject({ mode: 'chat', modelId: a.smallModelId, adapter: null, title: '', messageCount: 0 })
    const first = await ask(chat.id, '  年假有幾天？ ')
    expect(first.gen.chat.generating).toBe(true)
    expect(first.gen.chat.messages.map((m) => [m.role, m.content, m.generation?.state ?? null])).toEqual([
      ['user', '年假有幾天？', null],
      ['assistant', '', 'generating'],
    ])
    expect(first.status.map((s) => s.state)).toEqual(expect.arrayContaining(['loading', 'generating', 'done']))
    expect(first.status.at(-1)!.state).toBe('done')
    const answer = first.answers[0]
    expect(answer.generation).toMatchObject({ state: 'done', device: 'cpu', error: null, adapter: null, droppedTurns: 0 })
    expect(answer.generation!.tokens).toBeGreaterThan(0)
    expect(first.stream.length).toBeGreaterThan(3)
    expect(rebuilt(first.stream, answer.id)).toBe(answer.content)
    const modelDir = await tinyModel('small')
    expect(answer.content).toBe(await engineAnswer(modelDir, [{ role: 'user', content: '年假有幾天？' }], 48))
    expect(first.chat.title).toBe('年假有幾天？')
    expect(first.chat.messages.at(-1)!.content).toBe(answer.content)

    const second = await ask(chat.id, '那婚假呢？')
    const turns: Turn[] = [{ role: 'user', content: '年假有幾天？' }, { role: 'assistant', content: answer.content }, { role: 'user', content: '那婚假呢？' }]
    const format = chatFormatFor(await loadTokenizer(modelDir), 'model')
    expect(second.answers[0].generation!.promptTokens).toBe(buildChatPrompt(format, SYSTEM, turns, 4096, 48).ids.length)
    expect(second.answers[0].content).toBe(await engineAnswer(modelDir, turns, 48))
    expect(second.chat.messages).toHaveLength(4)
  })

  it('edit and resend removes everything after the edited question; regenerate replaces the last answer', async () => {
    const chat = await a.call<ChatDetail>('chats:create', { projectId: a.projectId, sampling: { maxNewTokens: 16 } })
    await ask(chat.id, '問題一')
    await ask(chat.id, '問題二')
    const before = await a.call<ChatDetail>('chats:get', { id: chat.id })
    expect(before.messages).toHaveLength(4)
    const q1 = before.messages[0]
    const third = await ask(chat.id, '問題三') // to be cut by the edit
    expect(third.chat.messages).toHaveLength(6)
    const gen = await a.call<ChatGeneration>('chat:edit', { chatId: chat.id, messageId: q1.id, content: '改過的問題' })
    expect(gen.chat.messages.map((m) => m.role)).toEqual(['user', 'assistant'])
    await a.services.chat.whenIdle(chat.id)
    const after = await a.call<ChatDetail>('chats:get', { id: chat.id })
    expect(after.messages.map((m) => m.content)[0]).toBe('改過的問題')
    expect(after.messages[0].id).toBe(q1.id)
    expect(after.messages).toHaveLength(2)
    expect(after.messages[1].generation!.state).toBe('done')

    const regen = await a.call<ChatGeneration>('chat:regenerate', { chatId: chat.id })
    expect(regen.chat.messages).toHaveLength(2)
    expect(regen.chat.messages[1].generation!.state).toBe('generating')
    await a.services.chat.whenIdle(chat.id)
    expect((await a.call<ChatDetail>('chats:get', { id: chat.id })).messages[1].generation!.state).toBe('done')

    // Only questions can be edited; an empty question is refused without touching the chat.
    expect((await a.fail('chat:edit', { chatId: chat.id, messageId: after.messages[1].id, content: 'x' })).code).toBe('INVALID_ARGUMENT')
    expect((await a.fail('chat:send', { chatId: chat.id, content: '   ' })).message).toMatch(/empty/)
    expect((await a.call<ChatDetail>('chats:get', { id: chat.id })).messages).toHaveLength(2)
  })

  it('stop ends a long answer early and keeps the text so far', async () => {
    const slow = await a.call<{ id: number }>('models:import', { path: await tinyModel('slow'), name: 'slow' })
    const chat = await a.call<ChatDetail>('chats:create', { projectId: a.projectId, modelId: slow.id, sampling: { greedy: true, maxNewTokens: 4096 } })
    const gen = await a.call<ChatGeneration>('chat:send', { chatId: chat.id, content: '請詳細說明公司的請假規定' })
    const t0 = Date.now()
    while (a.eventsOf('chat:stream').filter((e) => e.generationId === gen.generationId).length < 5) {
      if (Date.now() - t0 > 60_000) throw new Error('no stream')
      await new Promise((r) => setTimeout(r, 5))
    }
    // A second question while it writes is refused.
    expect((await a.fail('chat:send', { chatId: chat.id, content: '還有嗎？' })).code).toBe('BUSY')
    await a.call('chat:stop', { chatId: chat.id })
    const saved = await a.call<ChatDetail>('chats:get', { id: chat.id })
    expect(saved.generating).toBe(false)
    const answer = saved.messages[1]
    expect(answer.generation).toMatchObject({ state: 'stopped', finish: 'cancelled' })
    expect(answer.generation!.tokens).toBeGreaterThan(0)
    expect(answer.generation!.tokens).toBeLessThan(3500)
    expect(answer.content.length).toBeGreaterThan(0)
    expect(rebuilt(a.eventsOf('chat:stream').filter((e) => e.generationId === gen.generationId), answer.id)).toBe(answer.content)
    expect(a.eventsOf('chat:status').filter((e) => e.generationId === gen.generationId).at(-1)!.state).toBe('stopped')
    // The stopped answer is part of the history of the next question.
    await a.call('chats:update', { id: chat.id, sampling: { maxNewTokens: 8 } })
    const next = await ask(chat.id, '好')
    expect(next.answers[0].generation!.promptTokens).toBeGreaterThan(answer.generation!.tokens)
    await a.call('chats:delete', { id: chat.id })
  })
})

describe('after a training run', () => {
  beforeAll(async () => {
    run = await a.train({ checkpointEverySteps: 40 })
    expect(run.status).toBe('completed')
    const split = runCompileSummary(a.ctx, a.ctx.repos().runs.get(run.id)!)!
    const rows = await a.call<{ id: number; question: string; answer: string }[]>('rows:list', { projectId: a.projectId })
    trained = split.train.rowIds.map((id) => rows.find((r) => r.id === id)!).map((r) => [r.question, r.answer])
    expect(trained).toHaveLength(6)
  }, 180_000)

  it('offers the run\'s adapter and checkpoints; answers with the adapter; switching adapters never reloads the base model', async () => {
    const o = await a.call<ChatOptions>('chat:options', { projectId: a.projectId })
    const detail = await a.call<RunDetail>('runs:get', { id: run.id })
    expect(o.adapters[0]).toMatchObject({ runId: run.id, checkpointId: null, kind: 'adapter', adapterFrom: 'final', step: run.totalSteps, modelId: a.smallModelId })
    expect(o.adapters.slice(1).map((x) => x.checkpointId).sort()).toEqual(detail.checkpoints.map((c) => c.id).sort())
    expect(o.defaultAdapter).toEqual({ runId: run.id, checkpointId: null })

    const chat = await a.call<ChatDetail>('chats:create', { projectId: a.projectId, sampling: GREEDY })
    expect(chat.adapter).toEqual({ runId: run.id, checkpointId: null })
    expect(chat.adapterInfo).toMatchObject({ runId: run.id, kind: 'adapter', step: run.totalSteps })
    const loadsBefore = reloads.filter(Boolean).length
    const [q, reference] = trained[0]
    const tuned = await ask(chat.id, q)
    expect(tuned.answers[0].generation!.adapter).toMatchObject({ runId: run.id, checkpointId: null })
    expect(tuned.answers[0].content).toBe(reference) // learned by heart
    // The base model (no adapter), then a checkpoint, then the adapter again: the same resident weights throughout.
    await a.call('chats:update', { id: chat.id, adapter: null })
    const base = await ask(chat.id, q)
    expect(base.answers[0].generation!.adapter).toBeNull()
    expect(base.answers[0].content).not.toBe(reference)
    const ckpt = o.adapters.find((x) => x.checkpointId !== null)!
    await a.call('chats:update', { id: chat.id, adapter: { runId: run.id, checkpointId: ckpt.checkpointId } })
    const fromCkpt = await ask(chat.id, q)
    expect(fromCkpt.answers[0].generation!.adapter).toMatchObject({ checkpointId: ckpt.checkpointId, step: ckpt.step })
    await a.call('chats:update', { id: chat.id, adapter: { runId: run.id, checkpointId: null } })
    await ask(chat.id, q)
    // The run left the model resident (same folder and device): base, checkpoint and adapter all used it as it was.
    expect(reloads.filter(Boolean).length - loadsBefore).toBe(0)
    expect(reloads.length).toBeGreaterThan(loadsBefore)
  })

  it('compare: both answers stream together, the base one and the fine-tuned one', async () => {
    const chat = await a.call<ChatDetail>('chats:create', { projectId: a.projectId, mode: 'compare', sampling: { ...GREEDY, maxNewTokens: 40 } })
    expect(chat.mode).toBe('compare')
    const [q, reference] = trained[1]
    const r = await ask(chat.id, q)
    expect(r.gen.chat.messages.map((m) => [m.role, m.variant])).toEqual([
      ['user', null],
      ['assistant', 'base'],
      ['assistant', 'tuned'],
    ])
    const base = r.answers.find((m) => m.variant === 'base')!
    const tuned = r.answers.find((m) => m.variant === 'tuned')!
    expect(tuned.content).toBe(reference)
    expect(base.content).not.toBe(reference)
    expect(base.generation!.adapter).toBeNull()
    expect(tuned.generation!.adapter).toMatchObject({ runId: run.id })
    expect(rebuilt(r.stream, base.id)).toBe(base.content)
    expect(rebuilt(r.stream, tuned.id)).toBe(tuned.content)
    // Interleaved: each column gets text before the other has finished.
    const order = r.stream.map((e) => e.variant)
    expect(order.indexOf('tuned')).toBeLessThan(order.lastIndexOf('base'))
    expect(order.indexOf('base')).toBeLessThan(order.lastIndexOf('tuned'))
    // The same answers as one-shot greedy generation (chunked turns change nothing).
    expect(base.content).toBe(await engineAnswer(await tinyModel('small'), [{ role: 'user', content: q }], 40))

    // Each column keeps its own history.
    const r2 = await ask(chat.id, trained[2][0])
    const [b2, t2] = ['base', 'tuned'].map((v) => r2.answers.find((m) => m.variant === v)!)
    expect(t2.generation!.promptTokens).not.toBe(b2.generation!.promptTokens)
  })

  it('"Did it learn?": sampled training and validation questions, both answers scored, kept with the run', async () => {
    const started = await a.call<LearnCheck>('learn:start', { runId: run.id, perSplit: 10 })
    expect(started.status).toBe('running')
    expect(started.total).toBe(QA.length) // 6 training + 2 validation rows, all of them (fewer than 10 per split)
    const done = await a.services.checks.whenDone(started.id)
    expect(done.status).toBe('completed')
    expect(done.done).toBe(QA.length)
    const detail = await a.call<LearnCheckDetail>('learn:get', { id: started.id })
    expect(detail.items.filter((i) => i.split === 'train')).toHaveLength(6)
    expect(detail.items.filter((i) => i.split === 'validation')).toHaveLength(2)
    for (const it of detail.items) {
      const row = QA.find(([question]) => question === it.question)!
      expect(it.reference).toBe(row[1])
      expect(it.baseScore).toBeGreaterThanOrEqual(0)
      expect(it.tunedScore).toBeLessThanOrEqual(1)
    }
    const trainItems = detail.items.filter((i) => i.split === 'train')
    expect(trainItems.every((i) => i.tunedAnswer === i.reference)).toBe(true)
    expect(done.summary.train).toMatchObject({ count: 6, tunedScore: 1, tunedExact: 6, baseExact: 0 })
    expect(done.summary.train.baseScore!).toBeLessThan(0.5)
    expect(done.summary.validation.count).toBe(2)
    const progress = a.eventsOf('learn:progress').filter((e) => e.check.id === started.id)
    expect(progress.flatMap((e) => e.items.map((i) => i.position))).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
    expect(progress.at(-1)!.check.status).toBe('completed')
    expect((await a.call<LearnCheck[]>('learn:list', { runId: run.id })).map((c) => c.id)).toEqual([started.id])

    // Cancel: a check stopped before its first question ends 'cancelled' with what it did.
    const second = await a.call<LearnCheck>('learn:start', { runId: run.id, perSplit: 3 })
    const cancelled = await a.call<LearnCheck>('learn:cancel', { id: second.id })
    expect(cancelled.status).toBe('cancelled')
    expect(cancelled.done).toBeLessThan(cancelled.total)
    expect((await a.call<LearnCheck[]>('learn:list', { projectId: a.projectId })).map((c) => c.id)).toEqual([second.id, started.id])
    await a.call('learn:delete', { id: second.id })
    expect((await a.call<LearnCheck[]>('learn:list', { runId: run.id })).map((c) => c.id)).toEqual([started.id])
  })

  it('refuses while a training run is active and says which; works again afterwards', async () => {
    const chat = await a.call<ChatDetail>('chats:create', { projectId: a.projectId, sampling: { maxNewTokens: 8 } })
    const training = await a.call<Run>('training:start', { projectId: a.projectId, preset: 'demo', settings: { maxLength: 64, epochs: 1 }, device: 'cpu' })
    const refused = await a.fail('chat:send', { chatId: chat.id, content: '你好' })
    expect(refused.code).toBe('BUSY')
    expect(refused.message).toContain(`#${training.id}`)
    expect(refused.details).toMatchObject({ holder: { kind: 'training', runId: training.id } })
    expect((await a.fail('learn:start', { runId: run.id })).code).toBe('BUSY')
    expect((await a.call<ChatDetail>('chats:get', { id: chat.id })).messages).toHaveLength(0) // nothing half-saved
    await trainingServiceOf(a.ctx).whenDone(training.id)
    const ok = await ask(chat.id, '你好')
    expect(ok.answers[0].generation!.state).toBe('done')
  })

  it('deleting the run removes its checks; a chat that used its adapter says the adapter is missing', async () => {
    const chat = await a.call<ChatDetail>('chats:create', { projectId: a.projectId, adapter: { runId: run.id, checkpointId: null }, sampling: { maxNewTokens: 8 } })
    expect(chat.adapterInfo?.runId).toBe(run.id)
    const check = (await a.call<LearnCheck[]>('learn:list', { runId: run.id }))[0]
    await a.call('runs:delete', { id: run.id })
    expect((await a.fail('learn:get', { id: check.id })).code).toBe('NOT_FOUND')
    const after = await a.call<ChatDetail>('chats:get', { id: chat.id })
    expect(after.adapterMissing).toBe(true)
    expect(after.adapterInfo).toBeNull()
    const refused = await a.fail('chat:send', { chatId: chat.id, content: '你好' })
    expect(refused.message).toMatch(/no longer exists/)
  })
})

describe('start-up', () => {
  it('marks answers left mid-way by a previous process as interrupted', async () => {
    const chat = await a.call<ChatDetail>('chats:create', { projectId: a.projectId, adapter: null })
    const repo = a.ctx.repos().chats
    repo.addMessage({ chatId: chat.id, role: 'user', content: '問', meta: {} })
    const m = repo.addMessage({ chatId: chat.id, role: 'assistant', content: '', meta: { variant: null, generation: { state: 'generating', finish: null, tokens: 0, promptTokens: 0, seconds: 0, droppedTurns: 0, adapter: null, device: null, error: null } } })
    a.services.chat.recoverInterrupted()
    const saved = (await a.call<ChatDetail>('chats:get', { id: chat.id })).messages.find((x) => x.id === m)!
    expect(saved.generation).toMatchObject({ state: 'interrupted', error: { code: 'CANCELLED' } })
  })
})
