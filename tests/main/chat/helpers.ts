// A real app context for chat tests: real SQLite, the real handlers, a real engine host child process (from source
// via tsx, the native addon on the CPU), tiny random chat models imported through models:import, a project with
// short Q&A rows, and a training run made through training:start.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { EventName, Events, Run, TrainingSettings } from '../../../preload/contract'
import { chatServicesOf, type ChatServices } from '../../../main/chat/chatHandlers'
import { createAppContext, type AppContext } from '../../../main/context'
import { createDispatcher, type Dispatch } from '../../../main/dispatch'
import { createHandlers } from '../../../main/handlers'
import { writeTinyChatModel } from '../../../main/models/tiny/writeTinyChatModel'
import { createConfSettings } from '../../../main/settings/confSettings'
import { trainingServiceOf } from '../../../main/training/trainingHandlers'

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

export function tempDir(prefix = 'qt-chat-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
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

export interface ChatApp {
  ctx: AppContext
  dispatch: Dispatch
  dataDir: string
  services: ChatServices
  projectId: number
  smallModelId: number
  events: { event: EventName; payload: unknown }[]
  call<T = unknown>(channel: string, arg?: unknown): Promise<T>
  fail(channel: string, arg?: unknown): Promise<{ code: string; message: string; details?: unknown }>
  eventsOf<E extends EventName>(event: E): Events[E][]
  /** Trains a run on the project with MEMORIZE (plus changes) and waits for it. */
  train(changes?: Partial<TrainingSettings>): Promise<Run>
  cleanup(): Promise<void>
}

export async function chatApp(): Promise<ChatApp> {
  const dataDir = tempDir()
  const ctx = createAppContext({ mode: 'browser', dataDir, settings: createConfSettings(dataDir), seed: false })
  const events: ChatApp['events'] = []
  ctx.events.onAny((event, payload) => events.push({ event, payload }))
  // Services first with test options (every stream piece sent at once); the handlers then find them.
  const training = trainingServiceOf(ctx, { progressIntervalMs: 0 })
  const services = chatServicesOf(ctx, { streamIntervalMs: 0, log: () => undefined })
  const dispatch = createDispatcher(createHandlers(ctx, { engineBackends: () => ['cpu'] }), () => {})
  const call = async <T>(channel: string, arg?: unknown): Promise<T> => {
    const r = await dispatch(channel, arg)
    if (!r.ok) throw Object.assign(new Error(`${channel}: ${r.error.message}`), { code: r.error.code, details: r.error.details })
    return r.value as T
  }
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
    events,
    call,
    async fail(channel, arg) {
      const r = await dispatch(channel, arg)
      if (r.ok) throw new Error(`${channel} succeeded but should have failed`)
      return r.error as { code: string; message: string; details?: unknown }
    },
    eventsOf: <E extends EventName>(event: E) => events.filter((e) => e.event === event).map((e) => e.payload as Events[E]),
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
