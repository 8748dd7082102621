// Training through the BUILT browser-mode server (out/main/serve.js and its built engine host out/main/engineHost.js),
// over the HTTP API the UI uses: a run on the demo model; kill -9 of the engine host mid-run (the run is marked, the
// server keeps answering, resume completes); kill -9 of the whole server mid-run (after a restart the run is
// interrupted with a resume offer, and resume completes). The Training page's UI flows come with the page itself.
import { expect, test } from '@playwright/test'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { EngineStatus, ModelEntry, Project, Run } from '../../preload/contract'
import { newDataDir, startServer, type TestServer } from './server'

let server: TestServer | undefined
test.afterEach(async () => {
  await server?.stop()
  server = undefined
})

async function call<T>(s: TestServer, channel: string, arg?: unknown): Promise<T> {
  const res = await fetch(`${s.base}/api/${channel}`, {
    method: 'POST',
    headers: { 'x-qt-token': s.token, 'Content-Type': 'application/json' },
    body: JSON.stringify({ arg }),
  })
  const r = (await res.json()) as { ok: boolean; value?: T; error?: { message: string } }
  if (!r.ok) throw new Error(`${channel}: ${r.error?.message}`)
  return r.value as T
}

async function until<T>(f: () => Promise<T>, ok: (v: T) => boolean, what: string, ms = 90_000): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = await f()
    if (ok(v)) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v).slice(0, 400)}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function setup(s: TestServer): Promise<{ projectId: number; modelId: number }> {
  const project = (await call<Project[]>(s, 'projects:list'))[0]
  const models = await until(() => call<ModelEntry[]>(s, 'models:list'), (m) => m.some((x) => x.source === 'demo' && x.status === 'ready'), 'the demo model')
  return { projectId: project.id, modelId: models.find((m) => m.source === 'demo')!.id }
}

const settings = { epochs: 3, checkpointEverySteps: 4, validationFraction: 0.1 }

test('kill -9 of the engine host mid-run: the run is interrupted, the server keeps working, resume completes', async () => {
  server = await startServer(newDataDir())
  const s = server
  const { projectId, modelId } = await setup(s)
  const run = await call<Run>(s, 'training:start', { projectId, modelId, preset: 'demo', settings })
  await until(() => call<Run>(s, 'runs:get', { id: run.id }), (r) => r.step >= 6, 'step 6')
  const status = await call<EngineStatus>(s, 'engine:status')
  expect(status.holder).toEqual({ kind: 'training', runId: run.id })
  const hostPid = status.host.pid!
  process.kill(hostPid, 'SIGKILL')
  const interrupted = await until(() => call<Run>(s, 'runs:get', { id: run.id }), (r) => !r.active, 'the run to end')
  expect(interrupted.status).toBe('interrupted')
  expect(interrupted.error?.message).toMatch(/engine process stopped unexpectedly/)
  expect(interrupted.resumeFromStep).toBeGreaterThanOrEqual(4)
  expect((await call<EngineStatus>(s, 'engine:status')).host.state).toBe('crashed')
  expect((await call<Project[]>(s, 'projects:list')).length).toBe(1) // the server is fine

  await call(s, 'runs:resume', { id: run.id })
  const done = await until(() => call<Run>(s, 'runs:get', { id: run.id }), (r) => !r.active, 'the resumed run', 120_000)
  expect(done.status).toBe('completed')
  expect(done.step).toBe(done.totalSteps)
  expect(existsSync(join(done.summary.adapterDir!, 'adapter_model.safetensors'))).toBe(true)
  const after = await call<EngineStatus>(s, 'engine:status')
  expect(after.host.restarts).toBe(1)
  expect(after.host.pid).not.toBe(hostPid)
})

test('kill -9 of the whole server mid-run: after a restart the run is interrupted with a resume offer, and resume completes', async () => {
  const dataDir = newDataDir()
  server = await startServer(dataDir)
  let s = server
  const { projectId, modelId } = await setup(s)
  const run = await call<Run>(s, 'training:start', { projectId, modelId, preset: 'demo', settings })
  await until(() => call<Run>(s, 'runs:get', { id: run.id }), (r) => r.step >= 6, 'step 6')
  const hostPid = (await call<EngineStatus>(s, 'engine:status')).host.pid!
  await s.stop('SIGKILL')
  await until(async () => alive(hostPid), (a) => !a, 'the engine host to exit with its parent', 10_000)

  server = await startServer(dataDir)
  s = server
  expect(s.output()).toMatch(new RegExp(`Training run #${run.id} stopped when the app last quit`))
  const r = await call<Run>(s, 'runs:get', { id: run.id })
  expect(r.status).toBe('interrupted')
  expect(r.summary.resumeOffered).toBe(true)
  expect(r.resumable).toBe(true)
  await call(s, 'runs:resume', { id: run.id })
  const done = await until(() => call<Run>(s, 'runs:get', { id: run.id }), (x) => !x.active, 'the resumed run', 120_000)
  expect(done.status).toBe('completed')
  expect(done.summary.resumeOffered).toBe(false)
})
