// Writes tiny models, their logits from our engine (base and with a trained LoRA adapter exported as PEFT) and
// greedy generations into a folder, for check_hf.py to compare against transformers + peft (the GPU machine has
// them; this machine does not). Run here:  npx tsx tests/native/reference/makeReference.ts .carry/hfref
// then there:                              python3 tests/native/reference/check_hf.py .carry/hfref
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { loadModel } from '../../../main/engine/Engine'
import { writeTinyModel, type TinyModelOptions } from '../../../main/models/tiny/writeTinyModel'
import { randomSamples, writeQtds } from '../helpers/qtds'

const flavours: Record<string, TinyModelOptions> = {
  llama: { architecture: 'llama' },
  llama3_rope_tied: { architecture: 'llama', tieEmbeddings: true, ropeScaling: { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPosition: 32 }, ropeTheta: 500000 },
  qwen2: { architecture: 'qwen2', shards: 2 },
  mistral: { architecture: 'mistral', dtype: 'float16' },
}

async function main(): Promise<void> {
  const out = resolve(process.argv[2] ?? '.carry/hfref')
  rmSync(out, { recursive: true, force: true })
  mkdirSync(out, { recursive: true })
  const ids = [1, 17, 93, 5, 61, 28, 44, 7, 120, 3, 99, 64, 12, 80, 33, 2, 50, 71, 18, 9, 101, 36, 58, 110]
  for (const [name, opts] of Object.entries(flavours)) {
    const dir = join(out, name)
    const modelDir = join(dir, 'model')
    await writeTinyModel(modelDir, { vocabSize: 128, hiddenSize: 64, intermediateSize: 96, numLayers: 2, numHeads: 4, numKvHeads: 2, initStd: 0.05, seed: 5, ...opts })
    const model = await loadModel({ folder: modelDir, quant: 'none' })
    const base = await model.forwardLogits(ids)
    writeFileSync(join(dir, 'logits_base.f32'), Buffer.from(base.buffer, base.byteOffset, base.byteLength))
    const gen = await model.generate(ids.slice(0, 6), { maxNewTokens: 16 })

    const setPath = join(dir, 'train.qtds')
    writeQtds(setPath, randomSamples([12, 16, 10, 14], 128, 3), 128)
    const trainer = await model.createTrainer({ lora: { r: 8, alpha: 16, dropout: 0, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] },
      lr: 2e-2, schedule: 'constant', totalSteps: 10, batchRows: 4, neftuneAlpha: 0 }, setPath)
    await trainer.step(10)
    await trainer.exportAdapter(join(dir, 'adapter'), { baseModelNameOrPath: `qa-tuner/tiny-${name}` })
    const withAdapter = await model.forwardLogits(ids, { adapter: trainer.adapter })
    writeFileSync(join(dir, 'logits_adapter.f32'), Buffer.from(withAdapter.buffer, withAdapter.byteOffset, withAdapter.byteLength))
    const genAdapter = await model.generate(ids.slice(0, 6), { maxNewTokens: 16 }, { adapter: trainer.adapter })
    writeFileSync(join(dir, 'reference.json'), JSON.stringify({ ids, vocab: 128, greedy_prompt: ids.slice(0, 6), greedy_base: gen.tokens, greedy_adapter: genAdapter.tokens }, null, 2))
    await model.close()
    console.log(`${name}: written`)
  }
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
