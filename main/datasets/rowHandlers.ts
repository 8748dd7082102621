// rows:* channels (the dataset editor's grid).
import { z } from 'zod'
import type { AppContext } from '../context'
import { notFound } from '../errors'
import type { Handlers } from '../handlerTypes'

export function rowHandlers(ctx: AppContext): Pick<Handlers, 'rows:list'> {
  return {
    'rows:list': {
      schema: z.object({ projectId: z.number().int().positive() }),
      handle: ({ projectId }) => {
        if (!ctx.repos().projects.get(projectId)) throw notFound('Project', projectId)
        return ctx.repos().qaPairs.list(projectId)
      },
    },
  }
}
