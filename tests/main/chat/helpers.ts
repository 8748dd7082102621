// A real app context for chat tests: real SQLite, the real handlers, a real engine host child process (from source
// via tsx, the native addon on the CPU), tiny random chat models imported through models:import, a project with
// short Q&A rows, and a training run made through training:start.
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import type { Run, TrainingSettings } from '../../../preload/contract'
import { chatServicesOf, type ChatServices } from '../../../main/chat/chatHandlers'
import type { AppContext } from '../../../main/context'
import type { Dispatch } from '../../../main/dispatch'
import { writeTinyChatModel } from '../../../main/models/tiny/writeTinyChatModel'
import { trainingServiceOf } from '../../../main/training/trainingHandlers'
import { callersOf, recordEvents, tempDir, testContext, testDispatcher, type Callers, type EventLog } from '../../helpers/tempContext'

export const SYSTEM = '你是一個zh-tw版本的聊天機器人'

export const QA = [
  ['年假有幾天？', '到職滿一年有七天年假。'],
  ['加班費怎麼算？', '平日加班前兩小時加給三分之一。'],
  ['請病假要附證明嗎？', '連續三天以上需要附診斷證明。'],
  ['薪水幾號發？', '每月五日發放上月薪資。'],
  ['可以遠端工作嗎？', '每週最多兩天，需主管同意。'],
  ['婚假有幾天？', '婚假八天，薪資照給。'],
  ['試用期多久？', '試用期三個月。'],
  ['午休幾點？', '中午十二點到一點半。'],
]

/** A run that learns the rows by heart in a few seconds on the CPU (changes on top of the 'demo' preset). */
export const MEMORIZE: Partial<TrainingSettings> = {
  trainOn: 'answers', maxLength: 128, loraR: 16, loraAlpha: 32, loraDropout: 0, lr: 1e-2, epochs: 40, warmupEpochs: 0, schedule: 'constant', batchRows: 4,
  validationFraction: 0.25, neftuneAlpha: 0, gradCheckpointing: false, earlyStoppingPatience: 0, evalEverySteps: 0, checkpointEverySteps: 0,
  keepLastCheckpoints: 2, quant: 'none', exportAdapter: 'final',
}

const models = new Map<string, Promise<string>>()
/** 'small': learns fast (64 wide, 2 layers). 'slow': 256 wide, 4 layers, 4096 positions: about a millisecond per
 *  token on the CPU, long enough to stop an answer midway. Written once per test file. */
export function tinyModel(kind: 'small' | 'slow'): Promise<string> {
  let p = models.get(kind)
  if (!p) {
    const dir = join(tempDir('qt-chat-model-'), kind)
    const opts =
      kind === 'small'
        ? { hiddenSize: 64, intermediateSize: 128, numLayers: 2, numHeads: 4, numKvHeads: 2, initStd: 0.05 }
        : { hiddenSize: 256, intermediateSize: 512, numLayers: 4, numHeads: 8, numKvHeads: 4, maxPosition: 4096, seed: 7 }
    p = writeTinyChatModel(dir, { flavour: 'llama3', vocabSize: 600, ...opts }).then(() => dir)
    models.set(kind, p)
  }
  return p
}

export interface ChatApp extends Callers, EventLog {
  ctx: AppContext
  dispatch: Dispatch
  dataDir: string
  services: ChatServices
  projectId: number
  smallModelId: number
  /** Trains a run on the project with MEMORIZE (plus changes) and waits for it. */
  train(changes?: Partial<TrainingSettings>): Promise<Run>
  cleanup(): Promise<void>
}

export async function chatApp(): Promise<ChatApp> {
  const dataDir = tempDir('qt-chat-')
  const ctx = testContext(dataDir)
  const log = recordEvents(ctx)
  // Services first with test options (every stream piece sent at once); the handlers then find them.
  const training = trainingServiceOf(ctx, { progressIntervalMs: 0 })
  const services = chatServicesOf(ctx, { streamIntervalMs: 0, log: () => undefined })
  const dispatch = testDispatcher(ctx)
  const { call, fail } = callersOf(dispatch, { label: true })
  const model = await call<{ id: number }>('models:import', { path: await tinyModel('small'), name: 'tiny' })
  const project = await call<{ id: number }>('projects:create', { name: 'HR', systemPrompt: SYSTEM })
  await call('projects:update', { id: project.id, modelId: model.id })
  await call('rows:insert', { projectId: project.id, rows: QA.map(([question, answer]) => ({ question, answer })) })
  return {
    ctx,
    dispatch,
    dataDir,
    services,
    projectId: project.id,
    smallModelId: model.id,
    ...log,
    call,
    fail,
    async train(changes = {}) {
      const run = await call<Run>('training:start', { projectId: project.id, preset: 'demo', settings: { ...MEMORIZE, ...changes }, device: 'cpu' })
      return training.whenDone(run.id)
    },
    async cleanup() {
      await ctx.close()
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
}
