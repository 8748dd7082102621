// Chats of a project: conversations saved in SQLite (chatsRepo), answered by the base model or a run's adapter
// through the engine host (ChatEngine), streamed to the renderer as 'chat:stream' events.
//
// Sending a question saves it and a placeholder answer at once (two in compare mode: 'base' and 'tuned') and returns;
// the answer is written in the background, one engine job at a time. Stop keeps the text so far. Edit-and-resend
// deletes everything after the edited question; regenerate replaces the answer(s) to the last question. An answer
// being written when the app stopped is marked 'interrupted' at the next start.
//
// Compare mode asks both models in turns of a few tokens each (the same resident base weights; one turn without
// and one with the adapter), so both columns stream together. Each turn re-reads the conversation so far (the
// engine has no shared KV cache across calls); turns grow so that each lasts about a third of a second, which keeps
// that extra prompt work small next to the answer itself.
import { randomUUID } from 'node:crypto'
import type {
  AppErrorInfo, ChatAdapterInfo, ChatAdapterRef, ChatDetail, ChatGeneration, ChatMessageEntry, ChatMode, ChatModelOption, ChatOptions, ChatStatusEvent,
  ChatSummary, ChatVariant, SamplingSettings,
} from '../../preload/contract'
import type { AppContext } from '../context'
import type { ChatRow, MessageRow } from '../db/chatsRepo'
import type { EngineSupervisor } from '../engine/host/EngineSupervisor'
import { EngineError, type GenerateResult } from '../engine/types'
import { AppError, notFound } from '../errors'
import { ensureDemoModel } from '../models/demoModel'
import { getModel, type ModelForUse } from '../models/modelRegistry'
import { chatFormatFor, type ChatFormat } from '../tokenizer/ChatFormat'
import { loadTokenizer } from '../tokenizer/loadTokenizer'
import { adapterOptions, resolveAdapter, runTemplate, type ResolvedAdapter } from './adapters'
import { AnswerStream } from './AnswerStream'
import { ChatEngine, engineErrorInfo, type EngineJob } from './ChatEngine'
import { buildChatPrompt, type Turn } from './chatPrompt'
import { DEFAULT_SAMPLING, engineSampling, normalizeSampling, SAMPLING_LIMITS } from './sampling'

export const MAX_QUESTION_CHARS = 20_000
const TITLE_CHARS = 40

type Generation = NonNullable<ChatMessageEntry['generation']>

interface StoredMeta {
  variant: ChatVariant | null
  generation: Generation | null
}

interface ChatSettings {
  mode: ChatMode
  sampling: SamplingSettings
}

interface LiveAnswer {
  messageId: number
  variant: ChatVariant | null
  stream: AnswerStream | null
  /** How the engine ended it (null until it has). */
  finish: GenerateResult['finish'] | null
}

interface LiveGeneration {
  id: string
  chatId: number
  abort: AbortController
  answers: LiveAnswer[]
  done: Promise<void>
}

/** What answers a chat: the model (with its chat format) and the adapter, if any. */
interface Target {
  model: ModelForUse
  adapter: ResolvedAdapter | null
}

export interface ChatServiceOptions {
  /** Milliseconds between two 'chat:stream' events of one answer (default 50). */
  streamIntervalMs?: number
  log?: (msg: string) => void
}

function readMeta(raw: unknown): StoredMeta {
  const m = (raw && typeof raw === 'object' ? raw : {}) as Partial<StoredMeta>
  const variant = m.variant === 'base' || m.variant === 'tuned' ? m.variant : null
  const g = m.generation && typeof m.generation === 'object' ? m.generation : null
  return { variant, generation: g }
}

function readSettings(raw: unknown): ChatSettings {
  const s = (raw && typeof raw === 'object' ? raw : {}) as Partial<Record<keyof ChatSettings, unknown>>
  return { mode: s.mode === 'compare' ? 'compare' : 'chat', sampling: normalizeSampling(s.sampling) }
}

