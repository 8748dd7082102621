// Fixtures for the export tests: a tiny chat model (weights + tokenizer, main/models/tiny) and a LoRA adapter
// trained on a few HR questions until it answers them (so B is far from zero and greedy answers are stable).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { compileDataset } from '../../../main/datasets/compiler/compileDataset'
import { loadModel } from '../../../main/engine/Engine'
import { writeTinyChatModel, type TinyChatModelOptions } from '../../../main/models/tiny/writeTinyChatModel'

// llama.cpp in one thread: test files run side by side on 2 cores, and llama.cpp's spinning threads crawl when the
// cores are oversubscribed. Export workers started by the tests inherit it.
process.env.QT_LLAMA_THREADS ??= '1'

export const SYSTEM = '你是一個zh-tw版本的聊天機器人'

export const ROWS = [
  { id: 1, question: '年假有幾天？', answer: '到職滿一年有七天年假。', enabled: true },
  { id: 2, question: '加班費怎麼算？', answer: '平日加班前兩小時加給三分之一。', enabled: true },
  { id: 3, question: '請病假要附證明嗎？', answer: '連續三天以上需要附診斷證明。', enabled: true },
  { id: 4, question: '薪水幾號發？', answer: '每月五日發放上月薪資。', enabled: true },
]

export function scratchDir(prefix: string): { root: string; path: (...p: string[]) => string; cleanup: () => void } {
  const root = mkdtempSync(join(tmpdir(), prefix))
  return { root, path: (...p: string[]) => join(root, ...p), cleanup: () => rmSync(root, { recursive: true, force: true }) }
}

export interface TrainedFixture {
  modelDir: string
  adapterDir: string
}

/** Writes a tiny chat model into root/model and a trained adapter into root/adapter. */
export async function trainedTinyModel(root: string, opts: TinyChatModelOptions & { steps?: number } = {}): Promise<TrainedFixture> {
  const { steps = 60, ...modelOpts } = opts
  const modelDir = join(root, 'model')
  await writeTinyChatModel(modelDir, { flavour: 'llama3', hiddenSize: 64, intermediateSize: 128, numLayers: 2, numHeads: 4, numKvHeads: 2, initStd: 0.05, ...modelOpts })
  await compileDataset(ROWS, { modelDir, outDir: join(root, 'data'), systemPrompt: SYSTEM, validationFraction: 0 })
  const model = await loadModel({ folder: modelDir, quant: 'none' })
  try {
    const trainer = await model.createTrainer(
      {
        lora: { r: 8, alpha: 16, dropout: 0, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] },
        lr: 1e-2, schedule: 'constant', totalSteps: steps, batchRows: 4, neftuneAlpha: 0,
      },
      join(root, 'data', 'train.qtds'),
    )
    await trainer.step(steps)
    const adapterDir = join(root, 'adapter')
    await trainer.exportAdapter(adapterDir, { baseModelNameOrPath: modelDir })
    return { modelDir, adapterDir }
  } finally {
    await model.close()
  }
}
