// The memory estimate's activation layout (main/models/memoryEstimate.ts) against what the engine really allocates for
// a trainer (its memory ledger), on the CPU: the fp32 layout with and without gradient checkpointing, and bf16 layer
// inputs (the GPU's layout for 16-bit compute; QT_CKPT_BF16=1 forces it on the CPU). The engine rounds each of its
// ~40 slices up to 64 bytes, hence the small slack.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../../main/engine/Engine'
import type { Model } from '../../main/engine/Model'
import { activationElements, activationLayout, type ArchitectureNumbers } from '../../main/models/memoryEstimate'
import { parseModelConfig } from '../../main/models/modelConfig'
import { scratch, tinyModelFolder, trainingSet } from './helpers/engine'

const s = scratch('qt-memest-')
let model: Model
let arch: ArchitectureNumbers

beforeAll(async () => {
  const folder = await tinyModelFolder(s, 'llama4', { numLayers: 4 }) // 4 layers: bf16 layer inputs take less (2 + 4/2 < 5)
  arch = parseModelConfig(JSON.parse(readFileSync(join(folder, 'config.json'), 'utf8')), folder)
  model = await loadModel({ folder })
})
afterAll(async () => {
  await model?.close()
  s.cleanup()
})

describe('memory estimate vs the engine', () => {
  const lengths = [12, 12, 9, 12, 7, 12]
  const rows = 3
  const N = rows * 12 // fixed rows per batch: rows x the longest sample
  const cases = [
    { name: 'checkpointed, fp32', checkpointing: true, ckptEnv: undefined, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] },
    { name: 'checkpointed, bf16 layer inputs', checkpointing: true, ckptEnv: '1', targets: ['q_proj', 'v_proj'] },
    { name: 'no checkpointing', checkpointing: false, ckptEnv: undefined, targets: ['q_proj', 'down_proj'] },
  ] as const
  for (const c of cases) {
    it(`${c.name}: the trainer's activations are the estimate's`, async () => {
      const set = trainingSet(s, `set-${c.name.replace(/\W+/g, '-')}.qtds`, lengths)
      const before = model.memory().activationsBytes
      const saved = process.env.QT_CKPT_BF16
      if (c.ckptEnv) process.env.QT_CKPT_BF16 = c.ckptEnv
      let trainer
      try {
        trainer = await model.createTrainer({
          lora: { r: 4, alpha: 8, dropout: 0.1, targets: [...c.targets] }, lr: 1e-3, totalSteps: 2, batchRows: rows,
          gradCheckpointing: c.checkpointing, seed: 3,
        }, set.path)
      } finally {
        if (saved === undefined) delete process.env.QT_CKPT_BF16
        else process.env.QT_CKPT_BF16 = saved
      }
      const engine = model.memory().activationsBytes - before
      const layout = activationLayout(arch, { backend: 'cpu', bf16Capable: false, gradCheckpointing: c.checkpointing, loraTargets: c.targets })
      if (c.ckptEnv) layout.ckptBf16 = true
      const estimate = activationElements(arch, c.checkpointing ? 'trainCheckpointed' : 'train', N, 4, layout) * 4
      expect(engine).toBeGreaterThanOrEqual(estimate)
      expect(engine - estimate).toBeLessThan(64 * 80)
      if (c.ckptEnv) expect(estimate).toBeLessThan(activationElements(arch, 'trainCheckpointed', N, 4, { ...layout, ckptBf16: false }) * 4)
      trainer.dispose()
    })
  }
})
