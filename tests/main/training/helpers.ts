// A real app context for training tests: real SQLite, the real handlers, a real engine host child process (from
// source via tsx), a tiny random chat model imported through models:import and a project with short Q&A rows.
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import type { Run, TrainingSettings } from '../../../preload/contract'
import type { AppContext } from '../../../main/context'
import type { Dispatch } from '../../../main/dispatch'
import { writeTinyChatModel } from '../../../main/models/tiny/writeTinyChatModel'
import { trainingServiceOf } from '../../../main/training/trainingHandlers'
import type { TrainingService, TrainingServiceOptions } from '../../../main/training/TrainingService'
import { callersOf, recordEvents, tempDir, testContext, testDispatcher, type Callers, type EventLog } from '../../helpers/tempContext'

export const QA_ROWS = [
  ['年假有幾天？', '到職滿一年有七天年假。'],
  ['加班費怎麼算？', '平日加班前兩小時加給三分之一。'],
  ['請病假要附證明嗎？', '連續三天以上需要附診斷證明。'],
  ['薪水幾號發？', '每月五日發放上月薪資。'],
  ['可以遠端工作嗎？', '每週最多兩天，需主管同意。'],
  ['婚假有幾天？', '婚假八天，薪資照給。'],
  ['喪假怎麼請？', '依親等給三到八天喪假。'],
  ['試用期多久？', '試用期三個月。'],
  ['午休幾點？', '中午十二點到一點半。'],
  ['停車位怎麼申請？', '向總務處登記，依序分配。'],
  ['健康檢查多久一次？', '每年一次，公司負擔費用。'],
  ['員工旅遊去哪裡？', '每年由福委會投票決定。'],
]

/** Small and fast settings for the CPU (changes on top of the 'demo' preset). */
export const FAST: Partial<TrainingSettings> = {
  trainOn: 'answers', maxLength: 256, loraR: 4, loraAlpha: 8, loraDropout: 0, loraTargets: ['q_proj', 'v_proj'], lr: 1e-2, epochs: 3, warmupEpochs: 0,
  schedule: 'constant', batchRows: 3, validationFraction: 0.25, neftuneAlpha: 0, gradCheckpointing: false, earlyStoppingPatience: 0,
  evalEverySteps: 0, checkpointEverySteps: 0, keepLastCheckpoints: 3, quant: 'none', exportAdapter: 'best',
}

let modelDirPromise: Promise<string> | null = null
/** One tiny model folder per test file (written once). */
export function tinyModel(): Promise<string> {
  if (!modelDirPromise) {
    const dir = join(tempDir('qt-tiny-model-'), 'tiny-llama')
    modelDirPromise = writeTinyChatModel(dir, { flavour: 'llama3', vocabSize: 600, hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2, initStd: 0.05 }).then(() => dir)
  }
  return modelDirPromise
}

export interface TrainingApp extends Callers, EventLog {
  ctx: AppContext
  dispatch: Dispatch
  dataDir: string
  projectId: number
  modelId: number
  training: TrainingService
  /** Waits until the run is no longer active and returns it. */
  finished(runId: number): Promise<Run>
  close(): Promise<void>
  cleanup(): Promise<void>
}

export async function openApp(dataDir: string, options: TrainingServiceOptions = { progressIntervalMs: 0 }): Promise<Omit<TrainingApp, 'projectId' | 'modelId'>> {
  const ctx = testContext(dataDir)
  const log = recordEvents(ctx)
  // The service first, with test options (progress events unthrottled); the handlers then find it.
  const training = trainingServiceOf(ctx, options)
  const dispatch = testDispatcher(ctx)
  let closed = false
  const app = {
    ctx,
    dispatch,
    dataDir,
    training,
    ...log,
    ...callersOf(dispatch),
    finished: (runId: number) => training.whenDone(runId),
    async close() {
      if (closed) return
      closed = true
      await ctx.close()
    },
    async cleanup() {
      await app.close()
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
  return app
}

/** A new data folder with a project of `rows` Q&A pairs whose model is the tiny model. */
export async function trainingApp(rows: string[][] = QA_ROWS): Promise<TrainingApp> {
  const app = await openApp(tempDir('qt-train-'))
  const modelDir = await tinyModel()
  const model = await app.call<{ id: number }>('models:import', { path: modelDir, name: 'tiny' })
  const project = await app.call<{ id: number }>('projects:create', { name: 'HR', systemPrompt: '你是一個zh-tw版本的聊天機器人' })
  await app.call('projects:update', { id: project.id, modelId: model.id })
  if (rows.length > 0) await app.call('rows:insert', { projectId: project.id, rows: rows.map(([question, answer]) => ({ question, answer })) })
  return { ...app, projectId: project.id, modelId: model.id }
}
