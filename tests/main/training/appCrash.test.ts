// The whole app dies mid-run (SIGKILL of the process that owns the database and the engine host): the host exits
// with it, and the next start marks the run interrupted with a resume offer; resume finishes with the numbers of
// an uninterrupted run.
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { Run, RunMetrics } from '../../../preload/contract'
import { appRoot } from '../../../main/paths'
import { testContext } from '../../helpers/tempContext'
import { FAST, openApp, trainingApp, type TrainingApp } from './helpers'

const cleanups: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const c of cleanups) await c()
})

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

const stable = (m: RunMetrics) => ({ train: m.train.map((p) => ({ step: p.step, loss: p.loss, lr: p.lr, gradNorm: p.gradNorm })), eval: m.eval })

describe('app crash mid-run', () => {
  it('shows the run interrupted at the next start-up, offers resume, and resume completes exactly', async () => {
    const first: TrainingApp = await trainingApp()
    const settings = { ...FAST, epochs: 30, checkpointEverySteps: 5 }
    const request = { projectId: first.projectId, preset: 'demo', settings }
    const reference = await first.finished((await first.call<Run>('training:start', request)).id)
    const referenceMetrics = stable(await first.call<RunMetrics>('runs:metrics', { runId: reference.id }))
    const dataDir = first.dataDir
    await first.close()

    const child = spawn(process.execPath, ['--import', 'tsx', join(appRoot(), 'tests/main/training/fixtures/trainUntilKilled.ts'), dataDir, JSON.stringify(request)], {
      cwd: appRoot(),
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let out = ''
    const hostPid = await new Promise<number>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString()
        const m = /STEP (\d+) HOST (\d+)/g
        let last: RegExpExecArray | null = null
        for (let x = m.exec(out); x; x = m.exec(out)) last = x
        if (last && Number(last[1]) >= 12) {
          child.kill('SIGKILL')
          resolve(Number(last[2]))
        }
      })
      child.once('exit', () => reject(new Error(`the child ended before it was killed:\n${out}`)))
    })
    await new Promise((r) => child.once('exit', r))
    // The engine host notices its parent is gone and exits: nothing keeps training or holding the GPU.
    for (let i = 0; i < 50 && alive(hostPid); i++) await new Promise((r) => setTimeout(r, 100))
    expect(alive(hostPid)).toBe(false)

    const second = await openApp(dataDir)
    cleanups.push(() => second.cleanup())
    const runId = Number(/RUN (\d+)/.exec(out)![1])
    expect(second.training.recovered).toEqual([runId])
    const run = await second.call<Run>('runs:get', { id: runId })
    expect(run.status).toBe('interrupted')
    expect(run.summary.resumeOffered).toBe(true)
    expect(run.resumable).toBe(true)
    expect(run.resumeFromStep).toBeGreaterThanOrEqual(10)
    expect(run.error?.message).toMatch(/The app closed while this run was (training|evaluating)/)
    expect(second.eventsOf('runs:changed')).toContainEqual({ runId, projectId: run.projectId, status: 'interrupted', reason: 'resumeOffer' })

    await second.call('runs:resume', { id: runId })
    const done = await second.finished(runId)
    expect(done.error).toBeNull()
    expect(done.status).toBe('completed')
    expect(done.summary.resumeOffered).toBe(false)
    expect(stable(await second.call<RunMetrics>('runs:metrics', { runId }))).toEqual(referenceMetrics)
  })

  it('a graceful close mid-run checkpoints and leaves the run interrupted with a resume offer', async () => {
    const a = await trainingApp()
    cleanups.push(() => a.cleanup())
    const run = await a.call<Run>('training:start', { projectId: a.projectId, preset: 'demo', settings: { ...FAST, epochs: 300 } })
    await new Promise<void>((resolve) => {
      const off = a.ctx.events.onAny((event, payload) => {
        if (event === 'training:progress' && (payload as { step: number }).step >= 5) {
          off()
          resolve()
        }
      })
    })
    await a.close()
    const b = await openApp(a.dataDir)
    cleanups.push(() => b.close())
    const r = await b.call<Run>('runs:get', { id: run.id })
    expect(r.status).toBe('interrupted')
    expect(r.summary.resumeOffered).toBe(true)
    expect(r.resumeFromStep).toBe(r.step)
    expect(b.training.recovered).toEqual([]) // it was closed properly, not found active
    const dismissed = await b.call<Run>('runs:dismissResume', { id: run.id })
    expect(dismissed.summary.resumeOffered).toBe(false)
    expect(dismissed.resumable).toBe(true)
  })

  it('a run that another live process on the same data folder is training is left alone (not marked interrupted) and blocks a second start', async () => {
    const a = await trainingApp()
    cleanups.push(() => a.cleanup())
    const run = await a.finished((await a.call<Run>('training:start', { projectId: a.projectId, preset: 'demo', settings: FAST })).id)
    const dataDir = a.dataDir
    await a.close()
    // Pretend another process (a live one) is training this run right now.
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' })
    cleanups.push(async () => void other.kill('SIGKILL'))
    const raw = testContext(dataDir)
    const row = raw.repos().runs.get(run.id)!
    raw.repos().runs.update(run.id, { status: 'training', summary: { ...row.summary, ownerPid: other.pid } })
    await raw.close()

    const b = await openApp(dataDir)
    cleanups.push(() => b.close())
    expect(b.training.recovered).toEqual([])
    expect((await b.call<Run>('runs:get', { id: run.id })).status).toBe('training')
    const err = await b.fail('training:start', { projectId: run.projectId, preset: 'demo', settings: FAST })
    expect(err.message).toMatch(new RegExp(`Run #${run.id} is still active`))
  })
})
