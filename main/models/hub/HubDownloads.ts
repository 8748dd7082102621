// Hub downloads: one task per model row (status 'downloading'), files fetched one after another into the model's
// folder. The folder's .qt-model.json is the manifest: repo, the commit every file is pinned to, each file's size
// and hash, which files are done. An interrupted download (network drop, pause, app restart) continues from the
// partial files; done files are not fetched or hashed again. Progress (bytes, speed, ETA) goes out as
// 'models:downloadProgress' push events, at most four a second.
import { existsSync, statSync } from 'node:fs'
import { mkdir, readFile, rm, statfs } from 'node:fs/promises'
import { join } from 'node:path'
import type { DownloadProgress } from '../../../preload/contract'
import type { AppContext } from '../../context'
import { AppError, toErrorInfo } from '../../errors'
import { folderSize, inspectModelFolder } from '../inspectModelFolder'
import { parseModelConfig } from '../modelConfig'
import { modelProblem } from '../modelProblem'
import { MODEL_MARKER, storedInfo, type StoredModelInfo } from '../modelRegistry'
import { writePrivateFile } from '../secrets/SecretStore'
import { downloadFileAttempt, RetryableDownloadError } from './downloadFile'
import { hubHttpProblem, listRepo, selectWeightFiles, type HubContext, type HubFile } from './hubClient'

export interface DownloadManifest {
  version: 1
  source: 'hub'
  repoId: string
  endpoint: string
  /** Requested revision (branch, tag or commit) and the commit it resolved to (null until listed). */
  requested: string
  revision: string | null
  files: HubFile[]
  /** True once the weight files are in `files` (the listing is complete). */
  listed: boolean
  /** Paths already complete and verified. */
  done: string[]
}

export interface HubDownloadOptions {
  endpoint: string
  /** The saved access token, read at the start of every task (never stored elsewhere). */
  token: () => string | null
  /** Retries per file after an interruption that made no progress (default 5). */
  maxRetries?: number
  /** First retry delay, doubled each time (default 2000 ms). */
  retryDelayMs?: number
  stallMs?: number
  /** Minimum free disk space left after the download (default 200 MB). */
  reserveBytes?: number
}

type StopReason = 'pause' | 'cancel' | 'shutdown'

class Stop extends Error {
  constructor(readonly reason: StopReason) {
    super(`download ${reason}`)
  }
}

interface Task {
  controller: AbortController
  done: Promise<void>
  progress: DownloadProgress
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolveSleep, reject) => {
    if (signal.aborted) return reject(signal.reason)
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolveSleep()
    }, ms)
    const onAbort = (): void => {
      clearTimeout(t)
      reject(signal.reason)
    }
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

export async function readManifest(dir: string): Promise<DownloadManifest | null> {
  try {
    const m = JSON.parse(await readFile(join(dir, MODEL_MARKER), 'utf8')) as DownloadManifest
    return m && m.version === 1 && m.source === 'hub' && Array.isArray(m.files) && Array.isArray(m.done) ? m : null
  } catch {
    return null
  }
}

function writeManifest(dir: string, m: DownloadManifest): void {
  writePrivateFile(join(dir, MODEL_MARKER), `${JSON.stringify(m, null, 2)}\n`)
}

export class HubDownloads {
  private readonly tasks = new Map<number, Task>()
  private closed = false

  constructor(
    private readonly ctx: AppContext,
    private readonly opts: HubDownloadOptions,
  ) {}

  /** Live progress of a running task. */
  progress(modelId: number): DownloadProgress | null {
    return this.tasks.get(modelId)?.progress ?? null
  }

  isRunning(modelId: number): boolean {
    return this.tasks.has(modelId)
  }

  /** Starts (or continues) the download of a registered 'hub' model row. */
  start(modelId: number, requested = 'main'): void {
    if (this.closed || this.tasks.has(modelId)) return
    const row = this.ctx.repos().models.get(modelId)
    if (!row || row.source !== 'hub' || !row.repoId) return
    const controller = new AbortController()
    const progress: DownloadProgress = {
      modelId,
      repoId: row.repoId,
      state: 'starting',
      totalBytes: 0,
      doneBytes: 0,
      bytesPerSecond: 0,
      etaSeconds: null,
      file: null,
      filesDone: 0,
      filesTotal: 0,
    }
    const info: StoredModelInfo = { ...storedInfo(row), error: null, paused: false }
    this.ctx.repos().models.update(modelId, { status: 'downloading', info: info as Record<string, unknown> })
    const task: Task = { controller, progress, done: Promise.resolve() }
    this.tasks.set(modelId, task)
    task.done = this.run(modelId, row.repoId, row.path, requested, task).finally(() => this.tasks.delete(modelId))
    this.ctx.events.emit('models:changed', { modelId })
  }

  /** Stops a task; resolves when it has stopped. */
  async stop(modelId: number, reason: StopReason): Promise<void> {
    const t = this.tasks.get(modelId)
    if (!t) return
    t.controller.abort(new Stop(reason))
    await t.done
  }

