// The Training page in headless Chromium against browser mode, on the bundled demo model (a 1M-parameter Llama) with
// the CPU "demo" preset and few epochs, so every run takes seconds:
//   - one click starts a run; the loss chart grows live; stop (checkpoint) -> resume -> a reload mid-run shows the
//     run live again -> it completes with a PEFT adapter on disk and a verdict;
//   - kill -9 of the engine host mid-run: the run is interrupted with the reason, the app keeps working, resume
//     completes on a new host process;
//   - SIGKILL of the whole server mid-run: after a restart on the same data folder the start-up offer appears and
//     one click resumes the run to completion;
//   - learning rate 0 and an empty project are refused before a run exists, saying what to change;
//   - history: compare two runs (overlaid curves, settings diff), delete one (confirm; its folder goes).
import { expect, test, type Page } from '@playwright/test'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { EngineStatus, Run, RunDetail } from '../../preload/contract'
import { callApi, newDataDir, startServer, type TestServer } from './server'

let server: TestServer | undefined
const extra: TestServer[] = []
test.afterEach(async () => {
  for (const s of [server, ...extra]) await s?.stop('SIGKILL')
  server = undefined
  extra.length = 0
})


const trainingUrl = (s: TestServer) => `${s.url.split('#')[0]}#/training`

/** The sample project's training page, with the demo model chosen through the page's own button. */
async function openTrainingWithDemo(page: Page, s: TestServer): Promise<void> {
  await page.goto(trainingUrl(s))
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('訓練')
  await expect(page.getByTestId('no-model')).toBeVisible()
  await page.getByTestId('use-demo-model').click()
  await expect(page.getByTestId('training-model')).toHaveText('示範小模型 (CPU)')
  await expect(page.getByTestId('preset-demo')).toHaveAttribute('aria-checked', 'true')
  await expect(page.getByTestId('estimate-rows')).toContainText('50')
}

async function setSetting(page: Page, key: string, value: string): Promise<void> {
  if (!(await page.getByTestId('advanced-panel').isVisible())) await page.getByTestId('toggle-advanced').click()
  const input = page.getByTestId(`setting-${key}`)
  await input.fill(value)
  await input.press('Enter')
}

const chartPoints = async (page: Page): Promise<number> => Number(await page.getByTestId('loss-chart').getAttribute('data-points'))

/** Waits until the loss chart has drawn more than `n` points; returns the count. */
async function pointsAbove(page: Page, n: number, timeout = 60_000): Promise<number> {
  await expect.poll(() => chartPoints(page), { timeout }).toBeGreaterThan(n)
  return chartPoints(page)
}

async function runOf(s: TestServer, id: number): Promise<RunDetail> {
  return callApi<RunDetail>(s, 'runs:get', { id })
}

function expectAdapter(run: Run): void {
  expect(run.summary.adapterDir).toBeTruthy()
  const dir = run.summary.adapterDir!
  expect(existsSync(join(dir, 'adapter_model.safetensors'))).toBe(true)
  const config = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as { peft_type: string; r: number }
  expect(config.peft_type).toBe('LORA')
  expect(config.r).toBe(run.settings.loraR)
}

