// PEFT adapter export and import: file names, adapter_config.json fields, tensor keys and shapes exactly as peft
// writes them (parsed from the safetensors header here), and a round trip that keeps the logits.
import { readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../../main/engine/Engine'
import type { Model } from '../../main/engine/Model'
import type { Trainer } from '../../main/engine/Trainer'
import { readSafetensors, readSafetensorsHeader, writeSafetensors } from '../../main/models/safetensors'
import { seededRandom } from '../../main/models/tiny/writeTinyModel'
import { scratch, tinyModelFolder, trainingSet, TINY } from './helpers/engine'

const s = scratch('qt-peft-')
let model: Model
let trainer: Trainer
const C = TINY.hiddenSize!
const FF = TINY.intermediateSize!
const HS = C / TINY.numHeads!
const KV = TINY.numKvHeads! * HS
const targets = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const
const shapes: Record<string, { module: string; in: number; out: number }> = {
  q_proj: { module: 'self_attn', in: C, out: C }, k_proj: { module: 'self_attn', in: C, out: KV }, v_proj: { module: 'self_attn', in: C, out: KV },
  o_proj: { module: 'self_attn', in: C, out: C }, gate_proj: { module: 'mlp', in: C, out: FF }, up_proj: { module: 'mlp', in: C, out: FF },
  down_proj: { module: 'mlp', in: FF, out: C },
}
const prompt = [1, 33, 7, 90, 12]

beforeAll(async () => {
  model = await loadModel({ folder: await tinyModelFolder(s, 'llama') })
  const set = trainingSet(s, 'peft.qtds', [12, 10, 14, 9])
  trainer = await model.createTrainer({ lora: { r: 6, alpha: 12, dropout: 0.05, targets: [...targets] }, lr: 1e-2, totalSteps: 5, batchRows: 2 }, set.path)
  await trainer.step(5)
})
afterAll(async () => {
  await model?.close()
  s.cleanup()
})

describe('PEFT adapter', () => {
  it('exports adapter_config.json and adapter_model.safetensors with peft\'s keys and shapes', async () => {
    const dir = s.path('export')
    await trainer.exportAdapter(dir, { baseModelNameOrPath: 'meta-llama/Meta-Llama-3-8B-Instruct' })
    const files = readdirSync(dir).sort()
    expect(files).toContain('adapter_config.json')
    expect(files).toContain('adapter_model.safetensors')
    expect(files.filter((f) => !['adapter_config.json', 'adapter_model.safetensors', 'README.md'].includes(f))).toEqual([])

    const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>
    expect(cfg).toMatchObject({ peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 6, lora_alpha: 12, bias: 'none',
      base_model_name_or_path: 'meta-llama/Meta-Llama-3-8B-Instruct' })
    expect(cfg.lora_dropout).toBeCloseTo(0.05, 6)
    expect([...(cfg.target_modules as string[])].sort()).toEqual([...targets].sort())

    const header = await readSafetensorsHeader(join(dir, 'adapter_model.safetensors'))
    const got = Object.fromEntries(header.tensors.map((t) => [t.name, t.shape]))
    const want: Record<string, number[]> = {}
    for (let l = 0; l < TINY.numLayers!; l++) {
      for (const t of targets) {
        const { module, in: inDim, out } = shapes[t]
        want[`base_model.model.model.layers.${l}.${module}.${t}.lora_A.weight`] = [6, inDim]
        want[`base_model.model.model.layers.${l}.${module}.${t}.lora_B.weight`] = [out, 6]
      }
    }
    expect(got).toEqual(want)
    expect(header.tensors.every((t) => ['F32', 'BF16', 'F16'].includes(t.dtype))).toBe(true)
    // Trained: B is no longer zero.
    const { tensors } = await readSafetensors(join(dir, 'adapter_model.safetensors'))
    const b = tensors.get('base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight')!.data
    expect(b.some((x) => x !== 0)).toBe(true)
  })

  it('imports what it exported: same config, same logits, byte-identical re-export', async () => {
    const dir = s.path('export-rt')
    await trainer.exportAdapter(dir)
    const loaded = await model.loadAdapter(dir)
    expect(loaded.config).toMatchObject({ r: 6, alpha: 12 })
    expect([...loaded.config.targets].sort()).toEqual([...targets].sort())
    expect(loaded.fromTrainer).toBe(false)
    const a = await model.forwardLogits(prompt, { adapter: trainer.adapter })
    const b = await model.forwardLogits(prompt, { adapter: loaded })
    for (let i = 0; i < a.length; i++) expect(b[i]).toBeCloseTo(a[i], 5)
    await loaded.save(s.path('export-rt2'))
    const t1 = (await readSafetensors(join(dir, 'adapter_model.safetensors'))).tensors
    const t2 = (await readSafetensors(join(s.path('export-rt2'), 'adapter_model.safetensors'))).tensors
    expect([...t2.keys()].sort()).toEqual([...t1.keys()].sort())
    for (const [k, v] of t1) expect(Array.from(t2.get(k)!.data)).toEqual(Array.from(v.data))
    loaded.dispose()
  })

  it('loads an adapter written the way peft writes it, and applies it with scaling alpha / r', async () => {
    // A hand-written peft adapter on v_proj only: random A and B, alpha = 2r (scaling 2).
    const dir = s.path('hand')
    mkdirSync(dir)
    const r = 4
    const rng = seededRandom(77)
    const tensors = []
    for (let l = 0; l < TINY.numLayers!; l++) {
      const A = Float32Array.from({ length: r * C }, () => rng.normal() * 0.2)
      const B = Float32Array.from({ length: KV * r }, () => rng.normal() * 0.2)
      tensors.push({ name: `base_model.model.model.layers.${l}.self_attn.v_proj.lora_A.weight`, dtype: 'F32' as const, shape: [r, C], data: A })
      tensors.push({ name: `base_model.model.model.layers.${l}.self_attn.v_proj.lora_B.weight`, dtype: 'F32' as const, shape: [KV, r], data: B })
    }
    await writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors, { format: 'pt' })
    const config = { peft_type: 'LORA', task_type: 'CAUSAL_LM', r, lora_alpha: 2 * r, lora_dropout: 0.1, target_modules: ['v_proj'], bias: 'none',
      base_model_name_or_path: 'tiny', fan_in_fan_out: false, inference_mode: true, modules_to_save: null }
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify(config))
    const hand = await model.loadAdapter(dir)
    expect(hand.config).toMatchObject({ r, alpha: 2 * r, targets: ['v_proj'] })
    const base = await model.forwardLogits(prompt)
    const withHand = await model.forwardLogits(prompt, { adapter: hand })
    expect(Array.from(withHand)).not.toEqual(Array.from(base))
    hand.dispose()

    // Shapes that disagree with the model are refused, naming the problem.
    const bad = s.path('hand-bad')
    mkdirSync(bad)
    await writeSafetensors(join(bad, 'adapter_model.safetensors'), tensors.map((t) => (t.name.endsWith('lora_A.weight') ? { ...t, shape: [r * 2, C / 2] } : t)))
    writeFileSync(join(bad, 'adapter_config.json'), JSON.stringify(config))
    await expect(model.loadAdapter(bad)).rejects.toMatchObject({ code: 'SHAPE_MISMATCH' })
    // A missing adapter file.
    const empty = s.path('hand-empty')
    mkdirSync(empty)
    writeFileSync(join(empty, 'adapter_config.json'), JSON.stringify(config))
    await expect(model.loadAdapter(empty)).rejects.toMatchObject({ code: 'NOT_FOUND' })
    await expect(model.loadAdapter(s.path('nowhere'))).rejects.toMatchObject({ code: 'NOT_FOUND' })
  })
})