function readAdapterRef(raw: unknown): ChatAdapterRef {
  if (!raw || typeof raw !== 'object') return null
  const r = raw as { runId?: unknown; checkpointId?: unknown }
  if (typeof r.runId !== 'number') return null
  return { runId: r.runId, checkpointId: typeof r.checkpointId === 'number' ? r.checkpointId : null }
}

function titleFrom(question: string): string {
  const line = question.replace(/\s+/g, ' ').trim()
  const chars = Array.from(line)
  return chars.length > TITLE_CHARS ? `${chars.slice(0, TITLE_CHARS).join('')}…` : line
}

function newGeneration(adapter: ChatAdapterInfo | null): Generation {
  return { state: 'generating', finish: null, tokens: 0, promptTokens: 0, seconds: 0, droppedTurns: 0, adapter, device: null, error: null }
}

export class ChatService {
  readonly engine: ChatEngine
  private readonly live = new Map<number, LiveGeneration>()
  private readonly streamIntervalMs: number
  private readonly log: (msg: string) => void
  private closed = false

  constructor(
    private readonly ctx: AppContext,
    supervisor: EngineSupervisor,
    options: ChatServiceOptions = {},
  ) {
    this.engine = new ChatEngine(ctx, supervisor)
    this.streamIntervalMs = options.streamIntervalMs ?? 50
    this.log = options.log ?? ((m) => console.error(m))
  }

  // ---------------------------------------------------------------------------------------------------------
  // Options, list, detail
  // ---------------------------------------------------------------------------------------------------------

  async options(projectId: number): Promise<ChatOptions> {
    const repos = this.ctx.repos()
    const project = repos.projects.get(projectId)
    if (!project) throw notFound('Project', projectId)
    try {
      await ensureDemoModel(this.ctx)
    } catch (err) {
      this.log(`[chat] the demo model could not be created: ${(err as Error).message}`)
    }
    const models: ChatModelOption[] = repos.models
      .list()
      .filter((m) => m.status === 'ready')
      .map((m) => {
        let problem: string | null = null
        try {
          getModel(this.ctx, m.id)
        } catch (err) {
          problem = err instanceof AppError ? err.message : String(err)
        }
        return { id: m.id, name: m.name, source: m.source, problem }
      })
    const adapters = adapterOptions(this.ctx, projectId)
    const usable = (id: number | null | undefined) => id != null && models.some((m) => m.id === id && m.problem === null)
    const latestRunModel = repos.runs.list(projectId).sort((a, b) => b.id - a.id).find((r) => usable(r.modelId))?.modelId ?? null
    const defaultModelId = usable(project.modelId) ? project.modelId : (adapters[0]?.modelId ?? latestRunModel)
    return {
      projectId,
      systemPrompt: project.systemPrompt,
      defaultModelId,
      defaultAdapter: this.defaultAdapter(projectId, defaultModelId),
      models,
      adapters,
      defaults: { ...DEFAULT_SAMPLING },
      limits: { ...SAMPLING_LIMITS },
    }
  }

  private defaultAdapter(projectId: number, modelId: number | null): ChatAdapterRef {
    if (modelId === null) return null
    const o = adapterOptions(this.ctx, projectId).find((a) => a.modelId === modelId)
    return o ? { runId: o.runId, checkpointId: o.checkpointId } : null
  }

  list(projectId: number): ChatSummary[] {
    if (!this.ctx.repos().projects.get(projectId)) throw notFound('Project', projectId)
    return this.ctx.repos().chats.list(projectId).map((r) => this.summary(r))
  }

  get(id: number): ChatDetail {
    const row = this.row(id)
    const live = this.live.get(id)
    const messages = this.ctx
      .repos()
      .chats.messages(id)
      .map((m) => {
        const e = this.entry(m)
        const answer = live?.answers.find((a) => a.messageId === m.id)
        if (answer?.stream && e.generation?.state === 'generating') e.content = answer.stream.text
        return e
      })
    return { ...this.summary(row), messages, generating: live !== undefined }
  }

  private row(id: number): ChatRow {
    const row = this.ctx.repos().chats.get(id)
    if (!row) throw notFound('Chat', id)
    return row
  }

