// Generation through the TS facade: KV-cached greedy == greedy by full recomputation, determinism, streaming,
// stop ids, cancellation, sampling settings, with and without a LoRA adapter.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../../main/engine/Engine'
import type { Adapter } from '../../main/engine/Adapter'
import type { Model } from '../../main/engine/Model'
import { argmax, scratch, tinyModelFolder, trainingSet, TINY } from './helpers/engine'

const s = scratch('qt-gen-')
let model: Model
let other: Model
let trained: Adapter
const V = TINY.vocabSize!
const prompt = [1, 17, 93, 5, 61, 28]

beforeAll(async () => {
  model = await loadModel({ folder: await tinyModelFolder(s, 'llama') })
  other = await loadModel({ folder: await tinyModelFolder(s, 'qwen', { architecture: 'qwen2', seed: 2 }), quant: 'none' })
  // A trained adapter, so adapter generation differs from the base model's.
  const set = trainingSet(s, 'gen.qtds', [12, 14, 10, 16])
  const trainer = await model.createTrainer({ lora: { r: 8, alpha: 16, dropout: 0, targets: ['q_proj', 'v_proj', 'o_proj', 'down_proj'] },
    lr: 2e-2, schedule: 'constant', totalSteps: 20, batchRows: 4, neftuneAlpha: 0 }, set.path)
  await trainer.step(20)
  trained = trainer.adapter
  trainer.dispose()
})
afterAll(async () => {
  await model?.close()
  await other?.close()
  s.cleanup()
})

/** Greedy decoding by full recomputation: one forward pass over the whole sequence per new token. */
async function greedyByRecompute(m: Model, ids: number[], n: number, adapter?: Adapter): Promise<number[]> {
  const seq = [...ids]
  const vocab = m.config.vocabSize
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    const logits = await m.forwardLogits(seq, { adapter })
    const next = argmax(logits.subarray((seq.length - 1) * vocab, seq.length * vocab))
    out.push(next)
    seq.push(next)
  }
  return out
}

