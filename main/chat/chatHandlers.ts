// chat:*, chats:* and learn:* channels. One ChatService and LearnCheckService per app context, sharing one
// ChatEngine (one engine job at a time) on the context's engine host.
import { z } from 'zod'
import type { ChatAdapterRef, SamplingSettings } from '../../preload/contract'
import type { AppContext } from '../context'
import { engineOf } from '../engine/host/engineForContext'
import type { Handlers } from '../handlerTypes'
import { perContext } from '../perContext'
import { ChatService, MAX_QUESTION_CHARS, type ChatServiceOptions } from './ChatService'
import { LearnCheckService, MAX_PER_SPLIT } from './LearnCheckService'
import { SAMPLING_LIMITS } from './sampling'

type ChatChannels =
  | 'chat:options' | 'chats:list' | 'chats:get' | 'chats:create' | 'chats:update' | 'chats:delete' | 'chat:send' | 'chat:edit' | 'chat:regenerate'
  | 'chat:stop' | 'learn:start' | 'learn:cancel' | 'learn:list' | 'learn:get' | 'learn:delete'

export interface ChatServices {
  chat: ChatService
  checks: LearnCheckService
}

/** The context's chat services: created once (options apply to that first call); answers and checks left
 *  unfinished by a previous process are marked interrupted; everything running stops when the context closes. */
export const chatServicesOf = perContext(
  (ctx, options?: ChatServiceOptions): ChatServices => {
    const chat = new ChatService(ctx, engineOf(ctx), options)
    return { chat, checks: new LearnCheckService(ctx, chat.engine, options?.log) }
  },
  ({ chat, checks }, ctx) => {
    ctx.onClose(async () => {
      await checks.close()
      await chat.close()
    })
    if (ctx.status.state === 'ready') {
      chat.recoverInterrupted()
      checks.recoverInterrupted()
    }
  },
)

const id = z.number().int().positive()

const adapterRef = z.union([z.null(), z.object({ runId: id, checkpointId: id.nullable() }).strict()]) as z.ZodType<ChatAdapterRef>

const sampling = z
  .object({
    greedy: z.boolean(),
    temperature: z.number().min(0).max(SAMPLING_LIMITS.temperature),
    topP: z.number().gt(0).max(1),
    topK: z.number().int().min(0).max(SAMPLING_LIMITS.topK),
    maxNewTokens: z.number().int().min(1).max(SAMPLING_LIMITS.maxNewTokens),
    repetitionPenalty: z.number().min(1).max(SAMPLING_LIMITS.repetitionPenalty),
  })
  .strict()
  .partial() as z.ZodType<Partial<SamplingSettings>>

const question = z.string().max(MAX_QUESTION_CHARS * 2)

export function chatHandlers(ctx: AppContext): Pick<Handlers, ChatChannels> {
  const svc = () => chatServicesOf(ctx)
  if (ctx.status.state === 'ready') svc()
  return {
    'chat:options': { schema: z.object({ projectId: id }).strict(), handle: ({ projectId }) => svc().chat.options(projectId) },
    'chats:list': { schema: z.object({ projectId: id }).strict(), handle: ({ projectId }) => svc().chat.list(projectId) },
    'chats:get': { schema: z.object({ id }).strict(), handle: ({ id }) => svc().chat.get(id) },
    'chats:create': {
      schema: z
        .object({
          projectId: id,
          mode: z.enum(['chat', 'compare']).optional(),
          modelId: id.nullable().optional(),
          adapter: adapterRef.optional(),
          sampling: sampling.optional(),
          title: z.string().max(200).optional(),
        })
        .strict(),
      handle: (req) => svc().chat.create(req),
    },
    'chats:update': {
      schema: z
        .object({ id, title: z.string().max(200).optional(), modelId: id.nullable().optional(), adapter: adapterRef.optional(), sampling: sampling.optional() })
        .strict(),
      handle: (req) => svc().chat.update(req),
    },
    'chats:delete': { schema: z.object({ id }).strict(), handle: ({ id }) => svc().chat.delete(id) },
    'chat:send': { schema: z.object({ chatId: id, content: question }).strict(), handle: (req) => svc().chat.send(req) },
    'chat:edit': { schema: z.object({ chatId: id, messageId: id, content: question }).strict(), handle: (req) => svc().chat.edit(req) },
    'chat:regenerate': { schema: z.object({ chatId: id }).strict(), handle: (req) => svc().chat.regenerate(req) },
    'chat:stop': { schema: z.object({ chatId: id }).strict(), handle: ({ chatId }) => svc().chat.stop(chatId) },
    'learn:start': {
      schema: z
        .object({
          runId: id,
          checkpointId: id.nullable().optional(),
          perSplit: z.number().int().min(1).max(MAX_PER_SPLIT).optional(),
          maxNewTokens: z.number().int().min(8).max(4096).optional(),
        })
        .strict(),
      handle: (req) => svc().checks.start(req),
    },
    'learn:cancel': { schema: z.object({ id }).strict(), handle: ({ id }) => svc().checks.cancel(id) },
    'learn:list': {
      schema: z
        .object({ runId: id.optional(), projectId: id.optional() })
        .strict()
        .refine((v) => v.runId !== undefined || v.projectId !== undefined, { message: 'Give a runId or a projectId.' }),
      handle: (req) => svc().checks.list(req),
    },
    'learn:get': { schema: z.object({ id }).strict(), handle: ({ id }) => svc().checks.get(id) },
    'learn:delete': { schema: z.object({ id }).strict(), handle: ({ id }) => svc().checks.delete(id) },
  }
}
