// The chat store and components against a fake of the contract: streamed pieces land at their offsets (a correction
// rewrites the tail), events that arrive before the send request returns are replayed in order, a gap reloads the
// conversation, the final status replaces the answers; compare groups answers per question; the composer sends on
// Enter but not while an IME is composing; the check summary reads the scores in plain words.
import { mount } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import type { ChatDetail, ChatMessageEntry, ChatStatusEvent, ChatStreamEvent, LearnCheck } from '../../preload/contract'

const state = await vi.hoisted(async () => {
  const { fakeApiEvents } = await import('../helpers/fakeApiEvents')
  return {
    events: fakeApiEvents(),
    calls: [] as { channel: string; arg: unknown }[],
    detail: null as unknown,
    /** Resolves chat:send when called: lets a test emit events before the request returns. */
    sendGate: null as null | Promise<void>,
    /** Holds chats:update until resolved: a settings change still on its way to main. */
    updateGate: null as null | Promise<void>,
  }
})

function gen(over: Partial<NonNullable<ChatMessageEntry['generation']>> = {}): NonNullable<ChatMessageEntry['generation']> {
  return { state: 'generating', finish: null, tokens: 0, promptTokens: 10, seconds: 0, droppedTurns: 0, adapter: null, device: null, error: null, ...over }
}

function detail(messages: ChatMessageEntry[], over: Partial<ChatDetail> = {}): ChatDetail {
  return {
    id: 5, projectId: 1, title: 't', mode: 'chat', modelId: 2, modelName: 'tiny', adapter: null, adapterInfo: null, adapterMissing: false,
    sampling: { greedy: false, temperature: 0.7, topP: 0.9, topK: 40, maxNewTokens: 512, repetitionPenalty: 1.1 }, messageCount: messages.length, preview: '',
    createdAt: '2026-01-01T00:00:00Z', updatedAt: '2026-01-01T00:00:00Z', messages, generating: false, ...over,
  }
}

const q = (id: number, content = '年假幾天？'): ChatMessageEntry => ({ id, chatId: 5, role: 'user', content, variant: null, generation: null, createdAt: '' })
const a = (id: number, content = '', variant: ChatMessageEntry['variant'] = null, g = gen()): ChatMessageEntry => ({
  id, chatId: 5, role: 'assistant', content, variant, generation: g, createdAt: '',
})

vi.mock('../../renderer/src/api', () => ({
  transport: 'browser',
  ApiError: class extends Error {},
  api: new Proxy(
    {},
    {
      get(_t, prop: string) {
        if (prop === 'on') return state.events.on
        return async (arg: unknown) => {
          state.calls.push({ channel: prop, arg })
          if (prop === 'chats:get') return state.detail
          if (prop === 'chats:list') return []
          if (prop === 'chats:update') {
            await state.updateGate
            const { id: _id, ...patch } = arg as { id: number; sampling?: object }
            return detail([], { sampling: { ...detail([]).sampling, ...patch.sampling } })
          }
          if (prop === 'chat:send') {
            await state.sendGate
            return { generationId: 'g1', chat: detail([q(1), a(2)], { generating: true }) }
          }
          return undefined
        }
      },
    },
  ),
}))

const { useChatStore, applyPiece } = await import('../../renderer/src/stores/chat')
const { i18n } = await import('../../renderer/src/i18n')
const CompareMessageList = (await import('../../renderer/src/components/CompareMessageList.vue')).default
const ChatComposer = (await import('../../renderer/src/components/ChatComposer.vue')).default
const LearnCheckSummary = (await import('../../renderer/src/components/LearnCheckSummary.vue')).default

const emit = state.events.emit
const stream = (offset: number, text: string, over: Partial<ChatStreamEvent> = {}): ChatStreamEvent => ({ chatId: 5, generationId: 'g1', messageId: 2, variant: null, offset, text, tokens: 1, ...over })
const status = (s: ChatStatusEvent['state'], over: Partial<ChatStatusEvent> = {}): ChatStatusEvent => ({
  chatId: 5, generationId: 'g1', state: s, fraction: null, device: 'cpu', error: null, messages: null, ...over,
})

