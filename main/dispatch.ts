// The dispatcher both transports share: unknown channel -> UNKNOWN_CHANNEL, malformed argument ->
// INVALID_ARGUMENT (with the field issues), thrown AppError -> its code, anything else -> INTERNAL.
// It never throws, so a bad request can never take main down.
import { CHANNELS, type Channel, type Result } from '../preload/contract'
import { AppError, toErrorInfo } from './errors'
import type { Handler, Handlers } from './handlerTypes'

const known = new Set<string>(CHANNELS)

export type Dispatch = (channel: string, arg: unknown) => Promise<Result<unknown>>

export function isChannel(name: unknown): name is Channel {
  return typeof name === 'string' && known.has(name)
}

export function createDispatcher(handlers: Handlers, log: (msg: string, err?: unknown) => void = console.error): Dispatch {
  return async (channel, arg) => {
    if (!isChannel(channel)) {
      return { ok: false, error: { code: 'UNKNOWN_CHANNEL', message: `Unknown channel: ${String(channel).slice(0, 80)}` } }
    }
    const handler = handlers[channel] as unknown as Handler<Channel>
    const parsed = handler.schema.safeParse(arg)
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }))
      const summary = issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ')
      return { ok: false, error: { code: 'INVALID_ARGUMENT', message: `Invalid argument for ${channel}: ${summary}`, details: issues } }
    }
    try {
      const value = await handler.handle(parsed.data as never)
      return { ok: true, value: value === undefined ? null : value }
    } catch (err) {
      const info = toErrorInfo(err)
      if (!(err instanceof AppError)) log(`[dispatch] ${channel} failed`, err)
      return { ok: false, error: info }
    }
  }
}
