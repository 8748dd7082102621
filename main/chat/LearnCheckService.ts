// "Did it learn?": a sample of a finished run's training questions and of its held-out validation questions (the
// compiler's split, from the run's summary.json), answered greedily by the base model and by the run's adapter (or
// one of its checkpoints), each answer scored against the dataset's answer (ROUGE-L and F1 on characters,
// similarity.ts). Questions are rendered exactly as in training: the run's frozen snapshot (its rows and system
// prompt) and the run's chat template. Results are kept with the run (learn_checks, learn_check_items), one row per
// question as it is answered, so a cancelled or interrupted check keeps what it did.
//
// Answers are capped at twice the reference answer's tokens plus 16 (and at most maxNewTokens): enough to write the
// reference out in full, without a model that never stops running on for hundreds of tokens per question.
import type { AppErrorInfo, ChatAdapterInfo, LearnCheck, LearnCheckDetail, LearnCheckItem } from '../../preload/contract'
import type { AppContext } from '../context'
import type { LearnCheckRow } from '../db/chatsRepo'
import { loadSnapshot } from '../datasets/snapshots'
import { EngineError } from '../engine/types'
import { AppError, notFound } from '../errors'
import { getModel } from '../models/modelRegistry'
import { chatFormatFor } from '../tokenizer/ChatFormat'
import { loadTokenizer } from '../tokenizer/loadTokenizer'
import { resolveAdapter, runCompileSummary, runTemplate } from './adapters'
import type { ChatEngine } from './ChatEngine'
import { engineErrorInfo } from './ChatEngine'
import { buildChatPrompt } from './chatPrompt'
import { DEFAULT_SAMPLING, engineSampling } from './sampling'
import { charF1, rougeL, scoreUnits } from './similarity'

export const DEFAULT_PER_SPLIT = 10
export const MAX_PER_SPLIT = 200
export const DEFAULT_CHECK_TOKENS = 256

/** `n` items spread evenly over `list` (all of it when it is short), in order. */
export function spreadSample<T>(list: readonly T[], n: number): T[] {
  if (n <= 0) return []
  if (list.length <= n) return [...list]
  const out: T[] = []
  for (let i = 0; i < n; i++) out.push(list[Math.floor((i * list.length) / n)])
  return out
}

interface Question {
  split: 'train' | 'validation'
  rowId: number | string
  question: string
  reference: string
}

export class LearnCheckService {
  private readonly running = new Map<number, { abort: AbortController; done: Promise<void> }>()

  constructor(
    private readonly ctx: AppContext,
    private readonly engine: ChatEngine,
    private readonly log: (msg: string) => void = (m) => console.error(m),
  ) {}

  view(row: LearnCheckRow): LearnCheck {
    return {
      id: row.id,
      runId: row.runId,
      projectId: row.projectId,
      runName: row.runName,
      checkpointId: row.checkpointId,
      adapter: row.adapter as ChatAdapterInfo,
      status: row.status,
      perSplit: row.perSplit,
      maxNewTokens: row.maxNewTokens,
      total: row.total,
      done: row.done,
      error: (row.error as AppErrorInfo | null) ?? null,
      summary: this.ctx.repos().learnChecks.summary(row.id),
      createdAt: row.createdAt,
      finishedAt: row.finishedAt,
    }
  }

  private row(id: number): LearnCheckRow {
    const r = this.ctx.repos().learnChecks.get(id)
    if (!r) throw notFound('Check', id)
    return r
  }

  get(id: number): LearnCheckDetail {
    return { ...this.view(this.row(id)), items: this.ctx.repos().learnChecks.items(id) }
  }

  list(filter: { runId?: number; projectId?: number }): LearnCheck[] {
    const repo = this.ctx.repos().learnChecks
    if (filter.runId !== undefined) return repo.listByRun(filter.runId).map((r) => this.view(r))
    if (filter.projectId !== undefined) return repo.listByProject(filter.projectId).map((r) => this.view(r))
    throw new AppError('INVALID_ARGUMENT', 'Give a runId or a projectId.')
  }

  async delete(id: number): Promise<void> {
    this.row(id)
    const r = this.running.get(id)
    if (r) {
      r.abort.abort()
      await r.done
    }
    this.ctx.repos().learnChecks.delete(id)
  }

  async cancel(id: number): Promise<LearnCheck> {
    this.row(id)
    const r = this.running.get(id)
    if (r) {
      r.abort.abort()
      await r.done
    }
    return this.view(this.row(id))
  }

  /** Marks checks left running by an earlier process as interrupted (their answered questions are kept). */
  recoverInterrupted(): void {
    const repo = this.ctx.repos().learnChecks
    for (const id of repo.runningIds()) {
      if (!this.running.has(id)) repo.finish(id, 'interrupted', { code: 'CANCELLED', message: 'The app was closed during this check. Start it again to answer every question.' })
    }
  }

  async close(): Promise<void> {
    const all = [...this.running.values()]
    for (const r of all) r.abort.abort()
    await Promise.all(all.map((r) => r.done))
  }

  async whenDone(id: number): Promise<LearnCheck> {
    await this.running.get(id)?.done
    return this.view(this.row(id))
  }

