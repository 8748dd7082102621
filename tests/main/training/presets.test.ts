// Presets: the tutorial recipe is ENGINE_FACTS §1 exactly; every setting has advanced-panel metadata in both
// languages; the request schema is generated from that metadata.
import { describe, expect, it } from 'vitest'
import { PRESETS, SETTING_FIELDS, presetById, resolveSettings, trainingPresets } from '../../../main/training/presets'
import { settingsChangesSchema, trainingRequestSchema } from '../../../main/training/settingsSchema'
import { trainConfig } from '../../../main/training/engineConfig'

describe('training presets', () => {
  it('"Tutorial recipe" is the tutorial exactly (ENGINE_FACTS §1)', () => {
    const s = presetById('tutorial')!.settings
    expect(s).toMatchObject({
      quant: 'nf4', doubleQuant: true, computeDtype: 'auto',
      loraR: 32, loraAlpha: 8, loraDropout: 0.1, loraTargets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
      neftuneAlpha: 5, lr: 5e-5, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1, gradAccum: 1,
      batching: 'rows', batchRows: 4, epochs: 10, schedule: 'cosine_with_restarts', numCycles: 1, warmupEpochs: 0.2,
      earlyStoppingPatience: 3, earlyStoppingMinDelta: 0, evalEverySteps: 0, trainOn: 'all', gradCheckpointing: true, exportAdapter: 'best',
      seed: 42, shuffle: true, groupByLength: false,
    })
    const notes = presetById('tutorial')!.notes.map((n) => n.en).join(' ')
    expect(notes).toMatch(/lora_alpha/)
    expect(notes).toMatch(/every token/)
    expect(notes).toMatch(/validated on its own training set/)
    // And the engine gets exactly that.
    expect(trainConfig(s)).toMatchObject({ lr: 5e-5, batchRows: 4, epochs: 10, warmupEpochs: 0.2, numCycles: 1, schedule: 'cosine_with_restarts', neftuneAlpha: 5, tokenBudgetBatching: false, lora: { r: 32, alpha: 8, dropout: 0.1 } })
  })

  it('every preset sets every setting, and every setting has a field with zh-TW and English text', () => {
    const keys = Object.keys(PRESETS[0].settings).sort()
    expect(SETTING_FIELDS.map((f) => f.key).sort()).toEqual(keys)
    for (const p of PRESETS) {
      expect(Object.keys(p.settings).sort()).toEqual(keys)
      expect(p.name['zh-TW']).toBeTruthy()
      expect(p.description.en).toBeTruthy()
      expect(settingsChangesSchema.safeParse(p.settings).success).toBe(true)
    }
    for (const f of SETTING_FIELDS) {
      expect(f.label['zh-TW'] && f.label.en && f.explain['zh-TW'] && f.explain.en).toBeTruthy()
      if (f.kind === 'choice' || f.kind === 'multi') expect(f.options!.length).toBeGreaterThan(1)
    }
    expect(trainingPresets().presets.map((p) => p.id)).toEqual(['tutorial', 'small', 'medium', 'large', 'demo'])
  })

  it('the request schema takes changes within the fields\' ranges and refuses the rest', () => {
    expect(trainingRequestSchema.safeParse({ projectId: 1, preset: 'small', settings: { lr: 1e-4, loraTargets: ['q_proj'] } }).success).toBe(true)
    expect(trainingRequestSchema.safeParse({ projectId: 1, preset: 'small', settings: { lr: 0 } }).success).toBe(true) // refused later with a message
    expect(trainingRequestSchema.safeParse({ projectId: 1, preset: 'small', settings: { lr: -1 } }).success).toBe(false)
    expect(trainingRequestSchema.safeParse({ projectId: 1, preset: 'small', settings: { batchRows: 2.5 } }).success).toBe(false)
    expect(trainingRequestSchema.safeParse({ projectId: 1, preset: 'small', settings: { loraTargets: [] } }).success).toBe(false)
    expect(trainingRequestSchema.safeParse({ projectId: 1, preset: 'small', settings: { nope: 1 } }).success).toBe(false)
    expect(trainingRequestSchema.safeParse({ projectId: 1, preset: 'huge' }).success).toBe(false)
    expect(trainingRequestSchema.safeParse({ projectId: 1, preset: 'demo', device: 'gpu0' }).success).toBe(false)
    expect(resolveSettings('tutorial', { lr: 1e-4 })).toMatchObject({ lr: 1e-4, loraR: 32 })
    expect(presetById('tutorial')!.settings.lr).toBe(5e-5) // resolving never changes the preset
  })
})
