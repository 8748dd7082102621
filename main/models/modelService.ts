// The models domain of one AppContext: import of local folders, Hub downloads (HubDownloads), the access token
// (SecretStore), delete, template choice and the devices the estimates are compared with. One instance per context
// (modelService(ctx)); it stops its downloads when the context closes, and resumes interrupted ones when created.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { ComputeDevice, HubTokenStatus, ModelEntry, ModelFolderReport, ModelTemplateChoice } from '../../preload/contract'
import type { AppContext } from '../context'
import { AppError, notFound } from '../errors'
import { perContext } from '../perContext'
import { ensureDemoModel } from './demoModel'
import { HubDownloads, readManifest, removeDownloadFolder } from './hub/HubDownloads'
import { hubEndpoint, isRepoId, normalizeRepoId } from './hub/hubClient'
import { inspectModelFolder } from './inspectModelFolder'
import { modelsRoot, storedInfo, toModelEntry, type StoredModelInfo } from './modelRegistry'
import { createFileSecretStore, type SecretStore } from './secrets/SecretStore'

export const HF_TOKEN_SECRET = 'huggingface-token'

export interface ModelServiceOptions {
  secrets?: SecretStore
  /** Desktop: shows a folder dialog. Absent in browser mode. */
  pickFolder?: () => Promise<string | null>
  env?: NodeJS.ProcessEnv
  /** Download tuning (tests). */
  retryDelayMs?: number
  maxRetries?: number
  stallMs?: number
  /** Compute devices (default: the engine facade's devices()). */
  devices?: () => Promise<ComputeDevice[]>
}

async function engineDevices(): Promise<ComputeDevice[]> {
  const { devices } = await import('../engine/Engine')
  return (await devices()).map((d) => ({ backend: d.backend, index: d.index, name: d.name, totalBytes: d.totalBytes, freeBytes: d.freeBytes }))
}

export class ModelService {
  readonly secrets: SecretStore
  readonly endpoint: string
  readonly downloads: HubDownloads
  private devicesCache: { at: number; value: { devices: ComputeDevice[]; note: string | null } } | null = null

  constructor(
    private readonly ctx: AppContext,
    private readonly opts: ModelServiceOptions = {},
  ) {
    const env = opts.env ?? process.env
    this.secrets = opts.secrets ?? createFileSecretStore({ dir: ctx.dataDir, env })
    this.endpoint = hubEndpoint(env)
    this.downloads = new HubDownloads(ctx, {
      endpoint: this.endpoint,
      token: () => this.readToken(),
      retryDelayMs: opts.retryDelayMs,
      maxRetries: opts.maxRetries,
      stallMs: opts.stallMs,
    })
    ctx.onClose(() => this.downloads.close())
  }

  private readToken(): string | null {
    try {
      return this.secrets.get(HF_TOKEN_SECRET)
    } catch (err) {
      console.error('[models] cannot read the saved Hugging Face token:', err instanceof Error ? err.message : 'unknown error')
      return null
    }
  }

  /** Downloads left 'downloading' by the last run (the app was closed or crashed) continue. */
  resumeInterrupted(): void {
    if (this.ctx.status.state !== 'ready') return
    for (const row of this.ctx.repos().models.listByStatus('downloading')) {
      if (row.source === 'hub') this.downloads.start(row.id)
    }
  }

  entry(id: number): ModelEntry {
    const row = this.ctx.repos().models.get(id)
    if (!row) throw notFound('Model', id)
    return toModelEntry(row, this.downloads.progress(id))
  }

  async list(): Promise<ModelEntry[]> {
    try {
      await ensureDemoModel(this.ctx)
    } catch (err) {
      console.error('[models] the demo model could not be created:', err)
    }
    return this.ctx
      .repos()
      .models.list()
      .map((r) => toModelEntry(r, this.downloads.progress(r.id)))
  }

  async inspectFolder(path: string): Promise<ModelFolderReport> {
    const r = await inspectModelFolder(path)
    const existing = this.ctx.repos().models.getByPath(r.path)
    return { path: r.path, suggestedName: r.suggestedName, sizeBytes: r.sizeBytes, details: r.details, registeredId: existing?.id ?? null }
  }

  async importFolder(path: string, name?: string): Promise<ModelEntry> {
    const r = await inspectModelFolder(path)
    const repo = this.ctx.repos().models
    const existing = repo.getByPath(r.path)
    if (existing) {
      throw new AppError('CONFLICT', `This folder is already registered as "${existing.name}".`, { problem: 'alreadyRegistered', id: existing.id })
    }
    const info: StoredModelInfo = { details: r.details, error: null }
    const id = repo.create({
      name: (name ?? '').trim() || r.suggestedName,
      path: r.path,
      source: 'local',
      architecture: r.details.architecture,
      sizeBytes: r.sizeBytes,
      status: 'ready',
      info: info as Record<string, unknown>,
    })
    this.ctx.events.emit('models:changed', { modelId: id })
    return this.entry(id)
  }

  async delete(id: number): Promise<{ removedFiles: boolean }> {
    const row = this.ctx.repos().models.get(id)
    if (!row) throw notFound('Model', id)
    if (row.source === 'demo') {
      throw new AppError('FORBIDDEN', 'The demo model is built in (2 MB) and cannot be removed; it is rebuilt whenever it is needed.', { problem: 'demo' })
    }
    let removedFiles = false
    if (row.source === 'hub') {
      await this.downloads.stop(id, 'cancel')
      removedFiles = row.repoId ? await removeDownloadFolder(row.path, row.repoId) : false
    }
    this.ctx.repos().models.delete(id)
    this.ctx.events.emit('models:changed', { modelId: id })
    this.ctx.events.emit('projects:changed', { projectId: null })
    return { removedFiles }
  }

