// The run supervisor: one training run at a time through the engine host, its lifecycle in SQLite and its files.
//
//   queued -> preparing (freeze the snapshot, compile train/val sets into the run folder)
//          -> loading (the model, in the engine host) -> training <-> evaluating
//          -> completed | stopped | failed | interrupted
//
// The loop asks the host for k steps at a time, up to the next "boundary" (evaluation, checkpoint, end). Steps
// stream back as events; they are written in batched transactions and sent to the UI as throttled
// 'training:progress'. At a boundary: evaluate (validation loss; a better one rewrites checkpoints/best),
// checkpoint (every N steps and at each epoch end; the last K kept, the best always), early stopping.
// Each boundary action is skipped when already recorded, so a resume from a checkpoint at step S redoes exactly
// what was missing and the numbers after it equal an uninterrupted run's.
//
// Stop is graceful: the step in progress ends (the host cancels between steps), a checkpoint is written, the best
// (or final) adapter is exported. A dead engine host marks the run interrupted; an app that died leaves an active
// status behind, which the next start-up turns into 'interrupted' with a resume offer.
import { existsSync } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import type {
  AppErrorInfo, EvalPoint, MetricPoint, Run, RunComparison, RunDetail, RunMetrics, RunStatus, RunStopReason, TrainingEstimate, TrainingPresets,
  TrainingProgress, TrainingRequest, TrainingSettings,
} from '../../preload/contract'
import type { AppContext } from '../context'
import { compileDataset, type CompileSummary } from '../datasets/compiler/compileDataset'
import { createSnapshot, loadSnapshot } from '../datasets/snapshots'
import type { TrainMetricRow } from '../db/runMetricsRepo'
import type { RunRow } from '../db/runsRepo'
import type { EngineSupervisor, GpuLease } from '../engine/host/EngineSupervisor'
import { HostExitedError, type StepEvent, type TrainerInfo } from '../engine/host/protocol'
import { EngineError } from '../engine/types'
import { AppError, notFound } from '../errors'
import { getModel, type ModelForUse } from '../models/modelRegistry'
import { compileOptions, loadParams, trainConfig } from './engineConfig'
import { estimateTraining } from './estimate'
import { presetById, trainingPresets } from './presets'
import { adapterExists, checkpointDir, checkpointStep, runLayout, writeJsonAtomic, type RunLayout } from './runFiles'
import { ACTIVE_STATUSES, emptySummary, RESUMABLE_STATUSES, runDetail, runView, storedSettings, storedSummary, type StoredSettings, type StoredSummary } from './runView'
import { computeVerdict } from './verdict'

export interface TrainingServiceOptions {
  /** Minimum time between two 'training:progress' events of a run (default 250 ms). */
  progressIntervalMs?: number
  /** Step metrics are written when this many are buffered or flushIntervalMs passed (defaults 64, 1000 ms). */
  flushRows?: number
  flushIntervalMs?: number
  /** How long close() waits for a graceful stop (checkpoint) before killing the engine (default 60 s). */
  closeTimeoutMs?: number
  log?: (msg: string) => void
}

type StopKind = 'user' | 'shutdown'

interface ActiveRun {
  runId: number
  projectId: number
  abort: AbortController
  stop: StopKind | null
  stepAbort: AbortController | null
  done: Promise<void>
  stage: TrainingProgress['stage']
  // progress
  buffer: TrainMetricRow[]
  unsentPoints: MetricPoint[]
  unsentEvals: EvalPoint[]
  lastFlush: number
  lastEmit: number
  step: number
  totalSteps: number
  stepsPerEpoch: number
  totalEpochs: number
  last: StepEvent | null
  valLoss: number | null
  bestValLoss: number | null
  sessionStart: number
  sessionStartStep: number
  secondsPerStep: number | null
  evalSeconds: number
}

/** A checkpoint that could not be written: the run fails cleanly, the previous checkpoint stays. */
class CheckpointWriteError extends Error {
  constructor(readonly dir: string, readonly step: number, readonly previousStep: number | null, override readonly cause: unknown) {
    super(
      `Could not save the checkpoint of step ${step} to ${dir}: ${(cause as Error).message}. ` +
        (previousStep !== null ? `The previous checkpoint (step ${previousStep}) is intact; ` : 'No earlier checkpoint exists; ') +
        'free some disk space or fix the folder\'s permissions, then resume the run.',
    )
    this.name = 'CheckpointWriteError'
  }
}

const processAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

const isCancel = (err: unknown) => (err instanceof EngineError || err instanceof AppError) && err.code === 'CANCELLED'

export class TrainingService {
  private active: ActiveRun | null = null
  private readonly finished = new Map<number, Array<() => void>>()
  private closing = false
  /** Transactions that wrote step metrics (for tests and diagnostics). */
  metricsFlushes = 0
  /** Runs this service found interrupted at start-up (left active by a process that died). */
  recovered: number[] = []

