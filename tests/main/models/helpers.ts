// A real AppContext for model tests whose model service is configured first (Hub endpoint, fast retries, a
// secrets key file in the temp folder), then the real handlers and dispatcher on top. Events are recorded.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { EventName, Events } from '../../../preload/contract'
import { createAppContext, type AppContext } from '../../../main/context'
import { createDispatcher, type Dispatch } from '../../../main/dispatch'
import { createHandlers } from '../../../main/handlers'
import { modelService, type ModelServiceOptions } from '../../../main/models/modelService'
import { createConfSettings } from '../../../main/settings/confSettings'

export interface ModelsApp {
  ctx: AppContext
  dispatch: Dispatch
  dataDir: string
  events: { event: EventName; payload: unknown }[]
  /** Every raw dispatcher answer, as JSON (to check nothing secret leaves main). */
  answers: string[]
  call<T = unknown>(channel: string, arg?: unknown): Promise<T>
  /** The error of a call that must fail. */
  fail(channel: string, arg?: unknown): Promise<{ code: string; message: string; details?: { problem?: string; [k: string]: unknown } }>
  close(): Promise<void>
  cleanup(): Promise<void>
}

export function tempDir(prefix = 'qt-models-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

export function modelsApp(opts: { dataDir?: string; endpoint?: string; service?: ModelServiceOptions; keyFile?: string } = {}): ModelsApp {
  const dataDir = opts.dataDir ?? tempDir()
  const ctx = createAppContext({ mode: 'browser', dataDir, settings: createConfSettings(dataDir), seed: false })
  const env: NodeJS.ProcessEnv = { ...process.env, QT_HF_ENDPOINT: opts.endpoint ?? 'http://127.0.0.1:9', QT_SECRET_KEY_FILE: opts.keyFile ?? join(dataDir, 'test-keys', 'secret.key') }
  delete env.QT_SECRET_KEY
  modelService(ctx, { env, retryDelayMs: 5, maxRetries: 3, stallMs: 5000, devices: async () => [], ...opts.service })
  const dispatch = createDispatcher(createHandlers(ctx, { engineBackends: () => ['cpu'] }), () => {})
  const events: ModelsApp['events'] = []
  ctx.events.onAny((event, payload) => events.push({ event, payload }))
  const answers: string[] = []
  const raw = async (channel: string, arg?: unknown) => {
    const r = await dispatch(channel, arg)
    answers.push(JSON.stringify(r))
    return r
  }
  let closed = false
  return {
    ctx,
    dispatch,
    dataDir,
    events,
    answers,
    async call<T>(channel: string, arg?: unknown): Promise<T> {
      const r = await raw(channel, arg)
      if (!r.ok) throw Object.assign(new Error(r.error.message), { code: r.error.code, details: r.error.details })
      return r.value as T
    },
    async fail(channel: string, arg?: unknown) {
      const r = await raw(channel, arg)
      if (r.ok) throw new Error(`${channel} succeeded but should have failed`)
      return r.error as Awaited<ReturnType<ModelsApp['fail']>>
    },
    async close() {
      if (closed) return
      closed = true
      await ctx.close()
    },
    async cleanup() {
      await this.close()
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true })
    },
  }
}

/** Polls until fn returns a truthy value (or throws after timeoutMs). */
export async function waitFor<T>(fn: () => T | Promise<T>, timeoutMs = 20_000, what = 'condition'): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (v) return v as NonNullable<T>
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

export type { Events }