test('one click starts a run; the chart grows live; stop, resume, reload mid-run; it completes with an adapter', async ({ page }) => {
  test.setTimeout(240_000)
  server = await startServer()
  await openTrainingWithDemo(page, server)
  await setSetting(page, 'epochs', '8')
  await expect(page.getByTestId('estimate-steps')).toContainText('96')
  await page.screenshot({ path: 'test-results/training-setup.png' })

  await page.getByTestId('start-training').click()
  const panel = page.getByTestId('run-panel')
  await expect(panel).toBeVisible()
  const runId = Number(await panel.getAttribute('data-run-id'))
  // Live: the loss chart's points grow while the run trains; the sidebar shows it from any page.
  const first = await pointsAbove(page, 1)
  await pointsAbove(page, first)
  await expect(page.getByTestId('nav-training-live')).toBeVisible()
  await expect(page.getByTestId('engine-status')).toHaveAttribute('data-holder', 'training')
  await page.screenshot({ path: 'test-results/training-live.png' })

  // Stop: graceful, a checkpoint at the step it stopped at, resumable from there.
  await page.getByTestId('stop-run').click()
  await expect(panel).toHaveAttribute('data-status', 'stopped', { timeout: 30_000 })
  const stopped = await runOf(server, runId)
  expect(stopped.status).toBe('stopped')
  expect(stopped.step).toBeGreaterThan(0)
  expect(stopped.step).toBeLessThan(stopped.totalSteps)
  expect(stopped.checkpoints.some((c) => c.step === stopped.step)).toBe(true)
  await expect(page.getByTestId('resume-run')).toContainText(`第 ${stopped.step} 步`)
  const pointsAtStop = await chartPoints(page)
  expect(pointsAtStop).toBeGreaterThanOrEqual(Math.min(stopped.step, 2))

  // Resume: training goes on from the checkpoint; the curve continues.
  await page.getByTestId('resume-run').click()
  await expect(panel).not.toHaveAttribute('data-status', 'stopped')
  await pointsAbove(page, stopped.step)

  // A reload mid-run shows the same run, live, with its curve so far.
  const beforeReload = await chartPoints(page)
  const mid = await runOf(server, runId)
  if (mid.active) {
    await page.reload()
    await expect(page.getByTestId('run-panel')).toHaveAttribute('data-run-id', String(runId))
    await expect.poll(() => chartPoints(page), { timeout: 30_000 }).toBeGreaterThanOrEqual(Math.min(beforeReload, mid.step))
  }

  await expect(page.getByTestId('run-panel')).toHaveAttribute('data-status', 'completed', { timeout: 120_000 })
  const done = await runOf(server, runId)
  expect(done.step).toBe(done.totalSteps)
  expect(done.summary.resumes).toBe(1)
  expectAdapter(done)
  await expect(page.getByTestId('run-verdict')).toBeVisible()
  await expect(page.getByTestId('verdict-message')).not.toBeEmpty()
  await expect.poll(() => chartPoints(page)).toBeGreaterThanOrEqual(Math.min(done.totalSteps, 60))
  const row = page.getByTestId('run-row').filter({ has: page.locator(`[data-status="completed"]`) })
  await expect(row).toHaveCount(1)
  await expect(row.getByTestId('run-verdict-kind')).not.toBeEmpty()
  await page.screenshot({ path: 'test-results/training-done.png' })
})

test('kill -9 of the engine host mid-run: the run is interrupted with the reason, the app keeps working, resume completes', async ({ page }) => {
  test.setTimeout(240_000)
  server = await startServer()
  await openTrainingWithDemo(page, server)
  await setSetting(page, 'epochs', '6')
  await page.getByTestId('start-training').click()
  const panel = page.getByTestId('run-panel')
  const runId = Number(await panel.getAttribute('data-run-id'))
  await pointsAbove(page, 2)

  const status = await callApi<EngineStatus>(server, 'engine:status')
  expect(status.holder).toEqual({ kind: 'training', runId })
  const pid = status.host.pid!
  expect(pid).toBeGreaterThan(0)
  expect(pid).not.toBe(server.proc.pid)
  process.kill(pid, 'SIGKILL')

  await expect(panel).toHaveAttribute('data-status', 'interrupted', { timeout: 30_000 })
  await expect(page.getByTestId('run-error')).toContainText('訓練被中斷')
  await expect(page.getByTestId('run-error-summary')).toContainText('訓練引擎的程序意外結束')
  await expect(page.getByTestId('run-error-message')).toContainText('engine process stopped unexpectedly')
  const interrupted = await runOf(server, runId)
  expect(interrupted.error?.message).toMatch(/SIGKILL|killed|signal/i)
  await expect(page.getByTestId('engine-status')).not.toHaveAttribute('data-holder', 'training')

  // The app keeps working: other pages, and back.
  await page.getByTestId('nav-dataset').click()
  await expect(page.getByTestId('row-count')).toHaveText('共 50 筆')
  await page.getByTestId('nav-training').click()
  await page.getByTestId('run-row').first().click()
  await expect(page.getByTestId('run-panel')).toHaveAttribute('data-status', 'interrupted')

  await page.getByTestId('resume-run').click()
  await expect(page.getByTestId('run-panel')).toHaveAttribute('data-status', 'completed', { timeout: 120_000 })
  const done = await runOf(server, runId)
  expect(done.step).toBe(done.totalSteps)
  expectAdapter(done)
  const after = await callApi<EngineStatus>(server, 'engine:status')
  expect(after.host.pid).not.toBe(pid)
  expect(after.host.restarts).toBeGreaterThanOrEqual(1)
})

