// rows:* channels (the dataset editor's grid): list, edit, insert, delete, undo/redo and the Simplified ->
// Traditional conversion. Every change is one undoable step (rowEdits.ts).
import { z } from 'zod'
import type { AppContext } from '../context'
import { AppError, notFound } from '../errors'
import type { Handlers } from '../handlerTypes'
import { datasetServices } from './datasetServices'
import { MAX_CATEGORY_CHARS, MAX_ROWS_PER_REQUEST, MAX_TEXT_CHARS } from './limits'
import { findSimplified, toTraditionalTaiwan } from './quality/chinese'

const id = z.number().int().positive()
const text = z.string().max(MAX_TEXT_CHARS, `Use at most ${MAX_TEXT_CHARS} characters`)
const fields = {
  question: text.optional(),
  answer: text.optional(),
  category: z.string().max(MAX_CATEGORY_CHARS, `Use at most ${MAX_CATEGORY_CHARS} characters`).optional(),
  enabled: z.boolean().optional(),
}
const project = z.object({ projectId: id })

type RowChannels = 'rows:list' | 'rows:history' | 'rows:update' | 'rows:insert' | 'rows:delete' | 'rows:undo' | 'rows:redo' | 'rows:convertChinese'

export function rowHandlers(ctx: AppContext): Pick<Handlers, RowChannels> {
  const { editor } = datasetServices(ctx)
  const mustProject = (projectId: number) => {
    const p = ctx.repos().projects.get(projectId)
    if (!p) throw notFound('Project', projectId)
    return p
  }
  return {
    'rows:list': {
      schema: project,
      handle: ({ projectId }) => {
        mustProject(projectId)
        return ctx.repos().qaPairs.list(projectId)
      },
    },
    'rows:history': { schema: project, handle: ({ projectId }) => editor.history(projectId) },
    'rows:update': {
      schema: z.object({
        projectId: id,
        changes: z.array(z.object({ id, ...fields })).max(MAX_ROWS_PER_REQUEST),
        label: z.enum(['edit', 'paste', 'clear', 'toggle']).optional(),
        mergeKey: z.string().min(1).max(100).optional(),
        append: z.object({ rows: z.array(z.object(fields)).min(1).max(MAX_ROWS_PER_REQUEST), afterId: id.nullable() }).optional(),
      }),
      handle: ({ projectId, changes, label, mergeKey, append }) => {
        if (changes.length === 0 && !append) throw new AppError('INVALID_ARGUMENT', 'Nothing to update: give at least one change.')
        return editor.update(projectId, changes, label ?? 'edit', mergeKey, append)
      },
    },
    'rows:insert': {
      schema: z.object({
        projectId: id,
        rows: z.array(z.object(fields)).min(1).max(MAX_ROWS_PER_REQUEST),
        afterId: id.nullable().optional(),
        label: z.enum(['insert', 'paste']).optional(),
      }),
      handle: ({ projectId, rows, afterId, label }) => editor.insert(projectId, rows, afterId ?? null, label ?? 'insert'),
    },
    'rows:delete': {
      schema: z.object({ projectId: id, ids: z.array(id).min(1).max(MAX_ROWS_PER_REQUEST) }),
      handle: ({ projectId, ids }) => editor.delete(projectId, ids),
    },
    'rows:undo': { schema: project, handle: ({ projectId }) => editor.undo(projectId) },
    'rows:redo': { schema: project, handle: ({ projectId }) => editor.redo(projectId) },
    'rows:convertChinese': {
      schema: z.object({ projectId: id, ids: z.array(id).max(MAX_ROWS_PER_REQUEST).optional() }),
      handle: ({ projectId, ids }) => {
        const p = mustProject(projectId)
        if (p.language !== 'zh-TW') throw new AppError('UNSUPPORTED', 'Conversion to Traditional Chinese is for zh-TW projects.')
        const all = ctx.repos().qaPairs.list(projectId)
        const wanted = ids ? new Set(ids) : null
        const changes = []
        for (const r of all) {
          if (wanted && !wanted.has(r.id)) continue
          const change: { id: number; question?: string; answer?: string; category?: string } = { id: r.id }
          for (const f of ['question', 'answer', 'category'] as const) {
            if (findSimplified(r[f]).length === 0) continue
            const converted = toTraditionalTaiwan(r[f])
            if (converted !== r[f]) change[f] = converted
          }
          if (Object.keys(change).length > 1) changes.push(change)
        }
        if (wanted && wanted.size > 0 && !all.some((r) => wanted.has(r.id))) throw notFound('Row', [...wanted][0]!)
        return editor.update(projectId, changes, 'convert')
      },
    },
  }
}
