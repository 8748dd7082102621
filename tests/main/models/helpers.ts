// A real AppContext for model tests whose model service is configured first (Hub endpoint, fast retries, a
// secrets key file in the temp folder), then the real handlers and dispatcher on top. Events are recorded.
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import type { Events } from '../../../preload/contract'
import type { AppContext } from '../../../main/context'
import type { Dispatch } from '../../../main/dispatch'
import { modelService, type ModelServiceOptions } from '../../../main/models/modelService'
import { callersOf, recordEvents, tempDir, testContext, testDispatcher, type CallError, type EventLog } from '../../helpers/tempContext'

export interface ModelsApp {
  ctx: AppContext
  dispatch: Dispatch
  dataDir: string
  events: EventLog['events']
  /** Every raw dispatcher answer, as JSON (to check nothing secret leaves main). */
  answers: string[]
  call<T = unknown>(channel: string, arg?: unknown): Promise<T>
  /** The error of a call that must fail. */
  fail(channel: string, arg?: unknown): Promise<CallError & { details?: { problem?: string; [k: string]: unknown } }>
  close(): Promise<void>
  cleanup(): Promise<void>
}

export function modelsApp(opts: { dataDir?: string; endpoint?: string; service?: ModelServiceOptions; keyFile?: string } = {}): ModelsApp {
  const dataDir = opts.dataDir ?? tempDir('qt-models-')
  const ctx = testContext(dataDir)
  const env: NodeJS.ProcessEnv = { ...process.env, QT_HF_ENDPOINT: opts.endpoint ?? 'http://127.0.0.1:9', QT_SECRET_KEY_FILE: opts.keyFile ?? join(dataDir, 'test-keys', 'secret.key') }
  delete env.QT_SECRET_KEY
  modelService(ctx, { env, retryDelayMs: 5, maxRetries: 3, stallMs: 5000, devices: async () => [], ...opts.service })
  const dispatch = testDispatcher(ctx)
  const { events } = recordEvents(ctx)
  const answers: string[] = []
  const { call, fail } = callersOf(async (channel, arg) => {
    const r = await dispatch(channel, arg)
    answers.push(JSON.stringify(r))
    return r
  })
  let closed = false
  return {
    ctx,
    dispatch,
    dataDir,
    events,
    answers,
    call,
    fail: (channel, arg) => fail(channel, arg) as ReturnType<ModelsApp['fail']>,
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