  constructor(private readonly ctx: AppContext, readonly engine: EngineSupervisor, private readonly opts: TrainingServiceOptions = {}) {}

  // ---------------------------------------------------------------------------------------------------------
  // Queries
  // ---------------------------------------------------------------------------------------------------------

  presets(): TrainingPresets {
    return trainingPresets()
  }

  list(projectId?: number): Run[] {
    const repos = this.ctx.repos()
    return repos.runs.list(projectId).map((r) => runView(repos, r))
  }

  get(id: number): RunDetail {
    return runDetail(this.ctx.repos(), this.row(id))
  }

  metrics(runId: number, maxPoints = 2000, afterStep = 0): RunMetrics {
    this.row(runId)
    const repos = this.ctx.repos()
    const t = repos.runMetrics.train(runId, maxPoints, afterStep)
    return { runId, train: t.points, eval: repos.runMetrics.evals(runId, afterStep), totalTrainPoints: t.total, downsampled: t.downsampled, lastStep: t.lastStep }
  }

  compare(ids: number[], maxPoints = 1000): RunComparison {
    const runs = ids.map((id) => this.get(id))
    const keys = new Set<string>()
    for (const r of runs) for (const k of Object.keys(r.settings ?? {})) keys.add(k)
    const settingsDiff: RunComparison['settingsDiff'] = []
    for (const k of [...keys].sort()) {
      const values = runs.map((r) => (r.settings as unknown as Record<string, unknown>)[k] ?? null)
      if (new Set(values.map((v) => JSON.stringify(v))).size > 1) settingsDiff.push({ key: k as keyof TrainingSettings, values })
    }
    for (const extra of ['modelName', 'device', 'preset'] as const) {
      const values = runs.map((r) => r[extra])
      if (new Set(values).size > 1) settingsDiff.unshift({ key: extra, values })
    }
    return { runs, settingsDiff, curves: ids.map((id) => this.metrics(id, maxPoints)) }
  }

  async estimate(req: TrainingRequest): Promise<TrainingEstimate> {
    const { modelForUse: _m, deviceInfo: _d, ...est } = await estimateTraining({ ctx: this.ctx, engine: this.engine, activeRunId: this.activeRun() }, req)
    return est
  }

  /** Resolves when the run is no longer active (at once when it is not). */
  whenDone(runId: number): Promise<Run> {
    if (this.active?.runId !== runId) return Promise.resolve(runView(this.ctx.repos(), this.row(runId)))
    return new Promise((resolve) => {
      const list = this.finished.get(runId) ?? []
      list.push(() => resolve(runView(this.ctx.repos(), this.row(runId))))
      this.finished.set(runId, list)
    })
  }

  get activeRunId(): number | null {
    return this.active?.runId ?? null
  }

  // ---------------------------------------------------------------------------------------------------------
  // Start, stop, resume, delete
  // ---------------------------------------------------------------------------------------------------------

  async start(req: TrainingRequest): Promise<Run> {
    this.notClosing()
    const est = await estimateTraining({ ctx: this.ctx, engine: this.engine, activeRunId: this.activeRun() }, req)
    const errors = est.problems.filter((p) => p.severity === 'error')
    if (errors.length > 0) {
      throw new AppError('INVALID_ARGUMENT', errors.map((p) => p.message.en).join(' '), { problems: est.problems })
    }
    if (this.active) throw new AppError('BUSY', `Run #${this.active.runId} is still active. Wait until it finishes or stop it first.`)
    const model = est.modelForUse!
    const device = est.device!.id
    const repos = this.ctx.repos()
    const preset = presetById(req.preset)!
    const stored: StoredSettings = { settings: est.settings, device }
    const count = repos.runs.list(req.projectId).length
    const name = req.name?.trim() || `${preset.name['zh-TW']} #${count + 1}`
    const id = repos.runs.create({ projectId: req.projectId, modelId: model.id, name, preset: req.preset, settings: stored, summary: emptySummary() })
    repos.runs.update(id, { outputDir: runLayout(this.ctx.dataDir, id).root })
    this.ctx.events.emit('runs:changed', { runId: id, projectId: req.projectId, status: 'queued', reason: 'created' })
    const queued = runView(repos, this.row(id))
    this.launch(id, req.projectId, 'fresh')
    return queued
  }

