// Training through the TS facade on tiny random models: overfitting, exact resume, metrics delivery,
// cancellation, evaluation, busy/dispose rules and a JS thread that keeps running during steps.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../../main/engine/Engine'
import type { Model } from '../../main/engine/Model'
import { EngineError, type StepMetrics, type TrainConfig } from '../../main/engine/types'
import { sampleLoss, scratch, tinyModelFolder, trainingSet, TINY } from './helpers/engine'

const s = scratch('qt-train-')
let model: Model
let folder: string

beforeAll(async () => {
  folder = await tinyModelFolder(s, 'llama')
  model = await loadModel({ folder }) // NF4 base, double quant: the product path
})
afterAll(async () => {
  await model?.close()
  s.cleanup()
})

const ALL_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const

function thrown(f: () => unknown): unknown {
  try {
    f()
  } catch (err) {
    return err
  }
  throw new Error('expected a throw')
}

const stable = (m: StepMetrics): Omit<StepMetrics, 'seconds'> => {
  const { seconds: _s, ...rest } = m
  return rest
}

describe('training', () => {
  it('overfits one batch: the loss falls by more than half', async () => {
    const set = trainingSet(s, 'one-batch.qtds', [14, 18, 11, 16])
    const trainer = await model.createTrainer({
      lora: { r: 8, alpha: 16, dropout: 0, targets: [...ALL_TARGETS] }, lr: 1e-2, schedule: 'constant', totalSteps: 60,
      batchRows: 4, neftuneAlpha: 0, seed: 1,
    }, set.path)
    expect(trainer.stepsPerEpoch).toBe(1)
    const { metrics, cancelled } = await trainer.step(60)
    expect(cancelled).toBe(false)
    expect(metrics).toHaveLength(60)
    const first = metrics[0].loss
    const last = metrics[59].loss
    expect(first).toBeGreaterThan(Math.log(TINY.vocabSize!) * 0.8) // random model: about ln(V)
    expect(last).toBeLessThan(first / 2)
    expect(metrics.every((m) => Number.isFinite(m.loss) && m.gradNorm > 0 && Math.abs(m.lr - 1e-2) < 1e-9)).toBe(true)
    expect(metrics[0].tokens).toBe(14 + 18 + 11 + 16)
    expect(metrics[0].samples).toBe(4)
    trainer.dispose()
  })

  it('10 steps == 5 steps, checkpoint, load into a fresh trainer, 5 steps (identical numbers on the CPU)', async () => {
    const set = trainingSet(s, 'resume.qtds', [9, 13, 7, 15, 12, 10], TINY.vocabSize, 21)
    const cfg: TrainConfig = {
      lora: { r: 4, alpha: 8, dropout: 0.1, targets: ['q_proj', 'v_proj', 'down_proj'], seed: 5 }, lr: 5e-3,
      schedule: 'cosine_with_restarts', warmupSteps: 2, totalSteps: 10, numCycles: 1, batchRows: 2, shuffle: true, neftuneAlpha: 5,
      weightDecay: 0.01, seed: 9,
    }
    const straight = await model.createTrainer(cfg, set.path)
    expect(straight.stepsPerEpoch).toBe(3)
    const all = (await straight.step(10)).metrics
    expect(all.map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])

    const first = await model.createTrainer(cfg, set.path)
    const half = (await first.step(5)).metrics
    expect(half.map(stable)).toEqual(all.slice(0, 5).map(stable))
    const ckpt = s.path('ckpt-5')
    await first.saveCheckpoint(ckpt)
    first.dispose()

    const resumed = await model.createTrainer(cfg, set.path)
    expect(resumed.stepCount).toBe(0)
    await resumed.loadCheckpoint(ckpt)
    expect(resumed.stepCount).toBe(5)
    const rest = (await resumed.step(5)).metrics
    expect(rest.map(stable)).toEqual(all.slice(5).map(stable))

    // Same adapter weights: same logits, byte-identical PEFT exports.
    const ids = set.samples[0].ids
    const a = await model.forwardLogits(ids, { adapter: straight.adapter })
    const b = await model.forwardLogits(ids, { adapter: resumed.adapter })
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true)
    await straight.exportAdapter(s.path('exp-straight'))
    await resumed.exportAdapter(s.path('exp-resumed'))
    const bytes = (d: string): Buffer => readFileSync(join(d, 'adapter_model.safetensors'))
    expect(bytes(s.path('exp-straight')).equals(bytes(s.path('exp-resumed')))).toBe(true)
    // The schedule really ran: warmup from 0, then cosine decay to 0 at step 10.
    expect(all[0].lr).toBe(0)
    expect(all[1].lr).toBeCloseTo(5e-3 * 0.5, 9)
    expect(all[9].lr).toBeLessThan(all[2].lr)
    straight.dispose()
    resumed.dispose()
  })

  it('delivers each step\'s metrics once, in order, before the Promise resolves', async () => {
    const set = trainingSet(s, 'order.qtds', [8, 9, 10, 11, 12, 13, 14, 15])
    const trainer = await model.createTrainer({ totalSteps: 20, batchRows: 2, lr: 1e-3 }, set.path)
    const seen: StepMetrics[] = []
    const outcome = await trainer.step(7, (m) => seen.push(m))
    expect(seen).toHaveLength(7)
    expect(seen.map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6, 7])
    expect(seen).toEqual(outcome.metrics)
    expect(seen[3].epoch).toBeCloseTo(1, 9) // 4 steps per epoch
    const more: StepMetrics[] = []
    await trainer.step(3, (m) => more.push(m))
    expect(more.map((m) => m.step)).toEqual([8, 9, 10])
    expect(trainer.stepCount).toBe(10)
    trainer.dispose()
  })

  it('cancels between steps (signal or cancel()), resolves with the steps done, and keeps training afterwards', async () => {
    const set = trainingSet(s, 'cancel.qtds', [10, 12, 14, 16])
    const trainer = await model.createTrainer({ totalSteps: 5000, batchRows: 2, lr: 1e-3 }, set.path)
    const ac = new AbortController()
    const seen: number[] = []
    const outcome = await trainer.step(5000, (m) => {
      seen.push(m.step)
      if (seen.length === 3) ac.abort()
    }, { signal: ac.signal })
    expect(outcome.cancelled).toBe(true)
    expect(outcome.metrics.length).toBeGreaterThanOrEqual(3)
    expect(outcome.metrics.length).toBeLessThan(5000)
    expect(outcome.metrics.map((m) => m.step)).toEqual(seen)
    const next = await trainer.step(1)
    expect(next.metrics[0].step).toBe(seen.length + 1)

    const running = trainer.step(5000)
    setTimeout(() => trainer.cancel(), 20)
    const r2 = await running
    expect(r2.cancelled).toBe(true)
    expect(trainer.busy).toBe(false)

    const pre = new AbortController()
    pre.abort()
    const none = await trainer.step(3, undefined, { signal: pre.signal })
    expect(none).toEqual({ metrics: [], cancelled: true })
    trainer.dispose()
  })

  it('a step cancelled midway leaves the trainer as if it had not started (same numbers as never cancelling)', async () => {
    const set = trainingSet(s, 'midway.qtds', [10, 12, 14, 16, 9, 11], TINY.vocabSize, 4)
    const cfg: TrainConfig = { totalSteps: 12, batchRows: 2, lr: 5e-3, lora: { dropout: 0.1 }, neftuneAlpha: 5, seed: 2 }
    const straight = await model.createTrainer(cfg, set.path)
    const want = (await straight.step(8)).metrics.map(stable)
    straight.dispose()
    for (const delayMs of [0, 1, 3, 6]) {
      const t = await model.createTrainer(cfg, set.path)
      const ac = new AbortController()
      setTimeout(() => ac.abort(), delayMs)
      const first = await t.step(8, undefined, { signal: ac.signal })
      const rest = first.metrics.length < 8 ? (await t.step(8 - first.metrics.length)).metrics : []
      expect([...first.metrics, ...rest].map(stable)).toEqual(want)
      t.dispose()
    }
  })

  it('a throwing onMetrics stops training and rejects with that error', async () => {
    const set = trainingSet(s, 'throw.qtds', [10, 12])
    const trainer = await model.createTrainer({ totalSteps: 100, batchRows: 1 }, set.path)
    let calls = 0
    await expect(trainer.step(50, () => {
      calls++
      throw new Error('listener broke')
    })).rejects.toThrow('listener broke')
    expect(calls).toBe(1)
    expect(trainer.stepCount).toBeLessThan(50)
    expect((await trainer.step(1)).metrics).toHaveLength(1)
    trainer.dispose()
  })

  it('evaluate returns the mean loss over all target tokens (checked against full-forward logits)', async () => {
    const train = trainingSet(s, 'ev-train.qtds', [10, 12, 9, 11])
    const evalSamples = [
      { ids: [1, 40, 41, 42, 43, 44, 45, 46], mask: [0, 0, 0, 1, 1, 1, 1, 1] },
      { ids: [1, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80], mask: [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1] },
      { ids: [1, 5, 9, 13], mask: [0, 1, 1, 1] },
    ]
    const { writeQtds } = await import('./helpers/qtds')
    const evalPath = writeQtds(s.path('ev.qtds'), evalSamples, TINY.vocabSize!)
    const trainer = await model.createTrainer({ totalSteps: 10, batchRows: 2, lr: 5e-3, lora: { dropout: 0.1 }, neftuneAlpha: 5 }, train.path)
    await trainer.step(4)
    const loss = await trainer.evaluate(evalPath)
    let sum = 0
    let count = 0
    for (const sample of evalSamples) {
      const r = sampleLoss(await model.forwardLogits(sample.ids, { adapter: trainer.adapter }), TINY.vocabSize!, sample)
      sum += r.sum
      count += r.count
    }
    expect(count).toBe(5 + 7 + 3)
    expect(loss).toBeCloseTo(sum / count, 4)
    // Evaluation changes nothing: same number again, and training continues from step 4.
    expect(await trainer.evaluate(evalPath)).toBe(loss)
    expect((await trainer.step(1)).metrics[0].step).toBe(5)
    trainer.dispose()
  })

  it('converts epochs and warmupEpochs with the trainer\'s steps per epoch (the tutorial\'s schedule)', async () => {
    const set = trainingSet(s, 'epochs.qtds', [8, 8, 8, 8, 8, 8, 8, 8, 8, 8])
    const trainer = await model.createTrainer({ epochs: 10, warmupEpochs: 0.2, batchRows: 4 }, set.path)
    expect(trainer.stepsPerEpoch).toBe(3)
    expect(trainer.totalSteps).toBe(30)
    expect(trainer.warmupSteps).toBe(0)
    trainer.dispose()
    const big = trainingSet(s, 'epochs-big.qtds', Array.from({ length: 40 }, () => 6))
    const t2 = await model.createTrainer({ epochs: 2, warmupEpochs: 0.2, batchRows: 4, lr: 1e-3 }, big.path)
    expect(t2.stepsPerEpoch).toBe(10)
    expect(t2.totalSteps).toBe(20)
    expect(t2.warmupSteps).toBe(2)
    const { metrics } = await t2.step(3)
    expect(metrics[0].lr).toBe(0)
    expect(metrics[1].lr).toBeCloseTo(5e-4, 9)
    expect(metrics[2].lr).toBeCloseTo(1e-3, 9)
    t2.dispose()
  })

  it('runs one operation at a time per model (BUSY), refuses to dispose while busy, and frees on dispose', async () => {
    const set = trainingSet(s, 'busy.qtds', [12, 12, 12, 12])
    const trainer = await model.createTrainer({ totalSteps: 1000, batchRows: 2 }, set.path)
    const running = trainer.step(1000)
    await expect(trainer.step(1)).rejects.toMatchObject({ code: 'BUSY' })
    await expect(model.generate([1, 2, 3], { maxNewTokens: 2 })).rejects.toMatchObject({ code: 'BUSY' })
    const busy = await trainer.evaluate(set.path).catch((e: unknown) => e)
    expect(busy).toBeInstanceOf(EngineError)
    expect(busy).toMatchObject({ code: 'BUSY', message: expect.stringMatching(/busy/) })
    expect(thrown(() => trainer.dispose())).toMatchObject({ code: 'BUSY' })
    expect(thrown(() => model.dispose())).toMatchObject({ code: 'BUSY' })
    expect(model.busy).toBe(true)
    expect(model.memory().weightsBytes).toBeGreaterThan(0) // readable while busy
    trainer.cancel()
    expect((await running).cancelled).toBe(true)
    expect(model.busy).toBe(false)
    const adapter = trainer.adapter
    trainer.dispose()
    expect(trainer.disposed).toBe(true)
    await expect(trainer.step(1)).rejects.toMatchObject({ code: 'DISPOSED' })
    // The adapter taken from the trainer outlives it.
    const out = await model.generate([1, 2, 3], { maxNewTokens: 3 }, { adapter })
    expect(out.tokens).toHaveLength(3)
    adapter.dispose()
    await expect(model.generate([1, 2, 3], { maxNewTokens: 3 }, { adapter })).rejects.toMatchObject({ code: 'DISPOSED' })
  })

  it('dispose frees memory at once (no garbage collection needed)', async () => {
    const set = trainingSet(s, 'mem.qtds', [12, 12, 12, 12])
    const base = model.memory().loraBytes
    const trainer = await model.createTrainer({ totalSteps: 3, batchRows: 2, lora: { r: 16 } }, set.path)
    await trainer.step(1)
    const during = model.memory().loraBytes
    expect(during).toBeGreaterThan(base)
    const extra = await model.createAdapter({ r: 8 })
    expect(model.memory().loraBytes).toBeGreaterThan(during)
    extra.dispose()
    expect(model.memory().loraBytes).toBe(during)
    trainer.dispose() // its adapter was never taken: freed with it
    expect(model.memory().loraBytes).toBe(base)
  })

  it('keeps the JS thread free while a step runs (a timer keeps ticking)', async () => {
    const bigger = await tinyModelFolder(s, 'bigger', { hiddenSize: 128, intermediateSize: 256, numLayers: 4, numHeads: 4, numKvHeads: 2, vocabSize: 256 })
    const m = await loadModel({ folder: bigger, quant: 'none' })
    const set = trainingSet(s, 'long.qtds', [64, 64, 64, 64], 256)
    const trainer = await m.createTrainer({ totalSteps: 10000, batchRows: 4, gradCheckpointing: true }, set.path)
    let ticks = 0
    const timer = setInterval(() => ticks++, 5)
    const t0 = performance.now()
    let steps = 0
    try {
      while (performance.now() - t0 < 250) {
        const before = ticks
        const stepStart = performance.now()
        await trainer.step(2)
        steps += 2
        // A blocked JS thread could not run the timer while the Promise is pending.
        if (performance.now() - stepStart > 60) expect(ticks - before).toBeGreaterThan(0)
      }
    } finally {
      clearInterval(timer)
    }
    expect(steps).toBeGreaterThan(0)
    expect(ticks).toBeGreaterThan(10)
    await m.close()
    expect(m.disposed).toBe(true)
    expect(trainer.disposed).toBe(true) // disposing the model disposes its trainers
  })
})