  private summary(r: ChatRow): ChatSummary {
    const settings = readSettings(r.settings)
    const ref = readAdapterRef(r.adapter)
    let adapterInfo: ChatAdapterInfo | null = null
    let adapterMissing = false
    if (ref) {
      try {
        adapterInfo = resolveAdapter(this.ctx, ref).info
      } catch {
        adapterMissing = true
      }
    }
    return {
      id: r.id, projectId: r.projectId, title: r.title, mode: settings.mode, modelId: r.modelId, modelName: r.modelName, adapter: ref, adapterInfo, adapterMissing,
      sampling: settings.sampling, messageCount: r.messageCount, preview: r.preview, createdAt: r.createdAt, updatedAt: r.updatedAt,
    }
  }

  private entry(m: MessageRow): ChatMessageEntry {
    const meta = readMeta(m.meta)
    return { id: m.id, chatId: m.chatId, role: m.role, content: m.content, variant: meta.variant, generation: m.role === 'assistant' ? meta.generation : null, createdAt: m.createdAt }
  }

  // ---------------------------------------------------------------------------------------------------------
  // Create, update, delete
  // ---------------------------------------------------------------------------------------------------------

  async create(req: { projectId: number; mode?: ChatMode; modelId?: number | null; adapter?: ChatAdapterRef; sampling?: Partial<SamplingSettings>; title?: string }): Promise<ChatDetail> {
    const opts = await this.options(req.projectId)
    const mode = req.mode ?? 'chat'
    let modelId = req.modelId === undefined ? opts.defaultModelId : req.modelId
    let adapter: ChatAdapterRef = req.adapter === undefined ? this.defaultAdapter(req.projectId, modelId) : req.adapter
    if (adapter) {
      const resolved = resolveAdapter(this.ctx, adapter)
      if (resolved.run.projectId !== req.projectId) throw new AppError('INVALID_ARGUMENT', `Training run #${resolved.run.id} belongs to another project.`)
      modelId = resolved.run.modelId
    }
    if (modelId !== null) getModel(this.ctx, modelId)
    if (mode === 'compare' && !adapter) {
      throw new AppError('INVALID_ARGUMENT', 'Compare needs a fine-tuned adapter: finish a training run first, then compare it with the base model.', { problem: 'noAdapter' })
    }
    if (mode === 'compare' && modelId === null) adapter = null
    const id = this.ctx.repos().chats.create({
      projectId: req.projectId,
      title: (req.title ?? '').trim().slice(0, 200),
      modelId,
      adapter,
      settings: { mode, sampling: normalizeSampling(req.sampling ?? {}) },
    })
    this.changed(id, req.projectId, false)
    return this.get(id)
  }

  update(req: { id: number; title?: string; modelId?: number | null; adapter?: ChatAdapterRef; sampling?: Partial<SamplingSettings> }): ChatDetail {
    const row = this.row(req.id)
    const settings = readSettings(row.settings)
    let modelId = req.modelId === undefined ? row.modelId : req.modelId
    let adapter: ChatAdapterRef = req.adapter === undefined ? readAdapterRef(row.adapter) : req.adapter
    if (req.adapter) {
      const resolved = resolveAdapter(this.ctx, req.adapter)
      if (resolved.run.projectId !== row.projectId) throw new AppError('INVALID_ARGUMENT', `Training run #${resolved.run.id} belongs to another project.`)
      modelId = resolved.run.modelId
    } else if (req.modelId !== undefined && adapter) {
      // A new model: the adapter of another model no longer applies.
      let adapterModel: number | null = null
      try {
        adapterModel = resolveAdapter(this.ctx, adapter).run.modelId
      } catch {
        adapterModel = null
      }
      if (adapterModel !== modelId) adapter = settings.mode === 'compare' ? this.defaultAdapter(row.projectId, modelId) : null
    }
    if (req.modelId !== undefined && req.modelId !== null) getModel(this.ctx, req.modelId)
    if (settings.mode === 'compare' && adapter === null) {
      throw new AppError('INVALID_ARGUMENT', 'A compare chat needs a fine-tuned adapter of this model. Choose one, or finish a training run with this model first.', { problem: 'noAdapter' })
    }
    const title = req.title === undefined ? undefined : req.title.trim().slice(0, 200)
    const sampling = req.sampling === undefined ? undefined : normalizeSampling(req.sampling, settings.sampling)
    this.ctx.repos().chats.update(req.id, {
      title,
      modelId: modelId !== row.modelId ? modelId : undefined,
      adapter: JSON.stringify(adapter) !== JSON.stringify(readAdapterRef(row.adapter)) ? adapter : undefined,
      settings: sampling ? { mode: settings.mode, sampling } : undefined,
    })
    this.changed(req.id, row.projectId, false)
    return this.get(req.id)
  }

