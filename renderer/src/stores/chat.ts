// Chat page state: the project's chat options (models, adapters, defaults), its conversations, the open one with
// its streamed answers, the engine's status (who holds the GPU), and the "Did it learn?" checks.
//
// Streamed text arrives as 'chat:stream' events with an offset; text goes at that offset (a correction at the end
// may rewrite a tail). Events that arrive before the request that started their answer has returned are kept and
// replayed, so nothing is lost however fast the model is. A gap (an event past the end of the text, e.g. after a
// reconnect) reloads the conversation, which carries the text written so far.
import { defineStore } from 'pinia'
import { computed, ref, shallowRef } from 'vue'
import type {
  ChatAdapterInfo, ChatAdapterOption, ChatAdapterRef, ChatDetail, ChatMessageEntry, ChatMode, ChatOptions, ChatStatusEvent, ChatStreamEvent, ChatSummary,
  EngineStatus, LearnCheck, LearnCheckDetail, LearnCheckItem, SamplingSettings,
} from '../../../preload/contract'
import { api } from '../api'

export type ChatTab = ChatMode | 'check'

export interface GenerationState {
  id: string
  state: ChatStatusEvent['state']
  fraction: number | null
  device: string | null
}

/** Applies one streamed piece to a text: at `offset` (a correction rewrites the tail). Null = a gap (reload). */
export function applyPiece(text: string, offset: number, piece: string): string | null {
  if (offset > text.length) return null
  return text.slice(0, offset) + piece
}

