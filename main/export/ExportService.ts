// Exports of one app context: estimate (sizes, free space, template, stop tokens), start (refused up front when the
// folder exists or the disk is too full, then run in the background with export:progress events), cancel (nothing
// is left behind) and the list of this session's exports. One export runs at a time. The work runs in the export
// worker process by default (main/export/exportWorker.ts); the self-test's reference answers come from the app's
// engine host, which main owns.
import { randomUUID } from 'node:crypto'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { ExportEstimate, ExportJob, ExportRequest, ExportResult } from '../../preload/contract'
import type { AppContext } from '../context'
import { engineOf } from '../engine/host/engineForContext'
import { AppError, toErrorInfo } from '../errors'
import { engineHostAnswers } from './engineReference'
import { removePartialFolders, runExportInWorker } from './exportWorkerProtocol'
import { resolveExport } from './resolveExport'
import { checkFreeSpace, defaultFreeSpace, diskMargin, prepareExport, runExport, type ExportProgress, type ExportSpec } from './runExport'

export interface ExportServiceOptions {
  /** 'worker' (default): a child process; 'inProcess': this process (tests, the command line). */
  runner?: 'worker' | 'inProcess'
  /** Free bytes on the disk holding a folder (default: fs.statfs). */
  freeSpace?: (path: string) => Promise<number>
  /** The app engine's greedy answers for the self-test (default: the engine host). */
  engineAnswers?: (spec: ExportSpec, prompts: number[][], stopIds: number[], signal: AbortSignal) => Promise<number[][]>
}

interface JobState {
  job: ExportJob
  controller: AbortController
  done: Promise<void>
}

/** The closest existing folder at or above `path` (free space is asked there). */
function existingAncestor(path: string): string {
  let p = path
  while (!existsSync(p)) {
    const up = dirname(p)
    if (up === p) break
    p = up
  }
  return p
}

export class ExportService {
  private readonly jobs = new Map<string, JobState>()

  constructor(private readonly ctx: AppContext, private readonly options: ExportServiceOptions = {}) {}

  private freeSpace(path: string): Promise<number> {
    return (this.options.freeSpace ?? defaultFreeSpace)(existingAncestor(path))
  }

  async estimate(req: ExportRequest): Promise<ExportEstimate> {
    const { spec } = resolveExport(this.ctx, req)
    const prep = await prepareExport(spec, false)
    try {
      let freeBytes: number | null = null
      try {
        freeBytes = await this.freeSpace(spec.destDir)
      } catch {
        freeBytes = null
      }
      const folder = join(spec.destDir, spec.name)
      const warnings: string[] = [...prep.format.warnings]
      if (spec.outputs.gguf && !spec.selfTest) warnings.push('The project has no questions with answers, so the GGUF cannot be self-tested.')
      return {
        name: spec.name,
        destDir: spec.destDir,
        folder,
        exists: existsSync(folder),
        files: prep.files,
        totalBytes: prep.totalBytes,
        freeBytes,
        enough: freeBytes === null ? true : freeBytes >= prep.totalBytes + diskMargin(prep.totalBytes),
        baseModel: spec.base.repoId ?? spec.base.name,
        adapterDir: spec.adapterDir,
        template: prep.facts.templateSource,
        stopTokens: prep.stopTokens,
        systemPrompt: prep.systemPrompt,
        unavailable: prep.unavailable,
        warnings,
      }
    } finally {
      await prep.close()
    }
  }

  async start(req: ExportRequest): Promise<ExportJob> {
    const running = [...this.jobs.values()].find((j) => j.job.state === 'running')
    if (running) throw new AppError('BUSY', `The export "${running.job.name}" is still running. Wait for it, or cancel it first.`)
    const { spec, runId } = resolveExport(this.ctx, req)
    const folder = join(spec.destDir, spec.name)
    if (existsSync(folder)) throw new AppError('CONFLICT', `${folder} already exists. Choose another name for the export, or move the old export away.`, { folder })
    const prep = await prepareExport(spec, true)
    const totalBytes = prep.totalBytes
    await prep.close()
    await checkFreeSpace(spec.destDir, totalBytes, (p) => this.freeSpace(p))
    // A temporary folder of an earlier export of this name that was cut off (power loss): ours, and never kept.
    await removePartialFolders(spec.destDir, spec.name)

    const controller = new AbortController()
    const job: ExportJob = {
      id: randomUUID(),
      projectId: req.projectId,
      runId,
      name: spec.name,
      folder,
      state: 'running',
      stage: 'checking',
      fraction: 0,
      bytesDone: 0,
      bytesTotal: totalBytes,
      detail: '',
      startedAt: new Date().toISOString(),
      endedAt: null,
      error: null,
      result: null,
    }
    const emit = () => this.ctx.events.emit('export:progress', { ...job })
    const onProgress = (p: ExportProgress) => {
      if (job.state !== 'running') return
      Object.assign(job, { stage: p.stage, fraction: p.fraction, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, detail: p.detail })
      emit()
    }
    const engineAnswers = (prompts: number[][], stopIds: number[]) => {
      if (this.options.engineAnswers) return this.options.engineAnswers(spec, prompts, stopIds, controller.signal)
      const st = spec.selfTest!
      return engineHostAnswers(engineOf(this.ctx), {
        baseDir: spec.base.dir, adapterDir: spec.adapterDir, device: st.device, quant: st.quant, prompts, stopIds, maxNewTokens: st.maxNewTokens, signal: controller.signal,
      })
    }
    const run: Promise<ExportResult> =
      this.options.runner === 'inProcess'
        ? runExport(spec, {
            signal: controller.signal,
            onProgress,
            freeSpace: (p) => this.freeSpace(p),
            engineAnswers: async (_s, format, prompts) => engineAnswers(prompts.map((p) => p.ids), format.stopIds),
          })
        : runExportInWorker(spec, { signal: controller.signal, onProgress, engineAnswers })
    const done = run.then(
      (result) => {
        Object.assign(job, { state: 'done', stage: 'finishing', fraction: 1, bytesDone: job.bytesTotal, result, detail: result.folder })
      },
      (err: unknown) => {
        const info = toErrorInfo(err)
        Object.assign(job, { state: info.code === 'CANCELLED' ? 'cancelled' : 'failed', error: info })
      },
    ).then(() => {
      job.endedAt = new Date().toISOString()
      emit()
    })
    this.jobs.set(job.id, { job, controller, done })
    emit()
    return { ...job }
  }

  /** Cancels a running export and waits until its files are gone. */
  async cancel(jobId: string): Promise<ExportJob> {
    const s = this.jobs.get(jobId)
    if (!s) throw new AppError('NOT_FOUND', 'That export is not known (exports are listed until the app quits).')
    if (s.job.state === 'running') {
      s.controller.abort()
      await s.done
    }
    return { ...s.job }
  }

  /** Resolves when the job has ended (tests, the command line). */
  async wait(jobId: string): Promise<ExportJob> {
    const s = this.jobs.get(jobId)
    if (!s) throw new AppError('NOT_FOUND', 'That export is not known.')
    await s.done
    return { ...s.job }
  }

  list(projectId?: number): ExportJob[] {
    return [...this.jobs.values()]
      .map((s) => ({ ...s.job }))
      .filter((j) => projectId === undefined || j.projectId === projectId)
      .sort((a, b) => (a.startedAt < b.startedAt ? 1 : -1))
  }

  /** Cancels what runs (the app is closing). */
  async close(): Promise<void> {
    const running = [...this.jobs.values()].filter((s) => s.job.state === 'running')
    for (const s of running) s.controller.abort()
    await Promise.all(running.map((s) => s.done))
  }
}