  async delete(id: number): Promise<void> {
    const row = this.row(id)
    const live = this.live.get(id)
    if (live) {
      live.abort.abort()
      await live.done
    }
    this.ctx.repos().chats.delete(id)
    this.changed(id, row.projectId, true)
  }

  private changed(chatId: number, projectId: number, deleted: boolean): void {
    this.ctx.events.emit('chats:changed', { chatId, projectId, deleted })
  }

  // ---------------------------------------------------------------------------------------------------------
  // Questions and answers
  // ---------------------------------------------------------------------------------------------------------

  private prepare(chatId: number): { row: ChatRow; settings: ChatSettings; target: Target } {
    const row = this.row(chatId)
    if (this.live.has(chatId)) {
      throw new AppError('BUSY', 'An answer is still being written in this chat. Stop it first, or wait until it has finished.')
    }
    const settings = readSettings(row.settings)
    if (row.modelId === null) {
      throw new AppError('INVALID_ARGUMENT', 'This chat has no model. Choose a model for it (or pick one for the project on the Models page).', { problem: 'noModel' })
    }
    const model = getModel(this.ctx, row.modelId)
    const ref = readAdapterRef(row.adapter)
    const adapter = ref ? resolveAdapter(this.ctx, ref) : null
    if (settings.mode === 'compare' && !adapter) {
      throw new AppError('INVALID_ARGUMENT', 'Compare needs a fine-tuned adapter: choose one for this chat.', { problem: 'noAdapter' })
    }
    if (adapter && adapter.run.modelId !== model.id) {
      throw new AppError('INVALID_ARGUMENT', `The adapter of training run #${adapter.run.id} was made for another model. Choose the model it was trained on, or another adapter.`)
    }
    this.engine.checkAvailable()
    return { row, settings, target: { model, adapter } }
  }

  private checkQuestion(content: string): string {
    const text = content.trim()
    if (!text) throw new AppError('INVALID_ARGUMENT', 'The question is empty. Type a question first.')
    if (text.length > MAX_QUESTION_CHARS) throw new AppError('INVALID_ARGUMENT', `The question has ${text.length} characters; the limit is ${MAX_QUESTION_CHARS}. Shorten it.`)
    return text
  }

  private placeholders(chatId: number, settings: ChatSettings, target: Target): { messageId: number; variant: ChatVariant | null }[] {
    const variants: (ChatVariant | null)[] = settings.mode === 'compare' ? ['base', 'tuned'] : [null]
    return variants.map((variant) => {
      const adapter = variant === 'base' ? null : (target.adapter?.info ?? null)
      const meta: StoredMeta = { variant, generation: newGeneration(adapter) }
      return { messageId: this.ctx.repos().chats.addMessage({ chatId, role: 'assistant', content: '', meta }), variant }
    })
  }

  send(req: { chatId: number; content: string }): ChatGeneration {
    const content = this.checkQuestion(req.content)
    const { row, settings, target } = this.prepare(req.chatId)
    const chats = this.ctx.repos().chats
    const answers = chats.transaction(() => {
      chats.addMessage({ chatId: row.id, role: 'user', content, meta: {} })
      if (!row.title) chats.update(row.id, { title: titleFrom(content) })
      else chats.touch(row.id)
      return this.placeholders(row.id, settings, target)
    })
    return this.launch(row, settings, target, answers)
  }