describe('generation', () => {
  it('KV-cached greedy decoding gives the tokens of full recomputation (base, adapter, Qwen2 with biases)', async () => {
    const base = await model.generate(prompt, { maxNewTokens: 12 })
    expect(base.finish).toBe('length')
    expect(base.tokens).toEqual(await greedyByRecompute(model, prompt, 12))

    const withAdapter = await model.generate(prompt, { maxNewTokens: 12 }, { adapter: trained })
    expect(withAdapter.tokens).toEqual(await greedyByRecompute(model, prompt, 12, trained))
    expect(withAdapter.tokens).not.toEqual(base.tokens)

    const q = await other.generate(prompt, { maxNewTokens: 10 })
    expect(q.tokens).toEqual(await greedyByRecompute(other, prompt, 10))
  })

  it('forwardLogits has one row of vocab logits per position, and the adapter changes them', async () => {
    const a = await model.forwardLogits(prompt)
    expect(a).toBeInstanceOf(Float32Array)
    expect(a.length).toBe(prompt.length * V)
    expect(a.every(Number.isFinite)).toBe(true)
    const b = await model.forwardLogits(prompt, { adapter: trained })
    expect(Array.from(b)).not.toEqual(Array.from(a))
    // Causal: the logits of a prefix do not depend on what follows.
    const prefix = await model.forwardLogits(prompt.slice(0, 3))
    for (let i = 0; i < 3 * V; i++) expect(prefix[i]).toBeCloseTo(a[i], 4)
  })

  it('is deterministic: greedy always, sampling for a given seed', async () => {
    const g1 = await model.generate(prompt, { maxNewTokens: 16 })
    const g2 = await model.generate(prompt, { maxNewTokens: 16 })
    expect(g2.tokens).toEqual(g1.tokens)
    const sampling = { maxNewTokens: 24, temperature: 1.5, seed: 123 }
    const s1 = await model.generate(prompt, sampling)
    const s2 = await model.generate(prompt, sampling)
    const s3 = await model.generate(prompt, { ...sampling, seed: 124 })
    expect(s2.tokens).toEqual(s1.tokens)
    expect(s3.tokens).not.toEqual(s1.tokens)
    // top-k 1 and a tiny top-p keep only the best token: greedy again, whatever the temperature.
    expect((await model.generate(prompt, { maxNewTokens: 16, temperature: 1.5, topK: 1, seed: 9 })).tokens).toEqual(g1.tokens)
    expect((await model.generate(prompt, { maxNewTokens: 16, temperature: 1.5, topP: 1e-6, seed: 9 })).tokens).toEqual(g1.tokens)
    // A strong repetition penalty changes greedy output once it would repeat a token.
    const pen = await model.generate(prompt, { maxNewTokens: 16, repetitionPenalty: 100 })
    expect(new Set([...pen.tokens]).size).toBe(pen.tokens.length)
    expect(pen.tokens.some((t) => prompt.includes(t))).toBe(false)
  })

  it('streams each token once, in order, before resolving; streamed == returned', async () => {
    const streamed: number[] = []
    let resolved = false
    const p = model.generate(prompt, { maxNewTokens: 20 }, { onToken: (id) => {
      expect(resolved).toBe(false)
      streamed.push(id)
    } })
    const r = await p
    resolved = true
    expect(streamed).toEqual(r.tokens)
    expect(streamed).toHaveLength(20)
    expect(r.promptSeconds).toBeGreaterThanOrEqual(0)
    expect(r.decodeSeconds).toBeGreaterThanOrEqual(0)
  })

  it('ends after a stop id (included) with finish "stop"', async () => {
    const full = (await model.generate(prompt, { maxNewTokens: 20 })).tokens
    const stop = full[5]
    const k = full.indexOf(stop)
    const r = await model.generate(prompt, { maxNewTokens: 20, stopIds: [stop, V - 1 === stop ? V - 2 : V - 1] })
    expect(r.finish).toBe('stop')
    expect(r.tokens).toEqual(full.slice(0, k + 1))
  })

  it('cancel returns the tokens so far with finish "cancelled"; the model stays usable', async () => {
    const ac = new AbortController()
    const streamed: number[] = []
    const r = await model.generate(prompt, { maxNewTokens: 400 }, { signal: ac.signal, onToken: (id) => {
      streamed.push(id)
      if (streamed.length === 3) ac.abort()
    } })
    expect(r.finish).toBe('cancelled')
    expect(r.tokens.length).toBeGreaterThanOrEqual(3)
    expect(r.tokens.length).toBeLessThan(400)
    expect(streamed).toEqual(r.tokens)
    const full = (await model.generate(prompt, { maxNewTokens: r.tokens.length })).tokens
    expect(r.tokens).toEqual(full)

    const pre = new AbortController()
    pre.abort()
    expect(await model.generate(prompt, { maxNewTokens: 5 }, { signal: pre.signal })).toMatchObject({ tokens: [], finish: 'cancelled' })

    const running = model.generate(prompt, { maxNewTokens: 400 })
    model.cancel()
    expect((await running).finish).toBe('cancelled')
  })

  it('a throwing onToken rejects with its error and stops generation', async () => {
    let calls = 0
    await expect(model.generate(prompt, { maxNewTokens: 50 }, { onToken: () => {
      calls++
      throw new Error('ui gone')
    } })).rejects.toThrow('ui gone')
    expect(calls).toBe(1)
    expect((await model.generate(prompt, { maxNewTokens: 2 })).tokens).toHaveLength(2)
  })

  it('rejects bad ids, bad sampling and a foreign adapter with INVALID_ARGUMENT', async () => {
    await expect(model.generate([], {})).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/empty/) })
    await expect(model.generate([1, V], {})).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/not a token id/) })
    await expect(model.generate([1, 2.5], {})).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    await expect(model.generate(prompt, { temperature: -1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/Temperature/) })
    await expect(model.generate(prompt, { topP: 0 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    await expect(model.generate(prompt, { maxNewTokens: 0 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    await expect(model.generate(prompt, { stopIds: [-1] })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    await expect(other.generate(prompt, {}, { adapter: trained })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/different model/) })
    await expect(model.forwardLogits([])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
  })
})