  setTemplate(id: number, template: ModelTemplateChoice): ModelEntry {
    const row = this.ctx.repos().models.get(id)
    if (!row) throw notFound('Model', id)
    const info = storedInfo(row)
    const t = info.details?.template
    if (!info.details || !t) throw new AppError('BUSY', `The model "${row.name}" is not ready yet.`)
    const ok = template === 'model' ? t.modelTemplateUsable : t.suggested.includes(template)
    if (!ok) {
      throw new AppError(
        'UNSUPPORTED',
        template === 'model'
          ? `The model "${row.name}" has no usable chat template of its own. Choose ${t.suggested.map((s) => `"${s}"`).join(' or ') || 'another model'}.`
          : `The built-in template "${template}" does not fit the tokenizer of "${row.name}" (its control tokens are missing).`,
      )
    }
    const details = { ...info.details, template: { ...t, choice: template } }
    this.ctx.repos().models.update(id, { info: { ...info, details } as Record<string, unknown> })
    this.ctx.events.emit('models:changed', { modelId: id })
    return this.entry(id)
  }

  async pickFolder(): Promise<{ supported: boolean; path: string | null }> {
    if (!this.opts.pickFolder) return { supported: false, path: null }
    return { supported: true, path: await this.opts.pickFolder() }
  }

  async devices(): Promise<{ devices: ComputeDevice[]; note: string | null }> {
    if (this.devicesCache && Date.now() - this.devicesCache.at < 60_000) return this.devicesCache.value
    let value: { devices: ComputeDevice[]; note: string | null }
    try {
      value = { devices: await (this.opts.devices ?? engineDevices)(), note: null }
    } catch (err) {
      value = { devices: [], note: err instanceof Error ? err.message : String(err) }
    }
    this.devicesCache = { at: Date.now(), value }
    return value
  }

  // ---- Hub --------------------------------------------------------------------------------------

  async download(repoInput: string, revision?: string): Promise<ModelEntry> {
    const repoId = normalizeRepoId(repoInput)
    if (!isRepoId(repoId)) {
      throw new AppError('INVALID_ARGUMENT', `"${repoInput.trim()}" is not a Hugging Face repo id. Type it as owner/name, e.g. Qwen/Qwen2.5-0.5B-Instruct.`, { problem: 'badRepoId' })
    }
    const repo = this.ctx.repos().models
    const dir = join(modelsRoot(this.ctx), repoId.replace('/', '--'))
    const existing = repo.getByPath(dir)
    if (existing) {
      if (existing.status === 'ready') {
        throw new AppError('CONFLICT', `${repoId} is already downloaded ("${existing.name}").`, { problem: 'alreadyDownloaded', id: existing.id })
      }
      this.downloads.start(existing.id)
      return this.entry(existing.id)
    }
    if (existsSync(dir)) {
      // A folder of that name that we did not create (or whose row was lost): resume only our own download.
      const m = await readManifest(dir)
      if (!m || m.repoId !== repoId) {
        throw new AppError('CONFLICT', `${dir} already exists and was not created by a QA Tuner download. Move it away, or import it as a local folder.`, { problem: 'folderExists' })
      }
    }
    const id = repo.create({ name: repoId, path: dir, source: 'hub', repoId, revision: null, status: 'downloading', info: {} })
    this.downloads.start(id, revision && revision.trim() ? revision.trim() : 'main')
    return this.entry(id)
  }

  async pause(id: number): Promise<ModelEntry> {
    const row = this.ctx.repos().models.get(id)
    if (!row) throw notFound('Model', id)
    await this.downloads.stop(id, 'pause')
    return this.entry(id)
  }

  resume(id: number): ModelEntry {
    const row = this.ctx.repos().models.get(id)
    if (!row) throw notFound('Model', id)
    if (row.source !== 'hub') throw new AppError('INVALID_ARGUMENT', `"${row.name}" is not a download.`)
    if (row.status === 'ready') return this.entry(id)
    this.downloads.start(id)
    return this.entry(id)
  }

  async cancel(id: number): Promise<void> {
    const row = this.ctx.repos().models.get(id)
    if (!row) throw notFound('Model', id)
    if (row.source !== 'hub') throw new AppError('INVALID_ARGUMENT', `"${row.name}" is not a download.`)
    if (row.status === 'ready') throw new AppError('CONFLICT', `"${row.name}" is already downloaded; delete it instead.`)
    await this.delete(id)
  }

  tokenStatus(): HubTokenStatus {
    return { stored: this.readToken() !== null, ...this.secrets.describe(), endpoint: this.endpoint }
  }

  setToken(token: string): HubTokenStatus {
    this.secrets.set(HF_TOKEN_SECRET, token.trim())
    return this.tokenStatus()
  }

  clearToken(): HubTokenStatus {
    this.secrets.delete(HF_TOKEN_SECRET)
    return this.tokenStatus()
  }
}

/** The context's model service (created, and interrupted downloads resumed, on first call). */
export const modelService = perContext(
  (ctx, opts?: ModelServiceOptions) => new ModelService(ctx, opts),
  (started) =>
    setImmediate(() => {
      try {
        started.resumeInterrupted()
      } catch {
        /* the context closed already */
      }
    }),
)