  edit(req: { chatId: number; messageId: number; content: string }): ChatGeneration {
    const content = this.checkQuestion(req.content)
    const { row, settings, target } = this.prepare(req.chatId)
    const chats = this.ctx.repos().chats
    const msg = chats.message(req.messageId)
    if (!msg || msg.chatId !== row.id) throw notFound('Message', req.messageId)
    if (msg.role !== 'user') throw new AppError('INVALID_ARGUMENT', 'Only your own questions can be edited. To get another answer, use regenerate.')
    const answers = chats.transaction(() => {
      chats.deleteMessagesFrom(row.id, msg.id + 1)
      chats.updateMessage(msg.id, { content })
      chats.touch(row.id)
      return this.placeholders(row.id, settings, target)
    })
    return this.launch(row, settings, target, answers)
  }

  regenerate(req: { chatId: number }): ChatGeneration {
    const { row, settings, target } = this.prepare(req.chatId)
    const chats = this.ctx.repos().chats
    const lastQuestion = [...chats.messages(row.id)].reverse().find((m) => m.role === 'user')
    if (!lastQuestion) throw new AppError('INVALID_ARGUMENT', 'There is no question to answer again yet. Send one first.')
    const answers = chats.transaction(() => {
      chats.deleteMessagesFrom(row.id, lastQuestion.id + 1)
      chats.touch(row.id)
      return this.placeholders(row.id, settings, target)
    })
    return this.launch(row, settings, target, answers)
  }

  async stop(chatId: number): Promise<void> {
    this.row(chatId)
    const live = this.live.get(chatId)
    if (!live) return
    live.abort.abort()
    await live.done
  }

  /** Marks answers left 'generating' by an earlier process as interrupted (their text so far was not kept). */
  recoverInterrupted(): void {
    const chats = this.ctx.repos().chats
    for (const m of chats.generatingMessages()) {
      if ([...this.live.values()].some((g) => g.answers.some((a) => a.messageId === m.id))) continue
      const meta = readMeta(m.meta)
      const g = meta.generation ?? newGeneration(null)
      chats.updateMessage(m.id, {
        meta: { ...meta, generation: { ...g, state: 'interrupted', error: { code: 'CANCELLED', message: 'The app was closed while this answer was being written. Regenerate it.' } } },
      })
    }
  }

  async close(): Promise<void> {
    this.closed = true
    const all = [...this.live.values()]
    for (const g of all) g.abort.abort()
    await Promise.all(all.map((g) => g.done))
  }

  /** Waits until the chat's answer (if any) is saved. */
  async whenIdle(chatId: number): Promise<void> {
    await this.live.get(chatId)?.done
  }

  private status(g: LiveGeneration, state: ChatStatusEvent['state'], extra: Partial<ChatStatusEvent> = {}): void {
    this.ctx.events.emit('chat:status', { chatId: g.chatId, generationId: g.id, state, fraction: null, device: null, error: null, messages: null, ...extra })
  }

  private launch(row: ChatRow, settings: ChatSettings, target: Target, answers: { messageId: number; variant: ChatVariant | null }[]): ChatGeneration {
    if (this.closed) throw new AppError('CANCELLED', 'The app is closing.')
    const g: LiveGeneration = {
      id: randomUUID(),
      chatId: row.id,
      abort: new AbortController(),
      answers: answers.map((a) => ({ ...a, stream: null, finish: null })),
      done: Promise.resolve(),
    }
    this.live.set(row.id, g)
    const label = row.title || titleFrom(this.ctx.repos().chats.messages(row.id).find((m) => m.role === 'user')?.content ?? '') || `#${row.id}`
    if (this.engine.busy) this.status(g, 'waiting')
    const started = Date.now()
    let device: string | null = null
    g.done = this.engine
      .run(label, g.abort.signal, (job) => this.answer(job, g, settings, target, (d) => (device = d)), () => this.status(g, 'loading', { fraction: 0 }))
      .then(
        () => this.save(g, null, started, device),
        (err: unknown) => this.save(g, err, started, device),
      )
      .catch((err: unknown) => this.log(`[chat] saving the answer of chat ${row.id} failed: ${(err as Error)?.stack ?? String(err)}`))
      .finally(() => {
        if (this.live.get(row.id) === g) this.live.delete(row.id)
      })
    this.changed(row.id, row.projectId, false)
    return { generationId: g.id, chat: this.get(row.id) }
  }

