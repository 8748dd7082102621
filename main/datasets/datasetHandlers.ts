// dataset:* channels (quality report, import preview and import, export) and snapshots:* (versions).
// Files travel as base64 (browser mode has no file paths).
import { z } from 'zod'
import type { AppContext } from '../context'
import { notFound } from '../errors'
import type { Handlers } from '../handlerTypes'
import { datasetServices } from './datasetServices'
import { exportDataset } from './exportDataset'
import { importFile, previewImport } from './import/importFile'
import { MAX_FILE_BYTES } from './import/readTable'
import { createTokenCounter, templateFromInfo, type ModelResolver, type TokenCounter } from './quality/tokenLimit'
import { createSnapshot, diffSnapshot } from './snapshots'

type DatasetChannels =
  | 'dataset:check'
  | 'dataset:importPreview'
  | 'dataset:import'
  | 'dataset:export'
  | 'snapshots:create'
  | 'snapshots:list'
  | 'snapshots:diff'

const id = z.number().int().positive()
const column = z.number().int().min(0).max(10_000).nullable()
const base64 = z
  .string()
  .max(Math.ceil((MAX_FILE_BYTES * 4) / 3) + 8, `The file is larger than ${MAX_FILE_BYTES / 1024 / 1024} MB`)
const fileName = z.string().min(1).max(260)
const options = z
  .object({
    encoding: z.enum(['auto', 'utf-8', 'big5', 'gbk', 'utf-16le', 'utf-16be']).optional(),
    sheet: z.string().max(200).optional(),
    hasHeader: z.boolean().optional(),
    skipIncomplete: z.boolean().optional(),
    skipDuplicates: z.boolean().optional(),
    mode: z.enum(['append', 'replace']).optional(),
  })
  .optional()

function decodeBase64(s: string): Uint8Array {
  const buf = Buffer.from(s, 'base64')
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength)
}

/** The project's model from the models table (registered folder, template choice, readiness). */
function modelResolver(ctx: AppContext): ModelResolver {
  return (modelId) => {
    type ModelLike = { name: string; path: string; status: string; info?: Record<string, unknown> }
    const repos = ctx.repos() as unknown as { models?: { get(id: number): ModelLike | undefined } }
    if (!repos.models) return { name: '', dir: '', template: 'model', unavailable: 'Model details are not available in this build.' }
    const m = repos.models.get(modelId)
    if (!m) return null
    return {
      name: m.name,
      dir: m.path,
      template: templateFromInfo(m.info ?? {}),
      unavailable: m.status === 'ready' ? undefined : `The model ${m.name} is not ready yet (${m.status}).`,
    }
  }
}

export function datasetHandlers(ctx: AppContext, tokenCounter: TokenCounter = createTokenCounter(modelResolver(ctx))): Pick<Handlers, DatasetChannels> {
  const { editor, checker } = datasetServices(ctx)
  const mustProject = (projectId: number) => {
    const p = ctx.repos().projects.get(projectId)
    if (!p) throw notFound('Project', projectId)
    return p
  }
  return {
    'dataset:check': {
      schema: z.object({ projectId: id }),
      handle: async ({ projectId }) => {
        const project = mustProject(projectId)
        const rows = ctx.repos().qaPairs.listTexts(projectId)
        const tokens = await tokenCounter(project, rows.filter((r) => r.enabled))
        return checker.check(projectId, rows, project.language, tokens)
      },
    },
    'dataset:importPreview': {
      schema: z.object({ projectId: id, fileName, dataBase64: base64, options }),
      handle: async ({ projectId, fileName, dataBase64, options }) => {
        mustProject(projectId)
        return previewImport(fileName, decodeBase64(dataBase64), options)
      },
    },
    'dataset:import': {
      schema: z.object({
        projectId: id,
        fileName,
        dataBase64: base64,
        mapping: z.object({ question: column, answer: column, category: column, enabled: column }).optional(),
        options,
      }),
      handle: async ({ projectId, fileName, dataBase64, mapping, options }) => {
        mustProject(projectId)
        const importCtx = { editor, existing: () => ctx.repos().qaPairs.list(projectId) }
        return importFile(importCtx, projectId, fileName, decodeBase64(dataBase64), mapping, options)
      },
    },
    'dataset:export': {
      schema: z.object({ projectId: id, format: z.enum(['csv', 'xlsx', 'jsonl']), includeDisabled: z.boolean().optional() }),
      handle: ({ projectId, format, includeDisabled }) => {
        const project = mustProject(projectId)
        return exportDataset(project, ctx.repos().qaPairs.list(projectId), format, includeDisabled ?? format !== 'jsonl')
      },
    },
    'snapshots:create': {
      schema: z.object({ projectId: id }),
      handle: ({ projectId }) => {
        const { created: _created, ...snapshot } = createSnapshot(ctx.repos(), projectId)
        return snapshot
      },
    },
    'snapshots:list': {
      schema: z.object({ projectId: id }),
      handle: ({ projectId }) => {
        mustProject(projectId)
        return ctx.repos().snapshots.list(projectId)
      },
    },
    'snapshots:diff': {
      schema: z.object({ projectId: id, snapshotId: id }),
      handle: ({ projectId, snapshotId }) => diffSnapshot(ctx.repos(), projectId, snapshotId),
    },
  }
}
