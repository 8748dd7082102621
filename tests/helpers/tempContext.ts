// A real AppContext on a throwaway data directory (real SQLite file, real conf settings file), and the pieces the
// domain test helpers (tests/main/{chat,training,models}/helpers.ts) build theirs from: the context, the real handlers
// behind a dispatcher, call/fail over it, and an event recorder.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { EventName, Events } from '../../preload/contract'
import { createAppContext, type AppContext } from '../../main/context'
import { createDispatcher, type Dispatch } from '../../main/dispatch'
import { createHandlers } from '../../main/handlers'
import { createConfSettings } from '../../main/settings/confSettings'

export function tempDir(prefix = 'qt-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

/** A browser-mode context on dataDir with conf settings (the sample project only when seed is true). */
export function testContext(dataDir: string, seed = false): AppContext {
  return createAppContext({ mode: 'browser', dataDir, settings: createConfSettings(dataDir), seed })
}

/** The real handlers of ctx behind a dispatcher (the CPU as the only engine backend, errors not logged). Services a
 *  test configures itself (trainingServiceOf(ctx, options), ...) must be created before this. */
export function testDispatcher(ctx: AppContext): Dispatch {
  return createDispatcher(createHandlers(ctx, { engineBackends: () => ['cpu'] }), () => {})
}

export interface CallError {
  code: string
  message: string
  details?: unknown
}

export interface Callers {
  /** Calls a channel and returns its value, throwing (with code and details) on `{ ok: false }`. */
  call<T = unknown>(channel: string, arg?: unknown): Promise<T>
  /** The error of a call that must fail (throws when it succeeds). */
  fail(channel: string, arg?: unknown): Promise<CallError>
}

/** call and fail over a dispatcher; `label` puts the channel in front of a failed call's message. */
export function callersOf(dispatch: Dispatch, opts: { label?: boolean } = {}): Callers {
  return {
    async call<T>(channel: string, arg?: unknown): Promise<T> {
      const r = await dispatch(channel, arg)
      if (!r.ok) throw Object.assign(new Error(opts.label ? `${channel}: ${r.error.message}` : r.error.message), { code: r.error.code, details: r.error.details })
      return r.value as T
    },
    async fail(channel: string, arg?: unknown): Promise<CallError> {
      const r = await dispatch(channel, arg)
      if (r.ok) throw new Error(`${channel} succeeded but should have failed`)
      return r.error
    },
  }
}

export interface EventLog {
  /** Every event the context emitted, in order. */
  events: { event: EventName; payload: unknown }[]
  eventsOf<E extends EventName>(event: E): Events[E][]
}

export function recordEvents(ctx: AppContext): EventLog {
  const events: EventLog['events'] = []
  ctx.events.onAny((event, payload) => events.push({ event, payload }))
  return { events, eventsOf: <E extends EventName>(event: E) => events.filter((e) => e.event === event).map((e) => e.payload as Events[E]) }
}

export interface TempApp {
  ctx: AppContext
  dispatch: Dispatch
  dataDir: string
  /** Calls a channel and returns its value, throwing on `{ ok: false }`. */
  call<T = unknown>(channel: string, arg?: unknown): Promise<T>
  cleanup(): Promise<void>
}

export function tempApp(opts: { seed?: boolean; dataDir?: string } = {}): TempApp {
  const dataDir = opts.dataDir ?? tempDir()
  const ctx = testContext(dataDir, opts.seed ?? false)
  const dispatch = testDispatcher(ctx)
  return {
    ctx,
    dispatch,
    dataDir,
    call: callersOf(dispatch).call,
    async cleanup() {
      await ctx.close()
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true })
    },
  }
}
