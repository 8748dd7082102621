// End to end without downloads: a tiny chat model (weights + tiny tokenizer with matching ids), Q&A rows compiled
// by the real training-set compiler, LoRA training through the facade, then chat: greedy answers to the training
// questions, stopped by the template's end-of-turn token, decode to exactly the trained answers.
import { afterAll, describe, expect, it } from 'vitest'
import { compileDataset } from '../../main/datasets/compiler/compileDataset'
import { inspectDataset, inspectModel, loadModel } from '../../main/engine/Engine'
import { writeTinyChatModel } from '../../main/models/tiny/writeTinyChatModel'
import { chatFormatFor } from '../../main/tokenizer/ChatFormat'
import { loadTokenizer } from '../../main/tokenizer/loadTokenizer'
import { scratch } from './helpers/engine'

const s = scratch('qt-e2e-')
afterAll(() => s.cleanup())

const SYSTEM = '你是一個zh-tw版本的聊天機器人'
const rows = [
  { id: 1, question: '年假有幾天？', answer: '到職滿一年有七天年假。', enabled: true },
  { id: 2, question: '加班費怎麼算？', answer: '平日加班前兩小時加給三分之一。', enabled: true },
  { id: 3, question: '請病假要附證明嗎？', answer: '連續三天以上需要附診斷證明。', enabled: true },
  { id: 4, question: '薪水幾號發？', answer: '每月五日發放上月薪資。', enabled: true },
]

describe('tiny chat model end to end', () => {
  it('writes a model whose ids agree with its tokenizer', async () => {
    for (const flavour of ['llama3', 'chatml'] as const) {
      const dir = s.path(`agree-${flavour}`)
      const info = await writeTinyChatModel(dir, { flavour, vocabSize: 600, hiddenSize: 32, intermediateSize: 64 })
      const tok = await loadTokenizer(dir)
      const { config } = await inspectModel(dir)
      expect(config.vocabSize).toBe(tok.vocabSize)
      expect(config.architecture).toBe(flavour === 'llama3' ? 'LlamaForCausalLM' : 'Qwen2ForCausalLM')
      expect(tok.eosIds).toEqual(expect.arrayContaining(info.tokenizer.eosTokenId))
      expect(tok.bos?.id ?? null).toBe(info.tokenizer.bosTokenId)
    }
  })

  it('compiles Q&A rows, trains a LoRA adapter on them and answers the trained questions exactly', async () => {
    const dir = s.path('chat')
    await writeTinyChatModel(dir, { flavour: 'llama3', hiddenSize: 64, intermediateSize: 128, numLayers: 2, numHeads: 4, numKvHeads: 2, initStd: 0.05 })
    const summary = await compileDataset(rows, { modelDir: dir, outDir: s.path('data'), systemPrompt: SYSTEM, validationFraction: 0 })
    expect(summary.rows.used).toBe(4)
    const trainPath = s.path('data', 'train.qtds')
    expect(await inspectDataset(trainPath)).toEqual({ numSamples: 4, numTokens: summary.train.tokens, numTargetTokens: summary.train.targetTokens, maxLength: summary.train.longest })

    const model = await loadModel({ folder: dir })
    const trainer = await model.createTrainer({
      lora: { r: 16, alpha: 32, dropout: 0, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] },
      lr: 1e-2, schedule: 'constant', epochs: 60, batchRows: 4, neftuneAlpha: 0,
    }, trainPath)
    expect(trainer.totalSteps).toBe(60)
    const before = await trainer.evaluate(trainPath)
    const { metrics } = await trainer.step(60)
    const after = await trainer.evaluate(trainPath)
    expect(after).toBeLessThan(before * 0.7)
    expect(metrics[59].loss).toBeLessThan(metrics[0].loss)

    const tok = await loadTokenizer(dir)
    const format = chatFormatFor(tok, 'model')
    for (const row of rows) {
      const { ids } = format.encode([{ role: 'system', content: SYSTEM }, { role: 'user', content: row.question }], { addGenerationPrompt: true })
      const streamed: number[] = []
      const out = await model.generate(ids, { maxNewTokens: 40, stopIds: summary.tokenizer.stopIds }, { adapter: trainer.adapter, onToken: (id) => streamed.push(id) })
      expect(out.finish).toBe('stop')
      expect(out.tokens.at(-1)).toBe(format.endOfTurnId)
      expect(streamed).toEqual(out.tokens)
      expect(tok.decode(out.tokens, { skipSpecialTokens: true })).toBe(row.answer)
      // The base model alone does not know the answer.
      const base = await model.generate(ids, { maxNewTokens: 20, stopIds: summary.tokenizer.stopIds })
      expect(tok.decode(base.tokens, { skipSpecialTokens: true })).not.toBe(row.answer)
    }
    // The exported adapter, loaded back, answers the same.
    await trainer.exportAdapter(s.path('adapter'), { baseModelNameOrPath: dir })
    const loaded = await model.loadAdapter(s.path('adapter'))
    const { ids } = format.encode([{ role: 'system', content: SYSTEM }, { role: 'user', content: rows[2].question }], { addGenerationPrompt: true })
    const again = await model.generate(ids, { maxNewTokens: 40, stopIds: summary.tokenizer.stopIds }, { adapter: loaded })
    expect(tok.decode(again.tokens, { skipSpecialTokens: true })).toBe(rows[2].answer)
    await model.close()
  })
})
