// Settings and situations refused before a run starts, each with a message that says what to change; and the
// estimate (data, steps, memory fit, time) that the start screen shows.
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { Run, SettingProblem, TrainingEstimate } from '../../../preload/contract'
import { writeBigSparseModel } from './bigSparseModel'
import { tempDir } from '../../helpers/tempContext'
import { FAST, QA_ROWS, trainingApp, type TrainingApp } from './helpers'

const apps: TrainingApp[] = []
const dirs: string[] = []
afterAll(async () => {
  for (const a of apps) await a.cleanup()
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

async function app(rows?: string[][]): Promise<TrainingApp> {
  const a = await trainingApp(rows)
  apps.push(a)
  return a
}

async function refused(a: TrainingApp, arg: object): Promise<{ message: string; problems: SettingProblem[] }> {
  const err = await a.fail('training:start', arg)
  expect(err.code).toBe('INVALID_ARGUMENT')
  const problems = (err.details as { problems: SettingProblem[] }).problems
  return { message: err.message, problems }
}

describe('bad settings are refused before the run starts', () => {
  it('learning rate 0', async () => {
    const a = await app()
    const { message, problems } = await refused(a, { projectId: a.projectId, preset: 'demo', settings: { ...FAST, lr: 0 } })
    expect(message).toMatch(/learning rate is 0.*Set it above 0/)
    expect(problems).toContainEqual(expect.objectContaining({ code: 'lrZero', severity: 'error', field: 'lr' }))
    expect(problems.find((p) => p.code === 'lrZero')!.message['zh-TW']).toMatch(/學習率是 0/)
    expect(await a.call<Run[]>('runs:list', { projectId: a.projectId })).toEqual([]) // nothing was created
  })

  it('an empty dataset, all rows disabled, and rows that would all be skipped', async () => {
    const a = await app([])
    let r = await refused(a, { projectId: a.projectId, preset: 'demo', settings: FAST })
    expect(r.problems.map((p) => p.code)).toContain('emptyDataset')
    expect(r.message).toMatch(/no enabled Q&A rows.*dataset editor/)

    await a.call('rows:insert', { projectId: a.projectId, rows: [{ question: '有答案嗎？', answer: '有。', enabled: false }] })
    r = await refused(a, { projectId: a.projectId, preset: 'demo', settings: FAST })
    expect(r.problems.map((p) => p.code)).toContain('emptyDataset')

    const b = await app([['只有問題一？', '一'], ['只有問題二？', '二']])
    // Both rows are longer than a 12-token limit with "skip".
    r = await refused(b, { projectId: b.projectId, preset: 'demo', settings: { ...FAST, maxLength: 12, truncation: 'skip' } })
    const skipped = r.problems.find((p) => p.code === 'allRowsSkipped')!
    expect(skipped.message.en).toMatch(/All 2 enabled rows would be skipped \(tooLong: 2\)/)
    expect(skipped.message.en).toMatch(/set "When too long" to cut/)
  })

  it('no model, a model whose folder is gone', async () => {
    const a = await app()
    await a.call('projects:update', { id: a.projectId, modelId: null })
    let r = await refused(a, { projectId: a.projectId, preset: 'demo', settings: FAST })
    expect(r.problems.map((p) => p.code)).toContain('noModel')
    expect(r.message).toMatch(/Choose one on the Models page/)

    const { writeTinyChatModel } = await import('../../../main/models/tiny/writeTinyChatModel')
    const root = tempDir('qt-gone-')
    dirs.push(root)
    const dir = join(root, 'gone')
    await writeTinyChatModel(dir, { flavour: 'llama3', vocabSize: 600, hiddenSize: 32, intermediateSize: 64, numLayers: 1, numHeads: 4, numKvHeads: 2 })
    const m = await a.call<{ id: number }>('models:import', { path: dir })
    rmSync(dir, { recursive: true })
    r = await refused(a, { projectId: a.projectId, modelId: m.id, preset: 'demo', settings: FAST })
    expect(r.problems.map((p) => p.code)).toContain('modelUnusable')
    expect(r.message).toMatch(/is gone/)
  })

  it('a second run while one is active', async () => {
    const a = await app()
    const first = await a.call<Run>('training:start', { projectId: a.projectId, preset: 'demo', settings: { ...FAST, epochs: 200 } })
    const r = await refused(a, { projectId: a.projectId, preset: 'demo', settings: FAST })
    expect(r.problems).toContainEqual(expect.objectContaining({ code: 'runActive' }))
    expect(r.message).toMatch(new RegExp(`Run #${first.id} is still active`))
    await a.call('training:stop', { runId: first.id })
    expect((await a.finished(first.id)).status).toBe('stopped')
  })

  it('a token budget below the longest row', async () => {
    const a = await app()
    const est = await a.call<TrainingEstimate>('training:estimate', { projectId: a.projectId, preset: 'demo', settings: { ...FAST, batching: 'tokens', tokenBudget: 64 } })
    const p = est.problems.find((x) => x.code === 'tokenBudgetTooSmall')!
    expect(p.field).toBe('tokenBudget')
    expect(p.message.en).toMatch(new RegExp(`Raise it to at least ${est.data.maxTokens}`))
    expect(est.canStart).toBe(false)
  })

  it('a batch larger than the device\'s memory allows: refused with the batch size that fits', async () => {
    const a = await app([])
    const root = tempDir('qt-big-')
    dirs.push(root)
    const dir = join(root, 'big-llama')
    await writeBigSparseModel(dir)
    const big = await a.call<{ id: number }>('models:import', { path: dir, name: 'big' })
    const long = '到職滿一年有七天年假，之後每年依年資增加，最多三十天。'
    await a.call('rows:insert', { projectId: a.projectId, rows: Array.from({ length: 40 }, (_, i) => ({ question: `第 ${i} 題？`, answer: long.repeat(60) })) })
    const base = { projectId: a.projectId, modelId: big.id, preset: 'demo', device: 'cpu' }
    const settings = { maxLength: 8192, validationFraction: 0.1 }
    const one = await a.call<TrainingEstimate>('training:estimate', { ...base, settings: { ...settings, batchRows: 1 } })
    const two = await a.call<TrainingEstimate>('training:estimate', { ...base, settings: { ...settings, batchRows: 2 } })
    const perRow = two.memory.estimate!.totalBytes - one.memory.estimate!.totalBytes
    const avail = one.memory.availableBytes!
    expect(perRow).toBeGreaterThan(100 * 1024 ** 2)
    const tooMany = Math.ceil((avail - one.memory.estimate!.totalBytes) / perRow) + 2
    expect(tooMany).toBeLessThanOrEqual(one.data.trainRows) // the fixture has rows enough on this machine
    const r = await refused(a, { ...base, settings: { ...settings, batchRows: tooMany } })
    const p = r.problems.find((x) => x.code === 'wontFit')!
    expect(p.field).toBe('batchRows')
    const fitting = Math.floor((avail * 0.85 - one.memory.estimate!.totalBytes) / perRow) + 1
    expect(p.message.en).toMatch(/This needs about [\d.]+ GB but RAM has [\d.]+ GB available\. Lower the rows per batch to (\d+) or fewer/)
    const suggested = Number(/to (\d+) or fewer/.exec(p.message.en)![1])
    expect(Math.abs(suggested - fitting)).toBeLessThanOrEqual(1)
    expect(p.message['zh-TW']).toMatch(/請把每批筆數調到/)
    // And the suggested batch size is accepted by the estimate.
    const ok = await a.call<TrainingEstimate>('training:estimate', { ...base, settings: { ...settings, batchRows: suggested } })
    expect(ok.memory.fit === 'fits' || ok.memory.fit === 'tight').toBe(true)
  })

  it('the estimate: rows, split, steps, memory against the device and time (assumed, then measured)', async () => {
    const a = await app()
    const req = { projectId: a.projectId, preset: 'demo', settings: FAST }
    const est = await a.call<TrainingEstimate>('training:estimate', req)
    expect(est.canStart).toBe(true)
    expect(est.problems.filter((p) => p.severity === 'error')).toEqual([])
    expect(est.data).toMatchObject({ enabledRows: QA_ROWS.length, usableRows: QA_ROWS.length, skippedRows: 0, trainRows: 9, validationRows: 3 })
    expect(est.steps).toEqual({ perEpoch: 3, total: 9, warmup: 0 })
    expect(est.device?.id).toBe('cpu')
    expect(est.memory.fit).toBe('fits')
    expect(est.memory.estimate!.totalBytes).toBeGreaterThan(0)
    expect(est.time.basis).toBe('assumed')
    expect(est.time.seconds).toBeGreaterThan(0)
    expect(est.suggestedPreset).toBe('demo')
    const run = await a.finished((await a.call<Run>('training:start', req)).id)
    expect(run.totalSteps).toBe(est.steps.total)
    const again = await a.call<TrainingEstimate>('training:estimate', req)
    expect(again.time.basis).toBe('measured')
    expect(again.time.note.en).toMatch(/measured speed/)
  })
})