beforeEach(() => {
  setActivePinia(createPinia())
  state.events.clear()
  state.calls = []
  state.sendGate = null
  state.updateGate = null
  state.detail = null
})

describe('applyPiece', () => {
  it('appends at the end, rewrites from an earlier offset, and reports a gap', () => {
    expect(applyPiece('年假', 2, '七天')).toBe('年假七天')
    expect(applyPiece('年假七天', 2, '八天。')).toBe('年假八天。')
    expect(applyPiece('年假', 5, 'x')).toBeNull()
  })
})

describe('streaming into the open conversation', () => {
  it('events before the send request returns are replayed in order; the final status replaces the answer', async () => {
    const store = useChatStore()
    store.current = detail([])
    let open!: () => void
    state.sendGate = new Promise<void>((r) => (open = r))
    const sending = store.send('年假幾天？')
    await vi.waitFor(() => expect(state.calls.some((c) => c.channel === 'chat:send')).toBe(true))
    // The model is faster than the HTTP answer: pieces and even the end arrive first.
    emit('chat:status', status('generating'))
    emit('chat:stream', stream(0, '到職'))
    emit('chat:stream', stream(2, '滿一年'))
    emit('chat:status', status('done', { messages: [a(2, '到職滿一年七天', null, gen({ state: 'done', finish: 'stop', tokens: 6 }))] }))
    open()
    expect(await sending).toBe(true)
    const answer = store.current!.messages[1]
    expect(answer.content).toBe('到職滿一年七天')
    expect(answer.generation!.state).toBe('done')
    expect(store.generation?.state).toBe('done')
    expect(store.generating).toBe(false)
  })

  it('a message sent right after a settings change waits until main has saved the change', async () => {
    const store = useChatStore()
    store.current = detail([])
    let saved!: () => void
    state.updateGate = new Promise<void>((r) => (saved = r))
    void store.update({ sampling: { maxNewTokens: 3000 } })
    const sending = store.send('年假幾天？')
    await new Promise((r) => setTimeout(r, 20))
    expect(state.calls.map((c) => c.channel)).toEqual(['chats:update']) // the send is held back
    saved()
    expect(await sending).toBe(true)
    const order = state.calls.map((c) => c.channel)
    expect(order.indexOf('chats:update')).toBeLessThan(order.indexOf('chat:send'))
  })

  it('pieces grow the text while writing; a tail correction and a gap (which reloads the conversation)', async () => {
    const store = useChatStore()
    store.current = detail([q(1), a(2)], { generating: true })
    emit('chat:status', status('generating'))
    emit('chat:stream', stream(0, '年假'))
    expect(store.current.messages[1].content).toBe('年假')
    emit('chat:stream', stream(2, '七天', { tokens: 4 }))
    expect(store.current.messages[1].content).toBe('年假七天')
    expect(store.current.messages[1].generation!.tokens).toBe(4)
    emit('chat:stream', stream(2, '八天'))
    expect(store.current.messages[1].content).toBe('年假八天')
    // Another conversation's events are ignored.
    emit('chat:stream', stream(4, 'x', { chatId: 9 }))
    expect(store.current.messages[1].content).toBe('年假八天')
    // A gap: reload the conversation (it carries the text written so far).
    state.detail = detail([q(1), a(2, '年假八天，另有')], { generating: true })
    emit('chat:stream', stream(20, '…'))
    await vi.waitFor(() => expect(store.current!.messages[1].content).toBe('年假八天，另有'))
    expect(state.calls.filter((c) => c.channel === 'chats:get')).toHaveLength(1)
  })

  it('a failed answer shows its error; a stop (cancelled) does not', () => {
    const store = useChatStore()
    store.current = detail([q(1), a(2)], { generating: true })
    emit('chat:status', status('failed', { error: { code: 'OUT_OF_MEMORY', message: 'no memory' }, messages: [a(2, '', null, gen({ state: 'failed' }))] }))
    expect(store.lastError).toBe('no memory')
    store.lastError = null
    store.current = detail([q(1), a(2)], { generating: true })
    emit('chat:status', status('stopped', { error: { code: 'CANCELLED', message: 'stopped' }, messages: [a(2, '年', null, gen({ state: 'stopped' }))] }))
    expect(store.lastError).toBeNull()
    expect(store.current.messages[1].generation!.state).toBe('stopped')
  })
})

