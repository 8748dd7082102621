// Training runs through the real stack: handlers -> TrainingService -> engine host child process (the native addon,
// CPU) -> SQLite and the run folder. A tiny random Llama model and short Q&A rows keep each run under a second.
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { EngineStatus, Run, RunDetail, RunMetrics, TrainingProgress } from '../../../preload/contract'
import { checkpointStep } from '../../../main/training/runFiles'
import { FAST, trainingApp, type TrainingApp } from './helpers'

const apps: TrainingApp[] = []
afterAll(async () => {
  for (const a of apps) await a.cleanup()
})

async function app(rows?: string[][]): Promise<TrainingApp> {
  const a = await trainingApp(rows)
  apps.push(a)
  return a
}

const stable = (m: RunMetrics) => ({
  train: m.train.map((p) => ({ step: p.step, epoch: p.epoch, loss: p.loss, lr: p.lr, gradNorm: p.gradNorm })),
  eval: m.eval,
})

describe('training run lifecycle through the engine host', () => {
  it('start -> batched metrics -> evaluations -> checkpoints (last K + best) -> completed with a PEFT adapter, verdict and run.json', async () => {
    const a = await app()
    const settings = { ...FAST, epochs: 4, checkpointEverySteps: 2, keepLastCheckpoints: 2 }
    const run = await a.call<Run>('training:start', { projectId: a.projectId, preset: 'demo', settings })
    expect(run.status).toBe('queued')
    expect(run.settings.lr).toBe(1e-2)
    expect(run.device).toBe('cpu')
    const done = await a.finished(run.id)
    expect(done.error).toBeNull()
    expect(done.status).toBe('completed')
    expect(done.summary.stopReason).toBe('completed')
    expect(done.stepsPerEpoch).toBe(3) // 9 training rows (3 held out) in batches of 3
    expect(done.totalSteps).toBe(12)
    expect(done.step).toBe(12)

    // Status order, as the UI sees it.
    const statuses = a.eventsOf('runs:changed').filter((e) => e.runId === run.id && e.reason === 'status').map((e) => e.status)
    expect(statuses[0]).toBe('preparing')
    expect(statuses.slice(0, 3)).toEqual(['preparing', 'loading', 'training'])
    expect(statuses).toContain('evaluating')
    expect(statuses.at(-1)).toBe('completed')

    // Every step once, in the progress events and in the database; written in fewer transactions than steps.
    const progress = a.eventsOf('training:progress').filter((p) => p.runId === run.id)
    expect(progress.flatMap((p) => p.points.map((x) => x.step))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
    expect(progress.flatMap((p) => p.evalPoints.map((x) => x.step))).toEqual([3, 6, 9, 12])
    const metrics = await a.call<RunMetrics>('runs:metrics', { runId: run.id })
    expect(metrics.train.map((p) => p.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
    expect(metrics.eval.map((p) => p.step)).toEqual([3, 6, 9, 12])
    expect(a.training.metricsFlushes).toBeLessThan(12)
    for (const p of metrics.train) {
      expect(p.lr).toBeCloseTo(1e-2, 6)
      expect(p.gradNorm).toBeGreaterThan(0)
      expect(p.tokensPerSecond).toBeGreaterThan(0)
      expect(p.memoryBytes).toBeGreaterThan(0)
    }
    expect(metrics.train.at(-1)!.loss).toBeLessThan(metrics.train[0].loss)
    const bestEval = metrics.eval.reduce((m, e) => (e.loss < m.loss ? e : m))
    expect(done.bestValLoss).toBe(bestEval.loss)

    // Downsampled reads keep the shape and the last step.
    const few = await a.call<RunMetrics>('runs:metrics', { runId: run.id, maxPoints: 10 })
    expect(few.downsampled).toBe(true)
    expect(few.train.length).toBeLessThanOrEqual(10)
    expect(few.train.at(-1)!.step).toBe(12)
    expect(few.totalTrainPoints).toBe(12)
    const later = await a.call<RunMetrics>('runs:metrics', { runId: run.id, afterStep: 9 })
    expect(later.train.map((p) => p.step)).toEqual([10, 11, 12])
    expect(later.eval.map((p) => p.step)).toEqual([12])
    expect(later.train).toEqual(metrics.train.slice(9))

    // Checkpoints: the last two periodic ones (steps 10 and 12) and the best; the pruned folders are gone.
    const detail = await a.call<RunDetail>('runs:get', { id: run.id })
    const periodic = detail.checkpoints.filter((c) => c.kind !== 'best').map((c) => c.step)
    expect(periodic).toEqual([10, 12])
    const best = detail.checkpoints.filter((c) => c.kind === 'best')
    expect(best).toHaveLength(1)
    expect(best[0].step).toBe(bestEval.step)
    expect(best[0].valLoss).toBe(bestEval.loss)
    expect(checkpointStep(best[0].path)).toBe(bestEval.step)
    for (const c of detail.checkpoints) expect(checkpointStep(c.path)).toBe(c.step)
    expect(existsSync(join(done.outputDir, 'checkpoints', 'step-00000002'))).toBe(false)
    expect(existsSync(join(done.outputDir, 'checkpoints', 'epoch-0001'))).toBe(false)

    // The exported PEFT adapter (the best checkpoint's weights).
    expect(done.summary.adapterFrom).toBe('best')
    expect(done.summary.adapterStep).toBe(bestEval.step)
    const cfg = JSON.parse(readFileSync(join(done.summary.adapterDir!, 'adapter_config.json'), 'utf8')) as Record<string, unknown>
    expect(cfg).toMatchObject({ peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 4, lora_alpha: 8 })
    expect([...(cfg.target_modules as string[])].sort()).toEqual(['q_proj', 'v_proj'])
    expect(existsSync(join(done.summary.adapterDir!, 'adapter_model.safetensors'))).toBe(true)
    expect(readFileSync(join(done.summary.adapterDir!, 'adapter_model.safetensors'))).toEqual(readFileSync(join(best[0].path, 'adapter_model.safetensors')))

    // Summary, verdict and the run file.
    expect(done.summary.data).toMatchObject({ trainSamples: 9, validationSamples: 3, skippedRows: 0 })
    expect(done.summary.verdict?.kind).toMatch(/stillLearning|good|overfitting|notLearning/)
    expect(done.summary.verdict?.message.en.length).toBeGreaterThan(10)
    const runJson = JSON.parse(readFileSync(join(done.outputDir, 'run.json'), 'utf8')) as { format: string; run: Run }
    expect(runJson.format).toBe('qa-tuner-run/1')
    expect(runJson.run.status).toBe('completed')
    expect(existsSync(join(done.outputDir, 'data', 'train.qtds'))).toBe(true)
    expect(done.snapshotId).not.toBeNull()

    // The engine host stays up with the model resident for the next user; nobody holds it.
    const status = await a.call<EngineStatus>('engine:status')
    expect(status.host.state).toBe('ready')
    expect(status.holder).toBeNull()
    expect(status.model?.device).toBe('cpu')
    expect(status.devices[0].backend).toBe('cpu')
  })

  it('early stopping ends a run whose validation loss stops improving and exports the best checkpoint', async () => {
    // Rigged: unrelated random answers and many epochs: the training rows can be learnt, the held-out answers
    // cannot, so the validation loss flattens out long before the 40 epochs are over.
    const rnd = (n: number, seed: number) => {
      let x = seed
      const chars = '甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳午未申酉戌亥'
      let s = ''
      for (let i = 0; i < n; i++) {
        x = (x * 1103515245 + 12345) % 2147483648
        s += chars[x % chars.length]
      }
      return s
    }
    const rows = Array.from({ length: 16 }, (_, i) => [`問題${rnd(4, i + 1)}？`, rnd(24, 1000 + i)])
    const a = await app(rows)
    const run = await a.call<Run>('training:start', {
      projectId: a.projectId, preset: 'demo', settings: { ...FAST, lr: 1e-2, loraR: 16, loraAlpha: 32, loraTargets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], epochs: 40, earlyStoppingPatience: 2, validationFraction: 0.25, batchRows: 4 },
    })
    const done = await a.finished(run.id)
    expect(done.error).toBeNull()
    expect(done.status).toBe('completed')
    expect(done.summary.stopReason).toBe('earlyStopping')
    expect(done.step).toBeLessThan(done.totalSteps)
    const metrics = await a.call<RunMetrics>('runs:metrics', { runId: run.id })
    const evals = metrics.eval
    const bestIdx = evals.reduce((bi, e, i) => (e.loss < evals[bi].loss ? i : bi), 0)
    expect(evals.length).toBe(bestIdx + 1 + 2) // patience 2: two evaluations after the best, then stop
    const detail = await a.call<RunDetail>('runs:get', { id: run.id })
    const best = detail.checkpoints.find((c) => c.kind === 'best')!
    expect(best.step).toBe(evals[bestIdx].step)
    expect(checkpointStep(best.path)).toBe(evals[bestIdx].step)
    expect(done.summary.adapterFrom).toBe('best')
    expect(done.summary.adapterStep).toBe(best.step)
    // The validation loss flattened (or rose) while the training loss kept falling.
    expect(['good', 'overfitting']).toContain(done.summary.verdict?.kind)
    expect(done.summary.verdict?.evidence.bestValStep).toBe(best.step)
  })

  it('stop -> stopped with a checkpoint; resume -> completed with exactly the numbers of an uninterrupted run', async () => {
    const a = await app()
    const settings = { ...FAST, epochs: 10, loraDropout: 0.1, neftuneAlpha: 5, schedule: 'cosine_with_restarts' as const, warmupEpochs: 1, earlyStoppingPatience: 0 }
    const straight = await a.finished((await a.call<Run>('training:start', { projectId: a.projectId, preset: 'demo', settings })).id)
    expect(straight.status).toBe('completed')
    const reference = stable(await a.call<RunMetrics>('runs:metrics', { runId: straight.id }))
    expect(reference.train).toHaveLength(30)

    const run = await a.call<Run>('training:start', { projectId: a.projectId, preset: 'demo', settings })
    let stopCalled = false
    const off = a.ctx.events.onAny((event, payload) => {
      const p = payload as TrainingProgress
      if (event === 'training:progress' && p.runId === run.id && p.step >= 4 && !stopCalled) {
        stopCalled = true
        void a.call('training:stop', { runId: run.id })
      }
    })
    const stopped = await a.finished(run.id)
    off()
    expect(stopped.status).toBe('stopped')
    expect(stopped.summary.stopReason).toBe('user')
    expect(stopped.step).toBeGreaterThanOrEqual(4)
    expect(stopped.step).toBeLessThan(30)
    expect(stopped.resumable).toBe(true)
    expect(stopped.resumeFromStep).toBe(stopped.step)
    const detail = await a.call<RunDetail>('runs:get', { id: run.id })
    const last = detail.checkpoints.filter((c) => c.kind !== 'best').at(-1)!
    expect(last.step).toBe(stopped.step)
    expect(checkpointStep(last.path)).toBe(stopped.step)
    expect(existsSync(join(stopped.summary.adapterDir!, 'adapter_model.safetensors'))).toBe(true) // usable right away

    const resumed = await a.call<Run>('runs:resume', { id: run.id })
    expect(resumed.summary.resumes).toBe(1)
    const done = await a.finished(run.id)
    expect(done.error).toBeNull()
    expect(done.status).toBe('completed')
    expect(stable(await a.call<RunMetrics>('runs:metrics', { runId: run.id }))).toEqual(reference)
  })

  it('kill -9 of the engine host mid-run: interrupted with the reason, the app keeps working, the host restarts, resume completes exactly', async () => {
    const a = await app()
    const settings = { ...FAST, epochs: 10, checkpointEverySteps: 2 }
    const straight = await a.finished((await a.call<Run>('training:start', { projectId: a.projectId, preset: 'demo', settings })).id)
    const reference = stable(await a.call<RunMetrics>('runs:metrics', { runId: straight.id }))

    const run = await a.call<Run>('training:start', { projectId: a.projectId, preset: 'demo', settings })
    let killedPid: number | null = null
    const off = a.ctx.events.onAny((event, payload) => {
      const p = payload as TrainingProgress
      if (event === 'training:progress' && p.runId === run.id && p.step >= 5 && killedPid === null) {
        killedPid = a.training.engine.pid
        process.kill(killedPid!, 'SIGKILL')
      }
    })
    const interrupted = await a.finished(run.id)
    off()
    expect(killedPid).not.toBeNull()
    expect(interrupted.status).toBe('interrupted')
    expect(interrupted.error?.message).toMatch(/engine process stopped unexpectedly.*SIGKILL/)
    expect(interrupted.resumable).toBe(true)
    const status = await a.call<EngineStatus>('engine:status')
    expect(status.host.state).toBe('crashed')
    expect(status.host.lastExit?.signal).toBe('SIGKILL')
    expect(status.host.lastExit?.during).toContain('trainer.step')
    expect(status.holder).toBeNull()
    expect((await a.call<Run[]>('runs:list', { projectId: a.projectId })).length).toBe(2) // main is fine

    await a.call('runs:resume', { id: run.id })
    const done = await a.finished(run.id)
    expect(done.error).toBeNull()
    expect(done.status).toBe('completed')
    const after = await a.call<EngineStatus>('engine:status')
    expect(after.host.state).toBe('ready')
    expect(after.host.restarts).toBe(1)
    expect(after.host.pid).not.toBe(killedPid)
    expect(stable(await a.call<RunMetrics>('runs:metrics', { runId: run.id }))).toEqual(reference)
  })

  it('a checkpoint that cannot be written fails the run with a clear error and leaves the previous checkpoint intact; resume then completes', async () => {
    const a = await app()
    const run = await a.call<Run>('training:start', { projectId: a.projectId, preset: 'demo', settings: { ...FAST, epochs: 3, checkpointEverySteps: 2 } })
    let blocked: string | null = null
    const off = a.ctx.events.onAny((event, payload) => {
      const e = payload as { runId: number; reason: string }
      if (event === 'runs:changed' && e.runId === run.id && e.reason === 'checkpoint' && blocked === null) {
        // The first checkpoint (step 2) is written; a file now sits where the step-4 checkpoint folder must go.
        blocked = join(a.dataDir, 'runs', String(run.id), 'checkpoints', 'step-00000004')
        writeFileSync(blocked, 'not a folder')
      }
    })
    const failed = await a.finished(run.id)
    off()
    expect(failed.status).toBe('failed')
    expect(failed.error?.message).toMatch(/Could not save the checkpoint of step 4 to .*step-00000004/)
    expect(failed.error?.message).toMatch(/previous checkpoint \(step 3\) is intact/)
    expect(failed.resumable).toBe(true)
    expect(failed.resumeFromStep).toBe(3)
    const detail = await a.call<RunDetail>('runs:get', { id: run.id })
    const latest = detail.checkpoints.filter((c) => c.kind !== 'best').at(-1)!
    expect(latest.step).toBe(3)
    expect(checkpointStep(latest.path)).toBe(3)
    expect(readFileSync(blocked!, 'utf8')).toBe('not a folder')

    const { rmSync } = await import('node:fs')
    rmSync(blocked!)
    await a.call('runs:resume', { id: run.id })
    const done = await a.finished(run.id)
    expect(done.error).toBeNull()
    expect(done.status).toBe('completed')
    expect(done.step).toBe(9)
  })
})