  private turnsFor(chatId: number, variant: ChatVariant | null, upTo: number): Turn[] {
    // Complete question/answer pairs before the answer being written, then the last question. A question whose
    // answer failed (empty) is left out: the user asked again.
    const msgs = this.ctx.repos().chats.messages(chatId).filter((m) => m.id < upTo)
    const turns: Turn[] = []
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i]
      if (m.role !== 'user') continue
      const answer = msgs.slice(i + 1).find((x) => x.role === 'user' || (x.role === 'assistant' && readMeta(x.meta).variant === variant))
      const isLast = !msgs.slice(i + 1).some((x) => x.role === 'user')
      if (isLast) {
        turns.push({ role: 'user', content: m.content })
        break
      }
      if (answer && answer.role === 'assistant' && answer.content.trim()) {
        turns.push({ role: 'user', content: m.content }, { role: 'assistant', content: answer.content })
      }
    }
    return turns
  }

  private async format(target: Target): Promise<ChatFormat> {
    const tokenizer = await loadTokenizer(target.model.path)
    // The run's own template when answering with its adapter: exactly what it was trained with.
    const choice = (target.adapter ? runTemplate(this.ctx, target.adapter.run) : null) ?? target.model.templateChoice
    return chatFormatFor(tokenizer, choice)
  }

  private async answer(job: EngineJob, g: LiveGeneration, settings: ChatSettings, target: Target, onDevice: (d: string) => void): Promise<void> {
    const systemPrompt = this.ctx.repos().projects.get(this.row(g.chatId).projectId)?.systemPrompt ?? ''
    const format = await this.format(target)
    const loaded = await job.load(target.model, target.adapter, (f) => this.status(g, 'loading', { fraction: f }))
    onDevice(loaded.device)
    const needsAdapter = g.answers.some((a) => a.variant !== 'base') && target.adapter !== null
    let adapterId = needsAdapter ? await job.adapter(target.adapter!.dir) : null
    if (job.signal.aborted) return
    const s = settings.sampling
    const contextLength = loaded.config.maxPosition
    const seed = Math.floor(Math.random() * 2 ** 31)
    const plans = g.answers.map((a) => {
      const prompt = buildChatPrompt(format, systemPrompt, this.turnsFor(g.chatId, a.variant, a.messageId), contextLength, s.maxNewTokens)
      a.stream = new AnswerStream(a.messageId, a.variant, format.tokenizer, prompt.stopIds, (e) => this.ctx.events.emit('chat:stream', { chatId: g.chatId, generationId: g.id, ...e }), this.streamIntervalMs)
      this.patchGeneration(a.messageId, { promptTokens: prompt.ids.length, droppedTurns: prompt.droppedTurns, device: loaded.device })
      return { answer: a, prompt, adapterId: a.variant === 'base' || !target.adapter ? null : adapterId, generated: [] as number[], finish: null as LiveAnswer['finish'] }
    })
    this.status(g, 'generating', { device: loaded.device })

    const generate = async (ids: number[], maxNew: number, plan: (typeof plans)[number], chunkSeed: number): Promise<GenerateResult> => {
      const sampling = engineSampling(s, plan.prompt.stopIds, loaded.config.vocabSize, chunkSeed, maxNew)
      try {
        return await job.generate(ids, sampling, plan.adapterId, (id) => plan.answer.stream!.push(id))
      } catch (err) {
        // The host freed our adapters (another model was loaded meanwhile): attach again once.
        if (err instanceof EngineError && err.code === 'DISPOSED' && plan.adapterId !== null) {
          this.engine.forgetAdapters()
          await job.load(target.model, target.adapter)
          adapterId = await job.adapter(target.adapter!.dir)
          for (const p of plans) if (p.adapterId !== null) p.adapterId = adapterId
          return job.generate(ids, sampling, plan.adapterId, (id) => plan.answer.stream!.push(id))
        }
        throw err
      }
    }

    if (plans.length === 1) {
      const p = plans[0]
      const r = await generate(p.prompt.ids, s.maxNewTokens, p, seed)
      p.answer.finish = r.finish
      return
    }

    // Compare: turns of `chunk` tokens, alternating between the answers, until each has stopped.
    let chunk = 4
    let round = 0
    while (plans.some((p) => p.finish === null)) {
      for (const [i, p] of plans.entries()) {
        if (p.finish !== null) continue
        if (job.signal.aborted) {
          p.finish = 'cancelled'
          continue
        }
        const ids = [...p.prompt.ids, ...p.generated]
        const n = Math.min(chunk, s.maxNewTokens - p.generated.length, contextLength - ids.length)
        if (n <= 0) {
          p.finish = 'length'
          continue
        }
        const t0 = performance.now()
        const r = await generate(ids, n, p, (seed + round * 7919 + i) % 2 ** 31)
        const ms = performance.now() - t0
        p.generated.push(...r.tokens)
        if (r.finish === 'stop' || r.finish === 'cancelled') p.finish = r.finish
        else if (p.generated.length >= s.maxNewTokens || p.prompt.ids.length + p.generated.length >= contextLength) p.finish = 'length'
        p.answer.finish = p.finish
        if (r.tokens.length > 0 && ms > 0) chunk = Math.max(4, Math.min(64, Math.round((r.tokens.length * 330) / ms)))
      }
      round++
    }
  }

  private patchGeneration(messageId: number, patch: Partial<Generation>): void {
    const chats = this.ctx.repos().chats
    const m = chats.message(messageId)
    if (!m) return
    const meta = readMeta(m.meta)
    chats.updateMessage(messageId, { meta: { ...meta, generation: { ...(meta.generation ?? newGeneration(null)), ...patch } } })
  }

  /** Saves every answer of the generation (final text, how it ended) and tells the renderer. */
  private save(g: LiveGeneration, err: unknown, started: number, device: string | null): void {
    const chats = this.ctx.repos().chats
    const cancelled = g.abort.signal.aborted || (err instanceof EngineError && err.code === 'CANCELLED')
    const error: AppErrorInfo | null = err && !cancelled ? engineErrorInfo(err) : null
    if (err && !cancelled) this.log(`[chat] chat ${g.chatId}: ${error?.message}`)
    const saved: ChatMessageEntry[] = []
    for (const a of g.answers) {
      const m = chats.message(a.messageId)
      if (!m) continue // deleted meanwhile (the chat was deleted)
      const text = a.stream ? a.stream.finish() : ''
      const ids = a.stream?.ids ?? []
      // An answer that ended on its own before a stop or a failure elsewhere (compare) stays done.
      const ended = a.finish === 'stop' || a.finish === 'length'
      const state: Generation['state'] = ended ? 'done' : error ? 'failed' : cancelled || a.finish === 'cancelled' ? 'stopped' : 'done'
      const finish: Generation['finish'] = ended ? a.finish : state === 'stopped' ? 'cancelled' : state === 'failed' ? null : 'length'
      const meta = readMeta(m.meta)
      const gen: Generation = {
        ...(meta.generation ?? newGeneration(null)),
        state,
        finish,
        tokens: ids.length,
        seconds: (Date.now() - started) / 1000,
        device: device ?? meta.generation?.device ?? null,
        error,
      }
      chats.updateMessage(a.messageId, { content: text, meta: { ...meta, generation: gen } })
      saved.push(this.entry(chats.message(a.messageId)!))
    }
    if (this.live.get(g.chatId) === g) this.live.delete(g.chatId)
    const projectId = chats.get(g.chatId)?.projectId
    this.status(g, cancelled ? 'stopped' : error ? 'failed' : 'done', { error, messages: saved, device })
    if (projectId !== undefined) this.changed(g.chatId, projectId, false)
  }
}