  async resume(id: number): Promise<Run> {
    this.notClosing()
    const row = this.row(id)
    if (this.active?.runId === id) throw new AppError('CONFLICT', `Run #${id} is already running.`)
    if (!RESUMABLE_STATUSES.includes(row.status)) {
      throw new AppError('CONFLICT', `Run #${id} is ${row.status}; only stopped, failed or interrupted runs can be resumed.`)
    }
    const other = this.activeRun()
    if (other !== null) throw new AppError('BUSY', `Run #${other} is still active. Wait until it finishes or stop it first.`)
    if (row.modelId === null) throw new AppError('NOT_FOUND', `The model of run #${id} was deleted, so it cannot be resumed. Start a new run instead.`)
    getModel(this.ctx, row.modelId) // a plain error when the model is gone or not ready
    const holder = this.engine.holder
    if (holder && !(holder.kind === 'training' && holder.runId === id)) {
      throw new AppError('BUSY', holder.kind === 'chat' ? `The engine is in use by the chat "${holder.label}". Close it first.` : `Run #${holder.runId} holds the engine.`)
    }
    const summary = storedSummary(row)
    this.ctx.repos().runs.update(id, { error: null, endedAt: null, summary: { ...summary, resumeOffered: false, resumes: summary.resumes + 1, stopReason: null, verdict: null } })
    this.launch(id, row.projectId, 'resume')
    return runView(this.ctx.repos(), this.row(id))
  }

  async stop(runId: number): Promise<Run> {
    const row = this.row(runId)
    const a = this.active
    if (!a || a.runId !== runId) {
      if (ACTIVE_STATUSES.includes(row.status)) {
        // Active in the database but not in this process (left by a crash): it is interrupted.
        this.ctx.repos().runs.update(runId, { status: 'interrupted', endedAt: new Date().toISOString() })
        this.changed(runId, row.projectId, 'interrupted')
      }
      return runView(this.ctx.repos(), this.row(runId))
    }
    this.requestStop(a, 'user')
    return runView(this.ctx.repos(), this.row(runId))
  }

  dismissResume(id: number): Run {
    const row = this.row(id)
    const summary = storedSummary(row)
    if (summary.resumeOffered) {
      this.ctx.repos().runs.update(id, { summary: { ...summary, resumeOffered: false } })
      this.ctx.events.emit('runs:changed', { runId: id, projectId: row.projectId, status: row.status, reason: 'resumeOffer' })
    }
    return runView(this.ctx.repos(), this.row(id))
  }

  async delete(id: number): Promise<void> {
    const row = this.row(id)
    if (this.active?.runId === id || ACTIVE_STATUSES.includes(row.status)) {
      throw new AppError('CONFLICT', `Run #${id} is active. Stop it before deleting it.`)
    }
    this.ctx.repos().runs.delete(id)
    await rm(runLayout(this.ctx.dataDir, id).root, { recursive: true, force: true })
    this.ctx.events.emit('runs:changed', { runId: id, projectId: row.projectId, status: null, reason: 'deleted' })
  }

  /** An active run of another live process on the same data folder (the desktop app and the CLI, say). */
  private activeElsewhere(): number | null {
    for (const row of this.ctx.repos().runs.listByStatus(ACTIVE_STATUSES)) {
      if (this.active?.runId === row.id) continue
      const owner = storedSummary(row).ownerPid
      if (owner && owner !== process.pid && processAlive(owner)) return row.id
    }
    return null
  }

  private activeRun(): number | null {
    return this.active?.runId ?? this.activeElsewhere()
  }

  /** Start-up: runs left active by an app that died are interrupted, with a resume offer. Returns their ids.
   *  A run whose owning process is still alive (another app or CLI on the same data folder) is left alone. */
  recoverInterrupted(): number[] {
    const repos = this.ctx.repos()
    const ids: number[] = []
    for (const row of repos.runs.listByStatus(ACTIVE_STATUSES)) {
      if (this.active?.runId === row.id) continue
      const summary = storedSummary(row)
      if (summary.ownerPid && summary.ownerPid !== process.pid && processAlive(summary.ownerPid)) continue
      const error: AppErrorInfo = {
        code: 'ENGINE_ERROR',
        message: `The app closed while this run was ${row.status} (step ${row.step}). Resume continues from its last checkpoint.`,
      }
      repos.runs.update(row.id, { status: 'interrupted', error, endedAt: new Date().toISOString(), summary: { ...summary, resumeOffered: true, stopReason: 'interrupted' } })
      this.ctx.events.emit('runs:changed', { runId: row.id, projectId: row.projectId, status: 'interrupted', reason: 'resumeOffer' })
      ids.push(row.id)
    }
    this.recovered.push(...ids)
    return ids
  }