test('SIGKILL of the whole server mid-run: after a restart the run is interrupted, offered, and resumes to completion', async ({ page }) => {
  test.setTimeout(240_000)
  const dataDir = newDataDir()
  server = await startServer(dataDir)
  await openTrainingWithDemo(page, server)
  await setSetting(page, 'epochs', '6')
  await page.getByTestId('start-training').click()
  const runId = Number(await page.getByTestId('run-panel').getAttribute('data-run-id'))
  // Past the first epoch's checkpoint, still running.
  await expect.poll(async () => (await runOf(server!, runId)).checkpoints.length, { timeout: 60_000 }).toBeGreaterThan(0)
  const before = await runOf(server, runId)
  expect(before.active).toBe(true)
  const hostPid = (await callApi<EngineStatus>(server, 'engine:status')).host.pid

  await server.stop('SIGKILL')
  // The engine host goes with its parent (no orphan holding the device).
  if (hostPid) await expect.poll(() => alive(hostPid), { timeout: 10_000 }).toBe(false)

  server = await startServer(dataDir)
  await page.goto(server.url)
  const offer = page.getByTestId('resume-offer')
  await expect(offer).toBeVisible()
  await expect(offer).toHaveAttribute('data-run-id', String(runId))
  const interrupted = await runOf(server, runId)
  expect(interrupted.status).toBe('interrupted')
  expect(interrupted.resumeFromStep).toBeGreaterThan(0)
  await page.screenshot({ path: 'test-results/training-resume-offer.png' })

  await offer.getByTestId('resume-offer-accept').click()
  await expect(offer).toBeHidden()
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('訓練')
  await expect(page.getByTestId('run-panel')).toHaveAttribute('data-run-id', String(runId))
  await expect(page.getByTestId('run-panel')).toHaveAttribute('data-status', 'completed', { timeout: 120_000 })
  const done = await runOf(server, runId)
  expect(done.step).toBe(done.totalSteps)
  expectAdapter(done)
  // The offer does not come back.
  await page.reload()
  await expect(page.getByTestId('run-panel')).toBeVisible()
  await expect(page.getByTestId('resume-offer')).toHaveCount(0)
})

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

