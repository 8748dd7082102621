// projects:* channels. Names are unique (case-insensitive) so the CLI can address a project by name.
import { z } from 'zod'
import type { Project } from '../../preload/contract'
import type { AppContext } from '../context'
import { AppError, notFound } from '../errors'
import type { Handlers } from '../handlerTypes'
import { DEFAULT_SYSTEM_PROMPT } from './defaults'

const id = z.number().int().positive()
const name = z
  .string()
  .transform((s) => s.trim())
  .pipe(z.string().min(1, 'The name cannot be empty').max(120, 'Use at most 120 characters'))
const language = z.enum(['zh-TW', 'en'])

type ProjectChannels = 'projects:list' | 'projects:get' | 'projects:create' | 'projects:rename' | 'projects:update' | 'projects:delete'

function isUniqueViolation(err: unknown): boolean {
  return err instanceof Error && 'code' in err && (err as { code: string }).code === 'SQLITE_CONSTRAINT_UNIQUE'
}

export function projectHandlers(ctx: AppContext): Pick<Handlers, ProjectChannels> {
  const must = (pid: number): Project => {
    const p = ctx.repos().projects.get(pid)
    if (!p) throw notFound('Project', pid)
    return p
  }
  const nameTaken = (n: string) => new AppError('CONFLICT', `A project named "${n}" already exists. Choose another name.`)

  return {
    'projects:list': { schema: z.void(), handle: () => ctx.repos().projects.list() },
    'projects:get': { schema: z.object({ id }), handle: ({ id }) => must(id) },
    'projects:create': {
      schema: z.object({ name, language: language.optional(), systemPrompt: z.string().max(20_000).optional() }),
      handle: ({ name, language, systemPrompt }) => {
        const lang = language ?? ctx.settings.get().language
        try {
          const pid = ctx.repos().projects.create({ name, language: lang, systemPrompt: systemPrompt ?? DEFAULT_SYSTEM_PROMPT[lang] })
          ctx.events.emit('projects:changed', { projectId: pid })
          return must(pid)
        } catch (err) {
          if (isUniqueViolation(err)) throw nameTaken(name)
          throw err
        }
      },
    },
    'projects:rename': {
      schema: z.object({ id, name }),
      handle: ({ id, name }) => {
        must(id)
        try {
          ctx.repos().projects.rename(id, name)
        } catch (err) {
          if (isUniqueViolation(err)) throw nameTaken(name)
          throw err
        }
        ctx.events.emit('projects:changed', { projectId: id })
        return must(id)
      },
    },
    'projects:update': {
      schema: z.object({
        id,
        systemPrompt: z.string().max(20_000).optional(),
        language: language.optional(),
        modelId: id.nullable().optional(),
      }),
      handle: ({ id, ...patch }) => {
        must(id)
        ctx.repos().projects.update(id, patch)
        ctx.events.emit('projects:changed', { projectId: id })
        return must(id)
      },
    },
    'projects:delete': {
      schema: z.object({ id }),
      handle: ({ id }) => {
        must(id)
        ctx.repos().projects.delete(id)
        if (ctx.settings.get().lastProjectId === id) ctx.settings.set({ lastProjectId: null })
        ctx.events.emit('projects:changed', { projectId: null })
      },
    },
  }
}