export function sameAdapter(a: ChatAdapterRef | ChatAdapterInfo | null | undefined, b: ChatAdapterRef | ChatAdapterInfo | null | undefined): boolean {
  if (!a || !b) return !a && !b
  return a.runId === b.runId && (a.checkpointId ?? null) === (b.checkpointId ?? null)
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

export const useChatStore = defineStore('chat', () => {
  const projectId = ref<number | null>(null)
  const tab = ref<ChatTab>('chat')
  const options = ref<ChatOptions | null>(null)
  const loaded = ref(false)
  const loadError = ref<string | null>(null)
  const chats = ref<ChatSummary[]>([])
  const current = ref<ChatDetail | null>(null)
  const generation = ref<GenerationState | null>(null)
  const lastError = ref<string | null>(null)
  const engine = shallowRef<EngineStatus | null>(null)

  // "Did it learn?"
  const checks = ref<LearnCheck[]>([])
  const check = ref<LearnCheckDetail | null>(null)
  const checkError = ref<string | null>(null)

  /** Events for answers not on screen yet (their request has not returned): replayed when it has. */
  type EarlyEvent = { kind: 'stream'; e: ChatStreamEvent } | { kind: 'status'; e: ChatStatusEvent }
  const early = new Map<string, EarlyEvent[]>()

  /** Requests that start an answer and have not returned yet. */
  let inFlight = 0
  /** Conversation changes (model, adapter, sampling, title) not yet saved by main, in the order they were made. An
   *  answer waits for them, so it uses what was just set: in browser mode each request has its own HTTP connection, and
   *  a send made right after changing the maximum length could otherwise reach main first (an e2e test caught it). */
  let saving: Promise<void> = Promise.resolve()

  function keep(generationId: string, ev: EarlyEvent): void {
    let list = early.get(generationId)
    if (!list) {
      early.set(generationId, (list = []))
      if (early.size > 20) early.delete(early.keys().next().value as string)
    }
    list.push(ev)
  }

  const listed = computed(() => chats.value.filter((c) => c.mode === (tab.value === 'compare' ? 'compare' : 'chat')))
  const generating = computed(() => current.value?.generating === true || (generation.value !== null && !['done', 'stopped', 'failed'].includes(generation.value.state)))
  /** The training run holding the engine (the chat cannot answer meanwhile), or null; and its name. */
  const trainingHolder = computed(() => (engine.value?.holder?.kind === 'training' ? engine.value.holder.runId : null))
  const trainingRunName = ref<string | null>(null)

  async function nameTrainingRun(): Promise<void> {
    const id = trainingHolder.value
    trainingRunName.value = null
    if (id === null) return
    try {
      const run = await api['runs:get']({ id })
      if (trainingHolder.value === id) trainingRunName.value = run.name || null
    } catch {
      trainingRunName.value = null
    }
  }
  const hasAdapters = computed(() => (options.value?.adapters.length ?? 0) > 0)
  const usableModels = computed(() => (options.value?.models ?? []).filter((m) => m.problem === null))

  function adapterOption(ref: ChatAdapterRef): ChatAdapterOption | null {
    if (!ref) return null
    return options.value?.adapters.find((a) => sameAdapter(a, ref)) ?? null
  }

  async function loadOptions(): Promise<void> {
    if (projectId.value === null) return
    options.value = await api['chat:options']({ projectId: projectId.value })
  }

  async function refreshList(): Promise<void> {
    if (projectId.value === null) return
    chats.value = await api['chats:list']({ projectId: projectId.value })
  }

  /** Opens the page for a project: options, conversations, the engine status; the newest conversation of the tab. */
  async function open(id: number): Promise<void> {
    const changed = projectId.value !== id
    projectId.value = id
    loadError.value = null
    try {
      await Promise.all([loadOptions(), refreshList(), api['engine:status']().then((s) => (engine.value = s))])
      void nameTrainingRun()
      loaded.value = true
      if (changed || (current.value && current.value.projectId !== id)) {
        current.value = null
        check.value = null
      }
      if (tab.value !== 'check' && !current.value && listed.value.length > 0) await select(listed.value[0].id)
      else if (current.value) await select(current.value.id)
      if (tab.value === 'check') await loadChecks()
    } catch (err) {
      loadError.value = message(err)
    }
  }

  async function setTab(t: ChatTab): Promise<void> {
    tab.value = t
    lastError.value = null
    if (t === 'check') {
      await loadChecks()
      return
    }
    if (current.value?.mode !== t) current.value = null
    if (!current.value && listed.value.length > 0) await select(listed.value[0].id)
  }

  async function select(id: number): Promise<void> {
    lastError.value = null
    const detail = await api['chats:get']({ id })
    current.value = detail
    generation.value = null
  }

  /** A new conversation of the tab's mode with the default model and adapter (and the given changes). */
  async function newChat(patch: { modelId?: number | null; adapter?: ChatAdapterRef; sampling?: Partial<SamplingSettings> } = {}): Promise<ChatDetail | null> {
    if (projectId.value === null) return null
    lastError.value = null
    try {
      const mode: ChatMode = tab.value === 'compare' ? 'compare' : 'chat'
      if (current.value && current.value.mode === mode && current.value.messages.length === 0 && Object.keys(patch).length === 0) return current.value
      const base = current.value && current.value.mode === mode ? { modelId: current.value.modelId, adapter: current.value.adapter, sampling: current.value.sampling } : {}
      const detail = await api['chats:create']({ projectId: projectId.value, mode, ...base, ...patch })
      current.value = detail
      generation.value = null
      await refreshList()
      return detail
    } catch (err) {
      lastError.value = message(err)
      return null
    }
  }

  function startGeneration(id: string, detail: ChatDetail): void {
    current.value = detail
    generation.value = { id, state: 'waiting', fraction: null, device: null }
    const buffered = early.get(id) ?? []
    early.delete(id)
    for (const ev of buffered) {
      if (ev.kind === 'stream') onStream(ev.e)
      else onStatus(ev.e)
    }
  }

  async function send(content: string): Promise<boolean> {
    lastError.value = null
    await saving
    let chat = current.value
    if (!chat) chat = await newChat()
    if (!chat) return false
    try {
      inFlight++
      const r = await api['chat:send']({ chatId: chat.id, content }).finally(() => inFlight--)
      startGeneration(r.generationId, r.chat)
      void refreshList()
      return true
    } catch (err) {
      lastError.value = message(err)
      return false
    }
  }

  async function edit(messageId: number, content: string): Promise<boolean> {
    await saving
    if (!current.value) return false
    lastError.value = null
    try {
      inFlight++
      const r = await api['chat:edit']({ chatId: current.value.id, messageId, content }).finally(() => inFlight--)
      startGeneration(r.generationId, r.chat)
      return true
    } catch (err) {
      lastError.value = message(err)
      return false
    }
  }

  async function regenerate(): Promise<void> {
    await saving
    if (!current.value) return
    lastError.value = null
    try {
      inFlight++
      const r = await api['chat:regenerate']({ chatId: current.value.id }).finally(() => inFlight--)
      startGeneration(r.generationId, r.chat)
    } catch (err) {
      lastError.value = message(err)
    }
  }

  async function stop(): Promise<void> {
    if (!current.value) return
    try {
      await api['chat:stop']({ chatId: current.value.id })
    } catch (err) {
      lastError.value = message(err)
    }
  }

  /** What update changes in a conversation. */
  type ChatPatch = { modelId?: number | null; adapter?: ChatAdapterRef; sampling?: Partial<SamplingSettings>; title?: string }

  /** Switches the open conversation's model, adapter or sampling (the base model stays loaded in the engine). */
  function update(patch: ChatPatch, id = current.value?.id): Promise<void> {
    const run = saving.then(() => save(patch, id))
    saving = run
    return run
  }

  async function save(patch: ChatPatch, id: number | undefined): Promise<void> {
    if (id === undefined) return
    lastError.value = null
    try {
      const detail = await api['chats:update']({ id, ...patch })
      if (current.value?.id === id) current.value = { ...detail, messages: current.value.messages.length >= detail.messages.length ? current.value.messages : detail.messages }
      await refreshList()
    } catch (err) {
      lastError.value = message(err)
    }
  }

  async function remove(id: number): Promise<void> {
    lastError.value = null
    try {
      await api['chats:delete']({ id })
      if (current.value?.id === id) current.value = null
      await refreshList()
      if (!current.value && listed.value.length > 0) await select(listed.value[0].id)
    } catch (err) {
      lastError.value = message(err)
    }
  }

  function findMessage(id: number): ChatMessageEntry | undefined {
    return current.value?.messages.find((m) => m.id === id)
  }

  function onStream(e: ChatStreamEvent): void {
    if (current.value?.id !== e.chatId) return
    const m = findMessage(e.messageId)
    if (!m || (inFlight > 0 && e.generationId !== generation.value?.id)) {
      keep(e.generationId, { kind: 'stream', e })
      return
    }
    const next = applyPiece(m.content, e.offset, e.text)
    if (next === null) {
      void select(e.chatId)
      return
    }
    m.content = next
    if (m.generation) m.generation.tokens = e.tokens
  }

  function onStatus(e: ChatStatusEvent): void {
    if (current.value?.id !== e.chatId) return
    if ((inFlight > 0 && e.generationId !== generation.value?.id) || e.messages?.some((saved) => !findMessage(saved.id))) {
      keep(e.generationId, { kind: 'status', e })
      return
    }
    generation.value = { id: e.generationId, state: e.state, fraction: e.fraction, device: e.device ?? generation.value?.device ?? null }
    if (e.messages) {
      for (const saved of e.messages) {
        const i = current.value.messages.findIndex((m) => m.id === saved.id)
        if (i >= 0) current.value.messages[i] = saved
      }
      current.value.generating = false
      if (e.error && e.error.code !== 'CANCELLED') lastError.value = e.error.message
      void refreshList()
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // "Did it learn?"
  // ---------------------------------------------------------------------------------------------------------

  const checkRunning = computed(() => check.value?.status === 'running')

  async function loadChecks(): Promise<void> {
    if (projectId.value === null) return
    checkError.value = null
    try {
      checks.value = await api['learn:list']({ projectId: projectId.value })
      if (check.value && !checks.value.some((c) => c.id === check.value!.id)) check.value = null
      if (!check.value && checks.value.length > 0) await openCheck(checks.value[0].id)
    } catch (err) {
      checkError.value = message(err)
    }
  }

  async function openCheck(id: number): Promise<void> {
    check.value = await api['learn:get']({ id })
  }

  async function startCheck(ref: NonNullable<ChatAdapterRef>, perSplit: number): Promise<void> {
    checkError.value = null
    try {
      const c = await api['learn:start']({ runId: ref.runId, checkpointId: ref.checkpointId, perSplit })
      check.value = { ...c, items: [] }
      checks.value = [c, ...checks.value.filter((x) => x.id !== c.id)]
    } catch (err) {
      checkError.value = message(err)
    }
  }

  async function cancelCheck(): Promise<void> {
    if (!check.value) return
    try {
      const c = await api['learn:cancel']({ id: check.value.id })
      onCheckProgress(c, [])
    } catch (err) {
      checkError.value = message(err)
    }
  }

  async function deleteCheck(id: number): Promise<void> {
    try {
      await api['learn:delete']({ id })
      checks.value = checks.value.filter((c) => c.id !== id)
      if (check.value?.id === id) check.value = null
      if (!check.value && checks.value.length > 0) await openCheck(checks.value[0].id)
    } catch (err) {
      checkError.value = message(err)
    }
  }

  function onCheckProgress(c: LearnCheck, items: LearnCheckItem[]): void {
    if (c.projectId !== projectId.value) return
    const i = checks.value.findIndex((x) => x.id === c.id)
    if (i >= 0) checks.value[i] = c
    else checks.value = [c, ...checks.value]
    if (check.value?.id === c.id) {
      const have = new Set(check.value.items.map((x) => x.id))
      check.value = { ...c, items: [...check.value.items, ...items.filter((x) => !have.has(x.id))].sort((a, b) => a.position - b.position) }
    }
  }

  api.on('chat:stream', onStream)
  api.on('chat:status', onStatus)
  api.on('chats:changed', (e) => {
    if (e.projectId === projectId.value) void refreshList()
  })
  api.on('engine:status', (s) => {
    const before = trainingHolder.value
    engine.value = s
    if (trainingHolder.value !== before) void nameTrainingRun()
  })
  api.on('runs:changed', (e) => {
    if (e.projectId === projectId.value && (e.status === null || ['completed', 'stopped', 'failed', 'interrupted'].includes(e.status) || e.reason === 'checkpoint')) {
      void loadOptions()
        .then(adoptDefaultAdapter)
        .catch(() => undefined)
    }
  })

  /** A run just finished: an empty conversation on the base model switches to its adapter (nothing asked yet). */
  async function adoptDefaultAdapter(): Promise<void> {
    const c = current.value
    const d = options.value?.defaultAdapter
    if (!c || !d || c.mode !== 'chat' || c.messages.length > 0 || c.adapter !== null) return
    if (adapterOption(d)?.modelId !== c.modelId) return
    await update({ adapter: d })
  }
  api.on('learn:progress', (e) => onCheckProgress(e.check, e.items))

  return {
    projectId, tab, options, loaded, loadError, chats, listed, current, generation, generating, lastError, engine, trainingHolder, trainingRunName, hasAdapters,
    usableModels, adapterOption, checks, check, checkError, checkRunning,
    open, setTab, select, newChat, send, edit, regenerate, stop, update, remove, loadOptions, refreshList, loadChecks, openCheck, startCheck, cancelCheck, deleteCheck,
    onStream, onStatus,
  }
})

type Translate = (key: string, named?: Record<string, unknown>) => string

/** "Run A：匯出的模型（驗證最佳，第 120 步）" for an adapter option or the adapter kept with an answer. */
export function adapterText(t: Translate, a: ChatAdapterInfo | ChatAdapterOption): string {
  const run = a.runName || t('chat.runName', { id: a.runId })
  const from = a.adapterFrom === 'best' ? t('chat.fromBest') : t('chat.fromFinal')
  const epoch = 'epoch' in a ? Math.round(a.epoch) : null
  const kind = a.kind === 'epoch' && epoch === null ? 'step' : a.kind
  return t('chat.adapterLabel', { run, kind: t(`chat.adapterKind.${kind}`, { step: a.step, from, epoch }) })
}