  /** Stops every task, leaving them 'downloading' so the next start resumes them. */
  async close(): Promise<void> {
    this.closed = true
    await Promise.all([...this.tasks.keys()].map((id) => this.stop(id, 'shutdown')))
  }

  private emitProgress(p: DownloadProgress, force = false): void {
    const now = Date.now()
    const last = (p as { _emitted?: number })._emitted ?? 0
    if (!force && now - last < 250) return
    Object.defineProperty(p, '_emitted', { value: now, enumerable: false, writable: true, configurable: true })
    this.ctx.events.emit('models:downloadProgress', { ...p })
  }

  private async run(modelId: number, repoId: string, dir: string, requested: string, task: Task): Promise<void> {
    const { progress, controller } = task
    const signal = controller.signal
    const hub: HubContext = { endpoint: this.opts.endpoint, repoId, token: this.opts.token() }
    try {
      await mkdir(dir, { recursive: true })
      let manifest = await readManifest(dir)
      if (!manifest || manifest.repoId !== repoId) {
        manifest = { version: 1, source: 'hub', repoId, endpoint: this.opts.endpoint, requested, revision: null, files: [], listed: false, done: [] }
        writeManifest(dir, manifest)
      }
      if (!manifest.listed) {
        const listing = await listRepo(hub, manifest.revision ?? manifest.requested, signal)
        if (listing.gated && !hub.token) throw hubHttpProblem(401, 'GatedRepo', '', hub)
        const small = listing.files.filter((f) => !f.path.endsWith('.safetensors'))
        if (!small.some((f) => f.path === 'config.json')) {
          throw modelProblem('UNSUPPORTED', 'noSafetensorsOnHub', `${repoId} has no config.json at the top level, so it is not a Transformers model repo. Pick another repo.`, { repoId })
        }
        manifest = { ...manifest, revision: listing.revision, files: small }
        writeManifest(dir, manifest)
        this.ctx.repos().models.update(modelId, { revision: listing.revision })
        // Small files first: config.json (architecture checked before gigabytes move) and the shard index.
        await this.fetchFiles(dir, manifest, hub, task)
        parseModelConfig(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')), dir)
        const indexPath = join(dir, 'model.safetensors.index.json')
        const index = existsSync(indexPath) ? (JSON.parse(await readFile(indexPath, 'utf8')) as { weight_map?: Record<string, unknown> }) : null
        const weights = selectWeightFiles(listing.files, index)
        if (weights.length === 0) {
          const bins = listing.skipped.filter((p) => /\.(bin|pth|pt)$/.test(p))
          throw modelProblem(
            'UNSUPPORTED',
            'noSafetensorsOnHub',
            bins.length > 0
              ? `${repoId} only has PyTorch weights (${bins.slice(0, 2).join(', ')}), no .safetensors files. Look for a safetensors version of this model on the Hub, or download it with Python and convert it (see "Import a folder" for the command).`
              : `${repoId} has no .safetensors weight files. Pick another repo.`,
            { repoId },
          )
        }
        const missing = index ? [...new Set(Object.values(index.weight_map ?? {}))].filter((n) => !weights.some((w) => w.path === n)) : []
        if (missing.length > 0) {
          throw modelProblem('NOT_FOUND', 'missingShards', `The weight index of ${repoId} names files the repo does not have: ${missing.join(', ')}. The repo is broken; pick another one.`, { missing })
        }
        manifest = { ...manifest, files: [...manifest.files, ...weights], listed: true }
        writeManifest(dir, manifest)
      }
      await this.checkDiskSpace(dir, manifest)
      await this.fetchFiles(dir, manifest, hub, task)

      progress.state = 'verifying'
      this.emitProgress(progress, true)
      const inspected = await inspectModelFolder(dir)
      const row = this.ctx.repos().models.get(modelId)
      const info: StoredModelInfo = { ...(row ? storedInfo(row) : {}), details: inspected.details, error: null, paused: false, download: null }
      this.ctx.repos().models.update(modelId, {
        status: 'ready',
        architecture: inspected.details.architecture,
        sizeBytes: inspected.sizeBytes,
        info: info as Record<string, unknown>,
      })
      progress.state = 'done'
      progress.etaSeconds = 0
      this.emitProgress(progress, true)
    } catch (err) {
      const reason = signal.aborted && signal.reason instanceof Stop ? signal.reason.reason : null
      if (reason === 'shutdown' || reason === 'cancel') {
        progress.state = reason === 'cancel' ? 'cancelled' : 'paused'
        if (reason === 'cancel') this.emitProgress(progress, true)
        return // cancel: the caller deletes the row and files; shutdown: stays 'downloading', resumed at next start
      }
      const row = this.ctx.repos().models.get(modelId)
      if (!row) return
      const paused = reason === 'pause'
      const error = paused ? null : toErrorInfo(err instanceof RetryableDownloadError ? err.problem : err)
      if (!paused && !(err instanceof AppError) && !(err instanceof RetryableDownloadError)) console.error(`[models] download of ${repoId} failed:`, err)
      progress.state = paused ? 'paused' : 'failed'
      progress.bytesPerSecond = 0
      progress.etaSeconds = null
      const info: StoredModelInfo = { ...storedInfo(row), error, paused, download: { ...progress } }
      this.ctx.repos().models.update(modelId, { status: 'failed', sizeBytes: await folderSize(dir), info: info as Record<string, unknown> })
      this.emitProgress(progress, true)
    } finally {
      this.ctx.events.emit('models:changed', { modelId })
    }
  }

  private async checkDiskSpace(dir: string, m: DownloadManifest): Promise<void> {
    let remaining = 0
    for (const f of m.files) {
      if (m.done.includes(f.path)) continue
      let have = 0
      try {
        have = statSync(join(dir, `${f.path}.part`)).size
      } catch {
        /* nothing yet */
      }
      remaining += Math.max(0, f.size - have)
    }
    let free: number
    try {
      const s = await statfs(dir)
      free = Number(s.bavail) * Number(s.bsize)
    } catch {
      return // statfs unsupported: the write will fail with ENOSPC instead
    }
    const reserve = this.opts.reserveBytes ?? 200e6
    if (free < remaining + reserve) {
      const gb = (n: number): string => `${(n / 1e9).toFixed(1)} GB`
      throw modelProblem('DISK_FULL', 'diskFull', `Not enough disk space in ${dir}: the download needs ${gb(remaining)} more and only ${gb(free)} is free. Free some space (or choose another models folder in Settings), then press Retry.`, {
        needed: remaining,
        free,
      })
    }
  }

  private async fetchFiles(dir: string, manifest: DownloadManifest, hub: HubContext, task: Task): Promise<void> {
    const { progress, controller } = task
    const signal = controller.signal
    const done = new Set(manifest.done)
    const revision = manifest.revision ?? manifest.requested
    const doneBytes = (): number => manifest.files.filter((f) => done.has(f.path)).reduce((s, f) => s + f.size, 0)
    progress.totalBytes = manifest.files.reduce((s, f) => s + f.size, 0)
    progress.filesTotal = manifest.files.length
    progress.filesDone = done.size
    progress.doneBytes = doneBytes()
    // Speed over the last few seconds of network bytes.
    const samples: { t: number; bytes: number }[] = []
    let networkBytes = 0
    const retries = this.opts.maxRetries ?? 5
    const baseDelay = this.opts.retryDelayMs ?? 2000

    for (const file of manifest.files) {
      if (done.has(file.path) && existsSync(join(dir, file.path))) continue
      done.delete(file.path)
      if (signal.aborted) throw signal.reason
      progress.file = file.path
      progress.state = 'downloading'
      this.emitProgress(progress, true)
      const before = doneBytes()
      let position = 0
      let failures = 0
      for (;;) {
        let progressed = false
        try {
          await downloadFileAttempt({
            ctx: hub,
            revision,
            file,
            dest: join(dir, file.path),
            signal,
            stallMs: this.opts.stallMs,
            onPosition: (bytes, network) => {
              if (network) {
                networkBytes += bytes - position
                progressed = true
              }
              position = bytes
              const now = Date.now()
              if (samples.length === 0 || now - samples[samples.length - 1].t >= 100) samples.push({ t: now, bytes: networkBytes })
              while (samples.length > 2 && now - samples[0].t > 5000) samples.shift()
              const span = (now - samples[0].t) / 1000
              progress.bytesPerSecond = span > 0 ? (networkBytes - samples[0].bytes) / span : progress.bytesPerSecond
              progress.doneBytes = before + bytes
              progress.etaSeconds = progress.bytesPerSecond > 0 ? Math.round((progress.totalBytes - progress.doneBytes) / progress.bytesPerSecond) : null
              progress.state = 'downloading'
              this.emitProgress(progress)
            },
          })
          break
        } catch (err) {
          if (!(err instanceof RetryableDownloadError)) throw err
          failures = progressed ? 1 : failures + 1
          if (failures > retries) throw err.problem
          progress.state = 'retrying'
          this.emitProgress(progress, true)
          await sleep(baseDelay * 2 ** Math.min(failures - 1, 5), signal)
        }
      }
      done.add(file.path)
      manifest.done = [...done]
      writeManifest(dir, manifest)
      progress.filesDone = done.size
      progress.doneBytes = doneBytes()
      this.emitProgress(progress, true)
    }
  }
}

/** Deletes a download's folder, but only one the app created (it holds the manifest of this repo). */
export async function removeDownloadFolder(dir: string, repoId: string): Promise<boolean> {
  const m = await readManifest(dir)
  if (!m || m.repoId !== repoId) return false
  await rm(dir, { recursive: true, force: true })
  return true
}