test('bad settings are refused before a run starts: learning rate 0, an empty project', async ({ page }) => {
  server = await startServer()
  await openTrainingWithDemo(page, server)

  // Learning rate 0: the estimate flags the field as soon as it is typed; the start is refused with what to do.
  await setSetting(page, 'lr', '0')
  await expect(page.getByTestId('field-problem-lr')).toContainText('學習率是 0')
  await page.getByTestId('start-training').click()
  await expect(page.getByTestId('start-refused')).toBeVisible()
  const problem = page.getByTestId('training-problem').and(page.locator('[data-code="lrZero"]'))
  await expect(problem).toContainText('請設成大於 0 的值')
  await expect(page.getByTestId('field-lr')).toBeVisible()
  await expect(page.getByTestId('field-problem-lr')).toContainText('大於 0')
  expect(await callApi<Run[]>(server, 'runs:list', {})).toHaveLength(0)
  await expect(page.getByTestId('run-panel')).toHaveCount(0)

  // A value outside the field's range is not sent; the field says why.
  await setSetting(page, 'lr', '-1')
  await expect(page.getByTestId('field-lr')).toContainText('必須介於')

  // An empty project (with a model): refused, pointing to the dataset editor.
  const demo = (await callApi<{ id: number; source: string }[]>(server, 'models:list')).find((m) => m.source === 'demo')!
  const empty = await callApi<{ id: number }>(server, 'projects:create', { name: '空白專案' })
  await callApi(server, 'projects:update', { id: empty.id, modelId: demo.id })
  await callApi(server, 'settings:set', { lastProjectId: empty.id })
  await page.goto(trainingUrl(server))
  await expect(page.getByTestId('current-project')).toContainText('空白專案')
  await expect(page.getByTestId('estimate-rows')).toContainText('0')
  await page.getByTestId('start-training').click()
  await expect(page.getByTestId('start-refused')).toBeVisible()
  const emptyProblem = page.getByTestId('training-problem').and(page.locator('[data-code="emptyDataset"]'))
  await expect(emptyProblem).toContainText('沒有啟用中的問答')
  await expect(emptyProblem.getByRole('link', { name: '前往資料集' })).toBeVisible()
  expect(await callApi<Run[]>(server, 'runs:list', {})).toHaveLength(0)
})

test('history: compare two runs (overlaid curves, settings diff), then delete one after confirming', async ({ page }) => {
  test.setTimeout(180_000)
  server = await startServer()
  const demo = (await callApi<{ id: number; source: string }[]>(server, 'models:list')).find((m) => m.source === 'demo')!
  const project = (await callApi<{ id: number }[]>(server, 'projects:list'))[0]
  await callApi(server, 'projects:update', { id: project.id, modelId: demo.id })
  const ids: number[] = []
  for (const lr of [3e-3, 1e-3]) {
    const run = await callApi<Run>(server, 'training:start', { projectId: project.id, preset: 'demo', settings: { epochs: 1, lr } })
    ids.push(run.id)
    await expect.poll(async () => (await runOf(server!, run.id)).status, { timeout: 60_000 }).toBe('completed')
  }

  await page.goto(trainingUrl(server))
  const rows = page.getByTestId('run-row')
  await expect(rows).toHaveCount(2)
  await expect(page.getByTestId('compare-runs')).toBeDisabled()
  await rows.nth(0).getByTestId('compare-check').check()
  await rows.nth(1).getByTestId('compare-check').check()
  await page.getByTestId('compare-runs').click()
  const compare = page.getByTestId('run-compare')
  await expect(compare.getByTestId('compare-run')).toHaveCount(2)
  await expect.poll(async () => (await compare.getByTestId('compare-train-chart').getAttribute('data-all-points'))?.split(',').map(Number)).toEqual([12, 12])
  await expect(compare.locator('[data-testid="diff-row"][data-key="lr"]')).toContainText('3e-3')
  await expect(compare.locator('[data-testid="diff-row"][data-key="lr"]')).toContainText('1e-3')
  await page.screenshot({ path: 'test-results/training-compare.png', fullPage: true })
  await page.getByTestId('close-compare').click()

  // Open a past run: its curve and verdict.
  const first = await runOf(server, ids[0])
  await page.locator(`[data-testid="run-row"][data-run-id="${ids[0]}"]`).click()
  await expect(page.getByTestId('run-panel')).toHaveAttribute('data-run-id', String(ids[0]))
  await expect.poll(() => chartPoints(page)).toBe(12)

  // Delete asks first, then the run and its folder are gone.
  await page.locator(`[data-testid="run-row"][data-run-id="${ids[0]}"]`).getByTestId('delete-run-row').click()
  await expect(page.getByRole('dialog')).toContainText(first.outputDir)
  await page.getByTestId('confirm-delete-run').click()
  await expect(rows).toHaveCount(1)
  await expect(page.getByTestId('run-panel')).toHaveCount(0)
  expect(existsSync(first.outputDir)).toBe(false)
  expect((await callApi<Run[]>(server, 'runs:list', {})).map((r) => r.id)).toEqual([ids[1]])
})