describe('components', () => {
  it('compare: one question, the base and the fine-tuned answers side by side, per question', async () => {
    const messages = [q(1, '問一'), a(2, '原始一', 'base', gen({ state: 'done' })), a(3, '微調一', 'tuned', gen({ state: 'done' })), q(4, '問二'), a(5, '原始二', 'base'), a(6, '微', 'tuned')]
    const w = mount(CompareMessageList, { props: { messages, live: { id: 'g', state: 'generating', fraction: null, device: 'cpu' }, busy: true, adapter: null }, global: { plugins: [i18n] } })
    const base = w.findAll('[data-testid="compare-base"]')
    const tuned = w.findAll('[data-testid="compare-tuned"]')
    expect(base.map((b) => b.find('[data-testid="answer-text"]').text())).toEqual(['原始一', '原始二'])
    expect(tuned.map((b) => b.find('[data-testid="answer-text"]').text())).toEqual(['微調一', '微'])
    expect(w.findAll('[data-testid="question-text"]').map((x) => x.text())).toEqual(['問一', '問二'])
    expect(tuned[1].find('[data-testid="assistant-message"]').attributes('data-state')).toBe('generating')
    expect(w.find('[data-testid="regenerate"]').exists()).toBe(false) // busy
  })

  it('the composer sends on Enter, keeps Shift+Enter and IME composition in the box', async () => {
    const w = mount(ChatComposer, { props: { generating: false, disabled: false }, global: { plugins: [i18n] } })
    const box = w.find('textarea')
    await box.setValue('年假')
    await box.trigger('compositionstart')
    await box.trigger('keydown', { key: 'Enter' })
    expect(w.emitted('send')).toBeUndefined()
    await box.trigger('compositionend')
    await box.trigger('keydown', { key: 'Enter', shiftKey: true })
    expect(w.emitted('send')).toBeUndefined()
    await box.trigger('keydown', { key: 'Enter' })
    expect(w.emitted('send')).toEqual([['年假']])
    expect((box.element as HTMLTextAreaElement).value).toBe('')
    await w.setProps({ generating: true })
    await w.find('[data-testid="chat-stop"]').trigger('click')
    expect(w.emitted('stop')).toHaveLength(1)
  })

  it('the check summary: scores per split and a plain reading (learned, but not on new questions)', () => {
    const split = (count: number, base: number, tuned: number) => ({ count, baseScore: base, tunedScore: tuned, baseCharF1: base, tunedCharF1: tuned, baseExact: 0, tunedExact: count })
    const check: LearnCheck = {
      id: 1, runId: 3, projectId: 1, runName: 'A', checkpointId: null, adapter: { runId: 3, runName: 'A', checkpointId: null, kind: 'adapter', adapterFrom: 'final', step: 12 },
      status: 'completed', perSplit: 3, maxNewTokens: 256, total: 6, done: 6, error: null, summary: { train: split(3, 0.05, 0.97), validation: split(3, 0.04, 0.08) },
      createdAt: '', finishedAt: '',
    }
    const w = mount(LearnCheckSummary, { props: { check }, global: { plugins: [i18n] } })
    expect(w.find('[data-testid="check-summary-train"] [data-testid="score-tuned"]').text()).toBe('97%')
    expect(w.find('[data-testid="check-summary-validation"] [data-testid="score-base"]').text()).toBe('4%')
    const verdict = w.find('[data-testid="check-verdict"]')
    expect(verdict.text()).toContain('它學會了')
    expect(verdict.text()).toContain('背下了訓練題')
    expect(verdict.classes()).toContain('warn')
  })
})
