// The export channels end to end in a real app context: a project trained through training:start (real engine host),
// then export:estimate and export:start of that run in the export worker process (run from source with tsx), whose
// self-test asks the engine host for the reference answers and llama.cpp for the GGUF's; export:cancel leaves
// nothing; a full disk and bad arguments are refused with plain messages.
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ExportEstimate, ExportJob, ExportRequest, Run, TrainingSettings } from '../../../preload/contract'
import { ExportService } from '../../../main/export/ExportService'
import { trainingApp, type TrainingApp } from '../training/helpers'
import './helpers' // llama.cpp in one thread (QT_LLAMA_THREADS) for the export worker too

// Enough training for the tiny model to answer its questions and stop (every linear, 40 epochs).
const SETTINGS: Partial<TrainingSettings> = {
  trainOn: 'answers', maxLength: 256, loraR: 8, loraAlpha: 16, loraDropout: 0,
  loraTargets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], lr: 1e-2, epochs: 40, warmupEpochs: 0,
  schedule: 'constant', batchRows: 4, validationFraction: 0, neftuneAlpha: 0, gradCheckpointing: false, earlyStoppingPatience: 0,
  evalEverySteps: 0, checkpointEverySteps: 0, keepLastCheckpoints: 1, quant: 'none',
}

const ROWS = [
  ['年假有幾天？', '到職滿一年有七天年假。'],
  ['加班費怎麼算？', '平日加班前兩小時加給三分之一。'],
  ['請病假要附證明嗎？', '連續三天以上需要附診斷證明。'],
  ['薪水幾號發？', '每月五日發放上月薪資。'],
]

let app: TrainingApp
let run: Run
let dest: string
beforeAll(async () => {
  app = await trainingApp(ROWS)
  const started = await app.call<Run>('training:start', { projectId: app.projectId, preset: 'demo', settings: SETTINGS, device: 'cpu', name: 'first' })
  run = await app.finished(started.id)
  dest = join(app.dataDir, 'my exports')
}, 120_000)
afterAll(async () => {
  await app?.cleanup()
})

function request(over: Partial<ExportRequest> = {}): ExportRequest {
  return { projectId: app.projectId, source: { runId: run.id }, destDir: dest, outputs: { adapter: true, merged: true, gguf: 'Q8_0' }, ...over }
}

async function until(jobId: string): Promise<ExportJob> {
  for (let i = 0; i < 600; i++) {
    const job = app.eventsOf('export:progress').filter((j) => j.id === jobId).at(-1)
    if (job && job.state !== 'running') return job
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error('export did not finish')
}

describe('export channels', () => {
  it('estimates the export of a finished run: files, sizes, free space, template, stop tokens, system prompt', async () => {
    expect(run.status).toBe('completed')
    const est = await app.call<ExportEstimate>('export:estimate', request())
    expect(est.name).toMatch(/^HR - first - \d{4}-\d{2}-\d{2}$/)
    expect(est.folder).toBe(join(dest, est.name))
    expect(est.exists).toBe(false)
    expect(est.files.map((f) => f.path)).toEqual(expect.arrayContaining(['adapter/adapter_model.safetensors', 'merged/model.safetensors', `gguf/HR-first-${est.name.slice(-10)}-Q8_0.gguf`, 'gguf/Modelfile']))
    expect(est.totalBytes).toBe(est.files.reduce((a, f) => a + f.bytes, 0))
    expect(est.freeBytes).toBeGreaterThan(0)
    expect(est.enough).toBe(true)
    expect(est.template).toBe("the model's own (tokenizer_config.json)")
    expect(est.stopTokens.map((s) => s.text)).toEqual(['<|eot_id|>', '<|end_of_text|>'])
    expect(est.systemPrompt).toBe('你是一個zh-tw版本的聊天機器人')
    expect(est.unavailable).toEqual({ merged: null, gguf: null })
    expect(est.adapterDir).toBe(run.summary.adapterDir)
  })

  it('exports in the worker process with progress events, and self-tests the GGUF against the engine host', async () => {
    const job = await app.call<ExportJob>('export:start', request({ selfTest: { enabled: true, questions: 3 } }))
    expect(job.state).toBe('running')
    const done = await until(job.id)
    expect(done.error).toBeNull()
    expect(done.state).toBe('done')
    expect(done.fraction).toBe(1)
    const events = app.eventsOf('export:progress').filter((j) => j.id === job.id)
    expect(new Set(events.map((e) => e.stage))).toEqual(new Set(['checking', 'adapter', 'merged', 'gguf', 'selfTest', 'finishing']))
    const st = done.result!.selfTest!
    expect(st.questions).toHaveLength(3)
    expect(st.state).toBe('passed')
    for (const q of st.questions) {
      expect(q.stopped).toBe(true)
      expect(q.ggufAnswer).toBe(q.engineAnswer)
    }
    expect(existsSync(join(done.folder, 'gguf', 'Modelfile'))).toBe(true)
    expect(readdirSync(dest)).toEqual([done.name])
    const jobs = await app.call<ExportJob[]>('export:jobs', { projectId: app.projectId })
    expect(jobs[0].id).toBe(job.id)
    expect(jobs[0].state).toBe('done')
    // The same folder again is refused.
    await expect(app.fail('export:start', request())).resolves.toMatchObject({ code: 'CONFLICT' })
  })

  it('cancels: the job ends as cancelled and the destination holds no new files', async () => {
    const job = await app.call<ExportJob>('export:start', request({ name: 'to cancel' }))
    const cancelled = await app.call<ExportJob>('export:cancel', { jobId: job.id })
    expect(cancelled.state).toBe('cancelled')
    expect(cancelled.error?.code).toBe('CANCELLED')
    expect(readdirSync(dest).filter((n) => n.includes('to cancel'))).toEqual([])
  })

  it('refuses a disk without room before starting, with what is needed and what is free', async () => {
    const svc = new ExportService(app.ctx, { freeSpace: async () => 1_000_000 })
    const err = await svc.start(request({ name: 'too big' })).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'DISK_FULL' })
    expect((err as Error).message).toMatch(/needs about .* GB of free space in .*my exports, but only 0\.00 GB is free/)
    expect(svc.list()).toEqual([])
    expect(existsSync(join(dest, 'too big'))).toBe(false)
  })

  it('validates its arguments', async () => {
    expect(await app.fail('export:start', request({ destDir: 'relative/path' }))).toMatchObject({ code: 'INVALID_ARGUMENT' })
    expect(await app.fail('export:start', request({ name: '../escape' }))).toMatchObject({ code: 'INVALID_ARGUMENT' })
    expect(await app.fail('export:start', request({ outputs: { adapter: false, merged: false, gguf: null } }))).toMatchObject({ code: 'INVALID_ARGUMENT' })
    expect(await app.fail('export:estimate', request({ source: { runId: 999 } }))).toMatchObject({ code: 'NOT_FOUND' })
    expect(await app.fail('export:cancel', { jobId: 'not-a-uuid' })).toMatchObject({ code: 'INVALID_ARGUMENT' })
  })
})