  /** App shutdown: the active run stops gracefully (checkpoint) and is left 'interrupted' with a resume offer. */
  async close(): Promise<void> {
    this.closing = true
    const a = this.active
    if (!a) return
    this.requestStop(a, 'shutdown')
    const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), this.opts.closeTimeoutMs ?? 60_000).unref())
    if ((await Promise.race([a.done.then(() => 'done' as const), timeout])) === 'timeout') {
      this.log(`[training] run #${a.runId} did not stop in time; stopping the engine`)
      await this.engine.stop()
      await a.done
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // The pipeline
  // ---------------------------------------------------------------------------------------------------------

  private launch(runId: number, projectId: number, mode: 'fresh' | 'resume'): void {
    const a: ActiveRun = {
      runId, projectId, abort: new AbortController(), stop: null, stepAbort: null, done: Promise.resolve(), stage: { key: 'compiling', fraction: null },
      buffer: [], unsentPoints: [], unsentEvals: [], lastFlush: Date.now(), lastEmit: 0, step: 0, totalSteps: 0, stepsPerEpoch: 0, totalEpochs: 0, last: null,
      valLoss: null, bestValLoss: null, sessionStart: Date.now(), sessionStartStep: 0, secondsPerStep: null, evalSeconds: 0,
    }
    this.active = a
    a.done = this.execute(a, mode)
      .catch((err: unknown) => this.log(`[training] run #${runId}: unexpected failure: ${(err as Error).stack ?? String(err)}`))
      .finally(() => {
        if (this.active === a) this.active = null
        for (const f of this.finished.get(runId) ?? []) f()
        this.finished.delete(runId)
      })
  }

  private requestStop(a: ActiveRun, kind: StopKind): void {
    if (a.stop === null || kind === 'user') a.stop = a.stop ?? kind
    a.abort.abort()
    a.stepAbort?.abort()
  }

  private async execute(a: ActiveRun, mode: 'fresh' | 'resume'): Promise<void> {
    const repos = this.ctx.repos()
    const id = a.runId
    const row = this.row(id)
    const { settings: s, device } = storedSettings(row)
    const L = runLayout(this.ctx.dataDir, id)
    let lease: GpuLease | null = null
    let trainer: TrainerInfo | null = null
    let hostDied = false
    let model: ModelForUse
    try {
      model = getModel(this.ctx, row.modelId!)
      repos.runs.update(id, { startedAt: row.startedAt ?? new Date().toISOString(), outputDir: L.root })
      this.patchSummary(id, { ownerPid: process.pid })

      // preparing: freeze the rows, compile the training set into the run folder
      this.setStatus(a, 'preparing', { key: 'compiling', fraction: 0 })
      await mkdir(L.root, { recursive: true })
      let data: StoredSummary['data'] = storedSummary(this.row(id)).data
      if (mode === 'fresh' || !existsSync(L.trainSet) || !existsSync(L.valSet)) {
        const snap = mode === 'resume' && row.snapshotId !== null ? loadSnapshot(repos, row.snapshotId) : null
        let snapshotId: number
        let systemPrompt: string
        let rows: { id: number; question: string; answer: string }[]
        if (snap) {
          snapshotId = snap.snapshot.id
          systemPrompt = snap.snapshot.systemPrompt
          rows = snap.rows
        } else {
          const created = createSnapshot(repos, row.projectId)
          const loaded = loadSnapshot(repos, created.id)
          snapshotId = created.id
          systemPrompt = loaded.snapshot.systemPrompt
          rows = loaded.rows
        }
        repos.runs.update(id, { snapshotId })
        const summary: CompileSummary = await compileDataset(rows.map((r) => ({ id: r.id, question: r.question, answer: r.answer, enabled: true })), {
          modelDir: model.path,
          outDir: L.dataDir,
          systemPrompt,
          template: model.templateChoice,
          ...compileOptions(s),
          signal: a.abort.signal,
          onProgress: (done, total) => this.progress(a, { key: 'compiling', fraction: total ? done / total : null }, true),
        })
        if (summary.train.samples === 0) {
          throw new AppError('INVALID_ARGUMENT', `None of the ${summary.rows.total} rows could be used for training (${Object.entries(summary.skippedByReason).map(([k, n]) => `${k}: ${n}`).join(', ') || 'all went to validation'}). Fix the rows in the dataset editor or lower the validation share.`)
        }
        data = {
          trainSamples: summary.train.samples, validationSamples: summary.validation.samples, trainTokens: summary.train.tokens,
          skippedRows: summary.rows.skipped, truncatedRows: summary.rows.truncated,
        }
        this.patchSummary(id, { data })
      }
      this.throwIfStopped(a)

      // loading: the model into the engine host, then the trainer
      this.setStatus(a, 'loading', { key: 'loading', fraction: 0 })
      lease = this.engine.acquire({ kind: 'training', runId: id })
      await this.engine.call('model.load', loadParams(s, model.path, device), {
        signal: a.abort.signal,
        onEvent: (p) => this.progress(a, { key: 'loading', fraction: p.fraction }, false),
      })
      this.throwIfStopped(a)
      trainer = await this.engine.call('trainer.create', { config: trainConfig(s), trainSet: L.trainSet })
      const spe = trainer.stepsPerEpoch
      const total = trainer.totalSteps
      a.stepsPerEpoch = spe
      a.totalSteps = total
      a.totalEpochs = total / spe
      repos.runs.update(id, { totalSteps: total })
      this.patchSummary(id, { stepsPerEpoch: spe })

      // resume: the latest readable checkpoint; everything recorded after it is dropped
      let step = 0
      if (mode === 'resume') step = await this.restore(a, trainer.trainerId, L)
      a.step = step
      a.sessionStartStep = step
      a.sessionStart = Date.now()
      const hasVal = (data?.validationSamples ?? 0) > 0
      const es = this.earlyStoppingState(id, step, s)
      a.bestValLoss = es.best
      repos.runs.update(id, { step, epoch: step / spe, bestValLoss: es.best })

      const isEpochEnd = (n: number) => n % spe === 0 || n === total
      const isEval = (n: number) => hasVal && (isEpochEnd(n) || (s.evalEverySteps > 0 && n % s.evalEverySteps === 0))
      const isCkpt = (n: number) => isEpochEnd(n) || (s.checkpointEverySteps > 0 && n % s.checkpointEverySteps === 0)
      const nextBoundary = (n: number) => {
        const next = (every: number) => (every > 0 ? (Math.floor(n / every) + 1) * every : Infinity)
        return Math.min(total, next(spe), hasVal ? next(s.evalEverySteps) : Infinity, next(s.checkpointEverySteps))
      }
      let earlyStopped = false
      const boundary = async (n: number) => {
        if (isEval(n) && !repos.runMetrics.hasEvalAt(id, n)) {
          const improved = await this.evaluate(a, trainer!.trainerId, L, n, es, s)
          if (improved) await this.saveCheckpoint(a, trainer!.trainerId, L, 'best', n, es.best)
        }
        if (isCkpt(n) && !this.ctx.repos().checkpoints.list(id).some((c) => c.step === n && c.kind !== 'best')) {
          const epochEnd = n % spe === 0
          await this.saveCheckpoint(a, trainer!.trainerId, L, epochEnd ? 'epoch' : 'step', n, null)
          this.prune(id, s.keepLastCheckpoints)
        }
        if (s.earlyStoppingPatience > 0 && es.bad >= s.earlyStoppingPatience) earlyStopped = true
      }

      this.setStatus(a, 'training', { key: 'training', fraction: null })
      if (step > 0 && (isEval(step) || isCkpt(step))) await boundary(step)
      while (step < total && !earlyStopped && a.stop === null) {
        const target = nextBoundary(step)
        a.stepAbort = new AbortController()
        if (a.stop !== null) a.stepAbort.abort()
        const r = await this.engine.call('trainer.step', { trainerId: trainer.trainerId, k: target - step }, {
          signal: a.stepAbort.signal,
          onEvent: (m) => this.onStep(a, m),
        })
        a.stepAbort = null
        step = r.stepCount
        this.flush(a)
        if (step === target || step === total) await boundary(step)
      }

      // the end: stopped (checkpoint first) or completed / early-stopped
      let status: RunStatus
      let stopReason: RunStopReason
      if (a.stop !== null && !earlyStopped && step < total) {
        if (!this.ctx.repos().checkpoints.list(id).some((c) => c.step === step && c.kind !== 'best') && step > 0) {
          await this.saveCheckpoint(a, trainer.trainerId, L, 'step', step, null)
          this.prune(id, s.keepLastCheckpoints)
        }
        status = a.stop === 'user' ? 'stopped' : 'interrupted'
        stopReason = a.stop === 'user' ? 'user' : 'interrupted'
      } else {
        status = 'completed'
        stopReason = earlyStopped ? 'earlyStopping' : 'completed'
      }
      if (a.stop !== 'shutdown' && step > 0) await this.exportAdapter(a, trainer.trainerId, L, s, step, model)
      await this.finish(a, status, stopReason, null)
    } catch (err) {
      hostDied = err instanceof HostExitedError
      try {
        this.flush(a)
      } catch (flushErr) {
        this.log(`[training] run #${id}: metrics flush failed: ${(flushErr as Error).message}`)
      }
      await this.finishWithError(a, err)
    } finally {
      if (trainer && !hostDied) {
        await this.engine.call('trainer.dispose', { trainerId: trainer.trainerId }).catch(() => undefined)
        await this.engine.call('adapter.dispose', { adapterId: trainer.adapterId }).catch(() => undefined)
      }
      lease?.release()
    }
  }

  private throwIfStopped(a: ActiveRun): void {
    if (a.stop !== null) throw new EngineError('CANCELLED', 'Stopped before training began.')
  }

  /** Loads the newest checkpoint that reads back; drops metrics and checkpoints recorded after it. */
  private async restore(a: ActiveRun, trainerId: number, L: RunLayout): Promise<number> {
    const repos = this.ctx.repos()
    const rows = repos.checkpoints.list(a.runId)
    const candidates = rows
      .map((c) => ({ c, step: checkpointStep(c.path) }))
      .filter((x): x is { c: (typeof rows)[number]; step: number } => x.step !== null)
      .sort((x, y) => y.step - x.step || (x.c.kind === 'best' ? 1 : -1))
    let step = 0
    for (const { c } of candidates) {
      try {
        step = (await this.engine.call('trainer.loadCheckpoint', { trainerId, dir: c.path })).stepCount
        break
      } catch (err) {
        if (err instanceof HostExitedError) throw err
        this.log(`[training] run #${a.runId}: checkpoint ${c.path} does not load (${(err as Error).message}); trying an older one`)
      }
    }
    repos.runs.transaction(() => {
      repos.runMetrics.deleteAfter(a.runId, step)
      for (const c of repos.checkpoints.list(a.runId)) if (c.step > step || checkpointStep(c.path) === null) repos.checkpoints.delete(c.id)
    })
    for (const c of rows) {
      if (c.step > step && c.path !== L.best) await rm(c.path, { recursive: true, force: true })
    }
    return step
  }

  /** Best validation loss and evaluations without improvement, recomputed from the evaluations up to `step`. */
  private earlyStoppingState(runId: number, step: number, s: TrainingSettings): { best: number | null; bestStep: number | null; bad: number } {
    const st = { best: null as number | null, bestStep: null as number | null, bad: 0 }
    for (const e of this.ctx.repos().runMetrics.evals(runId)) {
      if (e.step > step) break
      if (st.best === null || e.loss < st.best - s.earlyStoppingMinDelta) {
        st.best = e.loss
        st.bestStep = e.step
        st.bad = 0
      } else st.bad++
    }
    return st
  }

  private async evaluate(a: ActiveRun, trainerId: number, L: RunLayout, n: number, es: { best: number | null; bestStep: number | null; bad: number }, s: TrainingSettings): Promise<boolean> {
    const repos = this.ctx.repos()
    this.setStatus(a, 'evaluating', { key: 'evaluating', fraction: null })
    const t0 = Date.now()
    const { loss } = await this.engine.call('trainer.evaluate', { trainerId, set: L.valSet })
    a.evalSeconds = (Date.now() - t0) / 1000
    const point: EvalPoint = { step: n, epoch: n / a.stepsPerEpoch, loss }
    let improved = false
    if (es.best === null || loss < es.best - s.earlyStoppingMinDelta) {
      es.best = loss
      es.bestStep = n
      es.bad = 0
      improved = true
    } else es.bad++
    repos.runs.transaction(() => {
      repos.runMetrics.appendEval(a.runId, point)
      repos.runs.update(a.runId, { bestValLoss: es.best })
    })
    a.valLoss = loss
    a.bestValLoss = es.best
    a.unsentEvals.push(point)
    this.setStatus(a, 'training', { key: 'training', fraction: null })
    return improved
  }

  private async saveCheckpoint(a: ActiveRun, trainerId: number, L: RunLayout, kind: 'step' | 'epoch' | 'best', n: number, valLoss: number | null): Promise<void> {
    const repos = this.ctx.repos()
    const dir = kind === 'best' ? L.best : checkpointDir(L, kind, kind === 'epoch' ? Math.round(n / a.stepsPerEpoch) : n)
    this.progress(a, { key: 'checkpointing', fraction: null }, true)
    try {
      await mkdir(L.checkpoints, { recursive: true })
      await this.engine.call('trainer.saveCheckpoint', { trainerId, dir })
    } catch (err) {
      if (err instanceof HostExitedError) throw err
      const previous = repos.checkpoints.list(a.runId).filter((c) => c.kind !== 'best' || kind === 'best').reduce<number | null>((m, c) => Math.max(m ?? 0, c.step), null)
      throw new CheckpointWriteError(dir, n, previous, err)
    }
    repos.runs.transaction(() => {
      if (kind === 'best') repos.checkpoints.deleteByPath(a.runId, dir)
      repos.checkpoints.add({ runId: a.runId, step: n, epoch: n / a.stepsPerEpoch, kind, path: dir, valLoss })
    })
    this.ctx.events.emit('runs:changed', { runId: a.runId, projectId: a.projectId, status: this.row(a.runId).status, reason: 'checkpoint' })
    this.progress(a, { key: 'training', fraction: null }, true)
  }

  /** Keeps the newest `keep` step/epoch checkpoints (never the best folder). */
  private prune(runId: number, keep: number): void {
    const repos = this.ctx.repos()
    const periodic = repos.checkpoints.list(runId).filter((c) => c.kind === 'step' || c.kind === 'epoch').sort((x, y) => y.step - x.step)
    for (const c of periodic.slice(Math.max(1, keep))) {
      repos.checkpoints.delete(c.id)
      void rm(c.path, { recursive: true, force: true }).catch((err: unknown) => this.log(`[training] could not delete ${c.path}: ${(err as Error).message}`))
    }
  }

  private async exportAdapter(a: ActiveRun, trainerId: number, L: RunLayout, s: TrainingSettings, step: number, model: ModelForUse): Promise<void> {
    const repos = this.ctx.repos()
    const best = repos.checkpoints.list(a.runId).find((c) => c.kind === 'best')
    const useBest = s.exportAdapter === 'best' && best !== undefined && checkpointStep(best.path) !== null
    this.progress(a, { key: 'exporting', fraction: null }, true)
    if (useBest) await this.engine.call('trainer.loadCheckpoint', { trainerId, dir: best.path })
    const base = repos.models.get(model.id)?.repoId ?? model.path
    await this.engine.call('trainer.exportAdapter', { trainerId, dir: L.adapter, meta: { baseModelNameOrPath: base } })
    this.patchSummary(a.runId, { adapterDir: L.adapter, adapterFrom: useBest ? 'best' : 'final', adapterStep: useBest ? best.step : step, bestStep: best?.step ?? null })
  }

  private async finish(a: ActiveRun, status: RunStatus, stopReason: RunStopReason, error: AppErrorInfo | null): Promise<void> {
    const repos = this.ctx.repos()
    const id = a.runId
    const summary = storedSummary(this.row(id))
    const train = repos.runMetrics.train(id, 5000).points
    const evals = repos.runMetrics.evals(id)
    const stats = repos.runMetrics.stats(id)
    const sessionSeconds = (Date.now() - a.sessionStart) / 1000
    const next: StoredSummary = {
      ...summary,
      stopReason,
      verdict: status === 'completed' || status === 'stopped' ? computeVerdict({ train, evals, stopReason }) : summary.verdict,
      trainSeconds: summary.trainSeconds + (a.totalSteps > 0 ? sessionSeconds : 0),
      meanTokensPerSecond: stats.meanTokensPerSecond,
      peakMemoryBytes: stats.peakMemoryBytes,
      resumeOffered: status === 'interrupted' && a.stop === 'shutdown' ? true : summary.resumeOffered,
      adapterDir: summary.adapterDir && adapterExists(summary.adapterDir) ? summary.adapterDir : null,
    }
    repos.runs.update(id, { status, summary: next, error, endedAt: new Date().toISOString() })
    const row = this.row(id)
    try {
      await writeJsonAtomic(runLayout(this.ctx.dataDir, id).runJson, { format: 'qa-tuner-run/1', run: runView(repos, row), checkpoints: repos.checkpoints.list(id) })
    } catch (err) {
      this.log(`[training] run #${id}: could not write run.json: ${(err as Error).message}`)
    }
    this.progress(a, a.stage, true, status)
    this.changed(id, a.projectId, status)
  }

  private async finishWithError(a: ActiveRun, err: unknown): Promise<void> {
    const row = this.row(a.runId)
    const latest = this.ctx.repos().checkpoints.list(a.runId).reduce((m, c) => Math.max(m, c.step), 0)
    const from = latest > 0 ? `its last checkpoint (step ${latest})` : 'the start'
    let status: RunStatus = 'failed'
    let stopReason: RunStopReason = 'error'
    let info: AppErrorInfo | null
    if (err instanceof HostExitedError) {
      status = 'interrupted'
      stopReason = 'interrupted'
      info = { code: 'ENGINE_ERROR', message: `The engine process stopped unexpectedly (${err.exit.reason}) while the run was ${row.status}. Resume continues from ${from}.` }
    } else if (a.stop !== null && isCancel(err)) {
      status = a.stop === 'user' ? 'stopped' : 'interrupted'
      stopReason = a.stop === 'user' ? 'user' : 'interrupted'
      info = null
    } else if (err instanceof CheckpointWriteError) {
      const code = /ENOSPC|space/i.test(String((err.cause as Error)?.message)) ? 'DISK_FULL' : 'ENGINE_ERROR'
      info = { code, message: err.message }
    } else if (err instanceof EngineError && err.code === 'OUT_OF_MEMORY') {
      info = { code: 'OUT_OF_MEMORY', message: `${err.message}. Lower the rows per batch (or the token budget) or the max length, then start again.` }
    } else if (err instanceof EngineError) {
      info = { code: err.code === 'CANCELLED' ? 'CANCELLED' : 'ENGINE_ERROR', message: err.message }
    } else if (err instanceof AppError) {
      info = { code: err.code, message: err.message }
    } else {
      this.log(`[training] run #${a.runId} failed: ${(err as Error)?.stack ?? String(err)}`)
      info = { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) }
    }
    await this.finish(a, status, stopReason, info)
  }

  // ---------------------------------------------------------------------------------------------------------
  // Metrics, progress, status
  // ---------------------------------------------------------------------------------------------------------

  private onStep(a: ActiveRun, m: StepEvent): void {
    a.last = m
    a.step = m.step
    const tps = m.seconds > 0 ? m.tokens / m.seconds : 0
    const row: TrainMetricRow = { step: m.step, epoch: m.epoch, loss: m.loss, lr: m.lr, gradNorm: m.gradNorm, tokens: m.tokens, tokensPerSecond: tps, memoryBytes: m.memoryBytes }
    a.buffer.push(row)
    const { tokens: _t, ...point } = row
    a.unsentPoints.push(point)
    const done = m.step - a.sessionStartStep
    if (done > 0) a.secondsPerStep = (Date.now() - a.sessionStart) / 1000 / done
    const now = Date.now()
    if (a.buffer.length >= (this.opts.flushRows ?? 64) || now - a.lastFlush >= (this.opts.flushIntervalMs ?? 1000)) this.flush(a)
    this.progress(a, a.stage, false)
  }

  private flush(a: ActiveRun): void {
    a.lastFlush = Date.now()
    if (a.buffer.length === 0) return
    const rows = a.buffer
    a.buffer = []
    const repos = this.ctx.repos()
    const last = rows[rows.length - 1]
    repos.runs.transaction(() => {
      repos.runMetrics.appendTrain(a.runId, rows)
      repos.runs.update(a.runId, { step: last.step, epoch: last.epoch })
    })
    this.metricsFlushes++
  }

  private progress(a: ActiveRun, stage: TrainingProgress['stage'], force: boolean, status?: RunStatus): void {
    a.stage = stage
    const now = Date.now()
    if (!force && now - a.lastEmit < (this.opts.progressIntervalMs ?? 250)) return
    a.lastEmit = now
    const m = a.last
    const remaining = Math.max(0, a.totalSteps - a.step)
    const evalsLeft = a.stepsPerEpoch > 0 ? Math.ceil(remaining / a.stepsPerEpoch) : 0
    const payload: TrainingProgress = {
      runId: a.runId,
      projectId: a.projectId,
      status: status ?? this.row(a.runId).status,
      stage,
      step: a.step,
      totalSteps: a.totalSteps,
      epoch: a.stepsPerEpoch > 0 ? a.step / a.stepsPerEpoch : 0,
      totalEpochs: a.totalEpochs,
      stepsPerEpoch: a.stepsPerEpoch,
      loss: m?.loss ?? null,
      lr: m?.lr ?? null,
      gradNorm: m?.gradNorm ?? null,
      tokensPerSecond: m && m.seconds > 0 ? m.tokens / m.seconds : null,
      memoryBytes: m?.memoryBytes ?? null,
      deviceTotalBytes: m?.deviceTotalBytes ?? null,
      valLoss: a.valLoss,
      bestValLoss: a.bestValLoss,
      elapsedSeconds: (now - a.sessionStart) / 1000,
      etaSeconds: a.secondsPerStep !== null ? remaining * a.secondsPerStep + evalsLeft * a.evalSeconds : null,
      points: a.unsentPoints,
      evalPoints: a.unsentEvals,
    }
    a.unsentPoints = []
    a.unsentEvals = []
    this.ctx.events.emit('training:progress', payload)
  }

  private setStatus(a: ActiveRun, status: RunStatus, stage: TrainingProgress['stage']): void {
    const row = this.row(a.runId)
    if (row.status !== status) {
      this.ctx.repos().runs.update(a.runId, { status })
      this.changed(a.runId, a.projectId, status)
    }
    this.progress(a, stage, true, status)
  }

  private changed(runId: number, projectId: number, status: RunStatus): void {
    this.ctx.events.emit('runs:changed', { runId, projectId, status, reason: 'status' })
  }

  private patchSummary(runId: number, patch: Partial<StoredSummary>): void {
    const summary = storedSummary(this.row(runId))
    this.ctx.repos().runs.update(runId, { summary: { ...summary, ...patch } })
  }

  private row(id: number): RunRow {
    const r = this.ctx.repos().runs.get(id)
    if (!r) throw notFound('Run', id)
    return r
  }

  private notClosing(): void {
    if (this.closing) throw new AppError('CONFLICT', 'The app is closing.')
  }

  private log(msg: string): void {
    ;(this.opts.log ?? ((m: string) => console.error(m)))(msg)
  }
}