  async start(req: { runId: number; checkpointId?: number | null; perSplit?: number; maxNewTokens?: number }): Promise<LearnCheck> {
    const repos = this.ctx.repos()
    const run = repos.runs.get(req.runId)
    if (!run) throw notFound('Training run', req.runId)
    const adapter = resolveAdapter(this.ctx, { runId: run.id, checkpointId: req.checkpointId ?? null })
    const model = getModel(this.ctx, run.modelId!)
    const summary = runCompileSummary(this.ctx, run)
    if (!summary) {
      throw new AppError('NOT_FOUND', `The compiled training set of run #${run.id} is gone (its data folder was deleted), so its training and validation questions are unknown. Train again to check a new run.`)
    }
    if (run.snapshotId === null) throw new AppError('NOT_FOUND', `Run #${run.id} has no dataset snapshot: its questions are unknown.`)
    const snap = loadSnapshot(repos, run.snapshotId)
    const perSplit = Math.min(MAX_PER_SPLIT, Math.max(1, Math.round(req.perSplit ?? DEFAULT_PER_SPLIT)))
    const maxNewTokens = Math.min(4096, Math.max(8, Math.round(req.maxNewTokens ?? DEFAULT_CHECK_TOKENS)))
    const byId = new Map(snap.rows.map((r) => [String(r.id), r]))
    const pick = (split: Question['split'], ids: readonly (number | string)[]): Question[] =>
      spreadSample(
        ids.filter((id) => byId.has(String(id))),
        perSplit,
      ).map((id) => ({ split, rowId: id, question: byId.get(String(id))!.question, reference: byId.get(String(id))!.answer }))
    const questions = [...pick('train', summary.train.rowIds), ...pick('validation', summary.validation.rowIds)]
    if (questions.length === 0) throw new AppError('INVALID_ARGUMENT', `Run #${run.id} has no training or validation questions to ask.`)
    this.engine.checkAvailable()
    const id = repos.learnChecks.create({
      runId: run.id, checkpointId: req.checkpointId ?? null, adapter: adapter.info, adapterPath: adapter.dir, perSplit, maxNewTokens, total: questions.length,
    })
    const abort = new AbortController()
    const entry = { abort, done: Promise.resolve() }
    this.running.set(id, entry)
    entry.done = this.engine
      .run(`Did it learn? (run #${run.id})`, abort.signal, async (job) => {
        const tokenizer = await loadTokenizer(model.path)
        const format = chatFormatFor(tokenizer, runTemplate(this.ctx, run) ?? model.templateChoice)
        const loaded = await job.load(model, adapter)
        const adapterId = await job.adapter(adapter.dir)
        const greedy = { ...DEFAULT_SAMPLING, greedy: true, repetitionPenalty: 1 }
        const answer = async (ids: number[], maxNew: number, which: number | null, stopIds: number[]): Promise<string | null> => {
          const r = await job.generate(ids, engineSampling(greedy, stopIds, loaded.config.vocabSize, 0, maxNew), which, () => undefined)
          if (r.finish === 'cancelled') return null
          const stop = new Set(stopIds)
          return tokenizer.decode(r.tokens.filter((t) => !stop.has(t)), { skipSpecialTokens: true }).trim()
        }
        for (const [position, q] of questions.entries()) {
          if (abort.signal.aborted) break
          const prompt = buildChatPrompt(format, snap.snapshot.systemPrompt, [{ role: 'user', content: q.question }], loaded.config.maxPosition, maxNewTokens)
          const cap = Math.min(maxNewTokens, 2 * tokenizer.encodePlain(q.reference.trim()).length + 16)
          const base = await answer(prompt.ids, cap, null, prompt.stopIds)
          if (base === null) break
          const tuned = await answer(prompt.ids, cap, adapterId, prompt.stopIds)
          if (tuned === null) break
          const ref = scoreUnits(q.reference).join('\u0001')
          const item: LearnCheckItem = repos.learnChecks.addItem(id, {
            position, split: q.split, rowId: q.rowId, question: q.question, reference: q.reference, baseAnswer: base, tunedAnswer: tuned,
            baseScore: rougeL(base, q.reference), tunedScore: rougeL(tuned, q.reference), baseCharF1: charF1(base, q.reference), tunedCharF1: charF1(tuned, q.reference),
            baseExact: scoreUnits(base).join('\u0001') === ref, tunedExact: scoreUnits(tuned).join('\u0001') === ref,
          })
          this.progress(id, [item])
        }
      })
      .then(
        () => repos.learnChecks.finish(id, abort.signal.aborted ? 'cancelled' : 'completed'),
        (err: unknown) => {
          const cancelled = abort.signal.aborted || (err instanceof EngineError && err.code === 'CANCELLED')
          if (!cancelled) this.log(`[chat] check ${id} of run #${run.id} failed: ${(err as Error)?.message ?? String(err)}`)
          repos.learnChecks.finish(id, cancelled ? 'cancelled' : 'failed', cancelled ? null : engineErrorInfo(err))
        },
      )
      .catch((err: unknown) => this.log(`[chat] check ${id}: ${(err as Error)?.stack ?? String(err)}`))
      .finally(() => {
        this.running.delete(id)
        if (repos.learnChecks.get(id)) this.progress(id, [])
      })
    const check = this.view(this.row(id))
    this.ctx.events.emit('learn:progress', { check, items: [] })
    return check
  }

  private progress(id: number, items: LearnCheckItem[]): void {
    this.ctx.events.emit('learn:progress', { check: this.view(this.row(id)), items })
  }
}
