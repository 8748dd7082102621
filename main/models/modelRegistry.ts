// The registered models as the rest of the app sees them. Other domains call:
//   getModel(ctx, id)       -> { path, templateChoice, details, ... } of a ready model, or a plain AppError
//   listModels(ctx)         -> every ModelEntry (what the Models page shows)
//   ensureDemoModel(ctx)    -> the bundled tiny demo model (demoModel.ts)
// info_json holds StoredModelInfo (below); the download manager keeps live progress in memory.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { AppErrorInfo, DownloadProgress, ModelDetails, ModelEntry, ModelSource, ModelTemplateChoice } from '../../preload/contract'
import type { AppContext } from '../context'
import type { ModelRow } from '../db/modelsRepo'
import { AppError, notFound } from '../errors'
import type { TemplateChoice } from '../tokenizer/ChatFormat'

/** What info_json holds for a model. */
export interface StoredModelInfo {
  details?: ModelDetails
  /** The last error (download failure, a folder that no longer validates). */
  error?: AppErrorInfo | null
  /** A download the user paused. */
  paused?: boolean
  /** The last known progress of a download (live progress is in memory). */
  download?: DownloadProgress | null
  /** Demo model generator version (demoModel.ts). */
  demoVersion?: number
}

export function storedInfo(row: ModelRow): StoredModelInfo {
  return row.info as StoredModelInfo
}

/** Where downloads (and the demo) go: settings.modelsDir, else <data dir>/models. */
export function modelsRoot(ctx: AppContext): string {
  const s = ctx.settings.get().modelsDir.trim()
  return s !== '' ? s : join(ctx.dataDir, 'models')
}

/** The marker/manifest file in folders the app created (downloads, the demo): only those are ever deleted. */
export const MODEL_MARKER = '.qt-model.json'

export function toModelEntry(row: ModelRow, live: DownloadProgress | null = null): ModelEntry {
  const info = storedInfo(row)
  const missing = row.status === 'ready' && !existsSync(join(row.path, 'config.json'))
  return {
    id: row.id,
    name: row.name,
    source: row.source,
    path: row.path,
    repoId: row.repoId,
    revision: row.revision,
    architecture: row.architecture,
    sizeBytes: row.sizeBytes,
    status: row.status,
    addedAt: row.addedAt,
    details: info.details ?? null,
    download: live ?? info.download ?? null,
    error: info.error ?? null,
    paused: info.paused === true,
    missing,
    deleteRemovesFiles: row.source !== 'local',
    usedByProjects: row.usedByProjects,
  }
}

export function listModels(ctx: AppContext): ModelEntry[] {
  return ctx.repos().models.list().map((r) => toModelEntry(r))
}

/** A ready model, for training, chat and token counting. */
export interface ModelForUse {
  id: number
  name: string
  source: ModelSource
  /** The Hugging Face model folder (config.json, tokenizer files, safetensors). */
  path: string
  architecture: string
  /** Pass to chatFormatFor(await loadTokenizer(path), templateChoice). */
  templateChoice: TemplateChoice
  details: ModelDetails
}

/** The model with this id, ready to load; throws a plain AppError (NOT_FOUND, BUSY, UNSUPPORTED) otherwise. */
export function getModel(ctx: AppContext, id: number): ModelForUse {
  const row = ctx.repos().models.get(id)
  if (!row) throw notFound('Model', id)
  const info = storedInfo(row)
  if (row.status === 'downloading') throw new AppError('BUSY', `The model "${row.name}" is still downloading. Wait until it is ready.`, { problem: 'notReady' })
  if (row.status === 'failed' || !info.details) {
    throw new AppError('UNSUPPORTED', `The model "${row.name}" is not usable: ${info.error?.message ?? 'its download did not finish'}. Open the Models page to retry or pick another model.`, {
      problem: 'notReady',
    })
  }
  if (!existsSync(join(row.path, 'config.json'))) {
    throw new AppError('NOT_FOUND', `The folder of the model "${row.name}" (${row.path}) is gone. Put it back, or remove the model on the Models page and import it from its new place.`, {
      problem: 'missing',
    })
  }
  const choice: ModelTemplateChoice | null = info.details.template.choice
  if (choice === null) {
    throw new AppError('UNSUPPORTED', `The model "${row.name}" has no usable chat template and neither built-in template ("llama3", "chatml") fits its tokenizer. Pick another model.`, {
      problem: 'noTemplate',
    })
  }
  return { id: row.id, name: row.name, source: row.source, path: row.path, architecture: row.architecture, templateChoice: choice, details: info.details }
}
