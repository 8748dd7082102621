// Engine entry points through the TS facade: backends, devices, model and training-set inspection, loading
// every supported flavour (Llama, Qwen2, Mistral; sharded; tied; llama3 rope scaling; BF16/F16/F32), weights as
// stored (no quantization) and within NF4's error bound.
import { afterAll, describe, expect, it } from 'vitest'
import { backends, devices, engineVersion, inspectDataset, inspectModel, loadModel } from '../../main/engine/Engine'
import { engineBackends } from '../../main/engine/loadAddon'
import { tinyModelTensors } from '../../main/models/tiny/writeTinyModel'
import { writeQtds } from './helpers/qtds'
import { scratch, tinyModelFolder, TINY } from './helpers/engine'

const s = scratch('qt-basics-')
afterAll(() => s.cleanup())

describe('engine basics', () => {
  it('reports its backends, version and devices (the CPU first)', async () => {
    expect(backends()).toContain('cpu')
    expect(engineBackends()).toEqual(backends())
    expect(engineVersion()).toMatch(/\d/)
    const list = await devices()
    expect(list[0]).toMatchObject({ backend: 'cpu', index: 0 })
    expect(list[0].totalBytes).toBeGreaterThan(0)
    expect(list[0].name).toMatch(/CPU/)
  })

  it('inspects a model folder: config mapped to camelCase, every tensor, parameter count and bytes', async () => {
    const dir = await tinyModelFolder(s, 'inspect-qwen', { architecture: 'qwen2', shards: 2, tieEmbeddings: true })
    const info = await inspectModel(dir)
    expect(info.config).toMatchObject({
      architecture: 'Qwen2ForCausalLM', family: 'qwen2', vocabSize: 128, hiddenSize: 64, intermediateSize: 96, numLayers: 2,
      numHeads: 4, numKvHeads: 2, headDim: 16, maxPosition: 512, tieEmbeddings: true, attentionBias: true, torchDtype: 'bfloat16',
    })
    expect(info.config.ropeTheta).toBe(1_000_000)
    expect(info.config.rmsNormEps).toBeCloseTo(1e-6, 12)
    expect(info.config.ropeScaling.type).toBe('none')
    const want = tinyModelTensors({ ...TINY, architecture: 'qwen2', tieEmbeddings: true })
    expect(info.tensors.map((t) => t.name).sort()).toEqual(want.map((t) => t.name).sort())
    for (const t of want) expect(info.tensors.find((x) => x.name === t.name)).toMatchObject({ dtype: 'BF16', shape: t.shape })
    expect(new Set(info.tensors.map((t) => t.file))).toEqual(new Set(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']))
    const params = want.reduce((a, t) => a + t.data.length, 0)
    expect(info.parameterCount).toBe(params)
    expect(info.weightBytes).toBe(params * 2)
  })

  it('reads llama3 rope scaling and an explicit head_dim', async () => {
    const dir = await tinyModelFolder(s, 'inspect-rope', { headDim: 32, ropeScaling: { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPosition: 64 } })
    const { config } = await inspectModel(dir)
    expect(config.headDim).toBe(32)
    expect(config.ropeScaling).toEqual({ type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPosition: 64 })
    const m = await loadModel({ folder: dir })
    const out = await m.generate([1, 2, 3], { maxNewTokens: 4 })
    expect(out.tokens).toHaveLength(4)
    m.dispose()
  })

  it('inspects a training-set file', async () => {
    const path = writeQtds(s.path('i.qtds'), [
      { ids: [1, 5, 6, 7], mask: [0, 0, 1, 1] },
      { ids: [1, 8, 9, 10, 11, 12], mask: [0, 1, 1, 1, 1, 1] },
    ], 128)
    expect(await inspectDataset(path)).toEqual({ numSamples: 2, numTokens: 10, numTargetTokens: 7, maxLength: 6 })
  })

  it('loads without quantization: weights exactly as stored, in every dtype', async () => {
    for (const dtype of ['bfloat16', 'float16', 'float32'] as const) {
      const dir = await tinyModelFolder(s, `exact-${dtype}`, { dtype })
      const m = await loadModel({ folder: dir, quant: 'none' })
      expect(m.device).toBe('cpu')
      expect(m.config.torchDtype).toBe(dtype)
      const stored = tinyModelTensors({ ...TINY, dtype })
      for (const name of ['model.layers.0.self_attn.q_proj.weight', 'model.layers.1.mlp.down_proj.weight']) {
        const w = await m.weightFp32(name)
        expect(Array.from(w)).toEqual(Array.from(stored.find((t) => t.name === name)!.data))
      }
      m.dispose()
    }
  })

  it('loads NF4 (double quant): each weight within the 4-bit error bound of its block', async () => {
    const dir = await tinyModelFolder(s, 'nf4')
    const stored = tinyModelTensors(TINY)
    for (const doubleQuant of [false, true]) {
      const m = await loadModel({ folder: dir, quant: 'nf4', doubleQuant })
      const name = 'model.layers.1.mlp.gate_proj.weight'
      const w = await m.weightFp32(name)
      const ref = stored.find((t) => t.name === name)!.data
      expect(w.length).toBe(ref.length)
      let maxRel = 0
      for (let b = 0; b < ref.length; b += 64) {
        const block = ref.subarray(b, b + 64)
        const absmax = block.reduce((a, x) => Math.max(a, Math.abs(x)), 0)
        for (let i = 0; i < block.length; i++) maxRel = Math.max(maxRel, Math.abs(w[b + i] - block[i]) / absmax)
      }
      // Largest gap between neighbouring NF4 codes is -0.6961928 - (-1) ≈ 0.3038, so rounding to the nearest code
      // errs by at most 0.1519 * absmax (double quantization adds the 8-bit error of absmax itself).
      expect(maxRel).toBeLessThan(doubleQuant ? 0.17 : 0.1520)
      expect(maxRel).toBeGreaterThan(0) // really quantized
      const mem = m.memory()
      expect(mem.weightsBytes).toBeGreaterThan(0)
      m.dispose()
    }
    const full = await loadModel({ folder: dir, quant: 'none' })
    const q = await loadModel({ folder: dir })
    expect(q.memory().weightsBytes).toBeLessThan(full.memory().weightsBytes)
    full.dispose()
    q.dispose()
  })

  it('gives the same logits from a sharded folder as from a single file; Mistral loads too', async () => {
    const one = await loadModel({ folder: await tinyModelFolder(s, 'one'), quant: 'none' })
    const three = await loadModel({ folder: await tinyModelFolder(s, 'three', { shards: 3 }), quant: 'none' })
    const ids = [1, 9, 8, 7, 6]
    expect(Array.from(await three.forwardLogits(ids))).toEqual(Array.from(await one.forwardLogits(ids)))
    one.dispose()
    three.dispose()
    const mistral = await loadModel({ folder: await tinyModelFolder(s, 'mistral', { architecture: 'mistral' }) })
    expect(mistral.config.family).toBe('mistral')
    expect((await mistral.generate([1, 2], { maxNewTokens: 3 })).tokens).toHaveLength(3)
    mistral.dispose()
  })

  it('reports load progress and can be cancelled', async () => {
    const dir = await tinyModelFolder(s, 'progress')
    const seen: number[] = []
    const m = await loadModel({ folder: dir, onProgress: (p) => seen.push(p.fraction) })
    expect(seen.length).toBeGreaterThan(0)
    for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeGreaterThanOrEqual(seen[i - 1])
    expect(seen.every((f) => f >= 0 && f <= 1)).toBe(true)
    m.dispose()
    const ac = new AbortController()
    ac.abort()
    await expect(loadModel({ folder: dir, signal: ac.signal })).rejects.toMatchObject({ code: 'CANCELLED' })
  })
})
