// The Chat page in headless Chromium against the built browser-mode server and its engine host (CPU):
//   1. a tiny random model (imported by path): the answer streams in (the bubble's text grows over many
//      observations before it is done), Stop ends it early and keeps the partial text, and after a reload the
//      conversation is listed and shows the same text;
//   2. the demo model trained for a couple of epochs through the training API: while it trains the page says the
//      engine is busy and compare asks for a finished run; afterwards the chat answers with the run's adapter,
//      compare shows two columns answering the same question, and "Did it learn?" fills its table and summary,
//      which is still there after a reload.
import { expect, test, type Page } from '@playwright/test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ChatSummary, ModelEntry, Project, Run } from '../../preload/contract'
import { writeTinyChatModel } from '../../main/models/tiny/writeTinyChatModel'
import { callApi, newDataDir, startServer, type TestServer } from './server'

let server: TestServer | undefined
let work: string

test.beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'qt-e2e-chat-'))
})
test.afterAll(() => rmSync(work, { recursive: true, force: true }))
test.afterEach(async () => {
  await server?.stop()
  server = undefined
})


async function until<T>(f: () => Promise<T>, ok: (v: T) => boolean, what: string, ms = 90_000): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = await f()
    if (ok(v)) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v).slice(0, 400)}`)
    await new Promise((r) => setTimeout(r, 150))
  }
}

/** In the page: lengths of the last answer's text, sampled every animation frame while it is being written, until
 *  `want` different lengths were seen (or 30 s). A string: the node typecheck has no DOM types. */
const OBSERVE_GROWTH = (want: number) => `(async () => {
  const seen = []
  const end = performance.now() + 30000
  while (performance.now() < end) {
    const answers = document.querySelectorAll('[data-testid="assistant-message"]')
    const last = answers[answers.length - 1]
    if (last) {
      const state = last.getAttribute('data-state')
      const len = last.querySelector('[data-testid="answer-text"]').textContent.length
      if (state !== 'generating') return { seen, state }
      if (len > 0 && len !== seen[seen.length - 1]) seen.push(len)
      if (seen.length >= ${want}) return { seen, state }
    }
    await new Promise((r) => requestAnimationFrame(r))
  }
  return { seen, state: 'timeout' }
})()`

const lastAnswer = (page: Page) => page.getByTestId('assistant-message').last()

test('an answer streams in token by token, Stop keeps the partial text, and the conversation survives a reload', async ({ page }) => {
  const folder = join(work, 'slow-tiny')
  // 256 wide, 4 layers: about a millisecond per token on the CPU, so a long answer takes seconds.
  await writeTinyChatModel(folder, { flavour: 'llama3', vocabSize: 600, hiddenSize: 256, intermediateSize: 512, numLayers: 4, numHeads: 8, numKvHeads: 4, maxPosition: 4096, seed: 7 })
  server = await startServer(newDataDir())
  const project = (await callApi<Project[]>(server, 'projects:list'))[0]
  const model = await callApi<ModelEntry>(server, 'models:import', { path: folder, name: '小型測試模型' })
  await callApi(server, 'projects:update', { id: project.id, modelId: model.id })

  await page.goto(server.url)
  await page.getByTestId('nav-chat').click()
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('對話')
  await expect(page.getByTestId('chat-model')).toHaveValue(String(model.id))
  await expect(page.getByTestId('chat-adapter')).toHaveValue('') // no run yet: the base model
  await expect(page.getByTestId('chat-welcome')).toContainText('完成一次訓練後')

  // Precise mode and a long answer budget.
  await page.getByTestId('toggle-sampling').click()
  await page.getByTestId('sampling-greedy').check()
  await page.getByTestId('sampling-max-tokens').fill('3000')
  await page.getByTestId('sampling-max-tokens').press('Tab')
  await expect(page.getByTestId('toggle-sampling')).toContainText('精確模式')
  // Both are saved (the max used to be reset to 512 when the greedy save came back while it was typed).
  const savedSampling = async () => (await callApi<ChatSummary[]>(server!, 'chats:list', { projectId: project.id }))[0]?.sampling
  await expect.poll(savedSampling).toMatchObject({ greedy: true, maxNewTokens: 3000 })
  await page.getByTestId('toggle-sampling').click()

  const question = '請詳細說明公司的請假規定'
  await page.getByTestId('chat-input').fill(question)
  await page.getByTestId('chat-input').press('Enter')
  await expect(page.getByTestId('question-text').last()).toHaveText(question)
  await expect(page.getByTestId('chat-stop')).toBeVisible()

  // The bubble's text grows over many observations while the answer is still being written.
  const growth = (await page.evaluate(OBSERVE_GROWTH(8))) as { seen: number[]; state: string }
  expect(growth.state, `the answer's lengths seen while it was written: ${JSON.stringify(growth)}`).toBe('generating')
  expect(growth.seen.length).toBeGreaterThanOrEqual(8)
  for (let i = 1; i < growth.seen.length; i++) expect(growth.seen[i]).toBeGreaterThan(growth.seen[i - 1])

  // Stop: the answer ends early and keeps what was written.
  await page.getByTestId('chat-stop').click()
  await expect(lastAnswer(page)).toHaveAttribute('data-state', 'stopped')
  await expect(lastAnswer(page).getByTestId('answer-stopped')).toHaveText('已停止')
  const partial = (await lastAnswer(page).getByTestId('answer-text').textContent()) ?? ''
  expect(partial.length).toBeGreaterThanOrEqual(growth.seen.at(-1)!)
  const tokens = Number(/([\d,]+) tokens/.exec((await lastAnswer(page).getByTestId('answer-meta').textContent()) ?? '')![1].replace(/,/g, ''))
  expect(tokens).toBeGreaterThan(0)
  expect(tokens).toBeLessThan(3000)
  await expect(page.getByTestId('chat-send')).toBeVisible()
  await page.screenshot({ path: 'test-results/chat-stopped-zh-TW.png' })

  // Reload: the conversation is listed (named after the question) and shows the same text.
  await page.reload()
  await expect(page.getByTestId('chat-list').getByTestId('chat-title').first()).toHaveText(question)
  await expect(page.getByTestId('question-text').last()).toHaveText(question)
  await expect(lastAnswer(page)).toHaveAttribute('data-state', 'stopped')
  await expect(lastAnswer(page).getByTestId('answer-text')).toHaveText(partial)

  // Rename it; a new conversation is listed above it; delete that one again.
  const list = page.getByTestId('chat-list')
  await list.locator('li').first().hover()
  await list.getByTestId('rename-chat').first().click()
  await page.getByTestId('chat-title-input').fill('請假規定（停止測試）')
  await page.getByTestId('confirm-rename').click()
  await expect(list.getByTestId('chat-title')).toHaveText(['請假規定（停止測試）'])
  await page.getByTestId('new-chat').click()
  await expect(page.getByTestId('chat-welcome')).toBeVisible()
  await expect(list.getByTestId('chat-title')).toHaveText(['新對話', '請假規定（停止測試）'])
  await list.locator('li').first().hover()
  await list.getByTestId('delete-chat').first().click()
  await page.getByTestId('confirm-delete').click()
  await expect(list.getByTestId('chat-title')).toHaveText(['請假規定（停止測試）'])
  await expect(lastAnswer(page).getByTestId('answer-text')).toHaveText(partial)
})

test('a finished run: busy while training, then chat with its adapter, side-by-side compare and the "Did it learn?" table', async ({ page }) => {
  server = await startServer(newDataDir())
  const s = server
  const project = (await callApi<Project[]>(s, 'projects:list'))[0]
  const models = await until(() => callApi<ModelEntry[]>(s, 'models:list'), (m) => m.some((x) => x.source === 'demo' && x.status === 'ready'), 'the demo model')
  const demo = models.find((m) => m.source === 'demo')!
  await callApi(s, 'projects:update', { id: project.id, modelId: demo.id })
  // The demo preset (CPU) for a few epochs: a real run, a real exported adapter, in seconds.
  const run = await callApi<Run>(s, 'training:start', { projectId: project.id, preset: 'demo', settings: { epochs: 3 } })

  await page.goto(s.url)
  await page.getByTestId('nav-chat').click()
  // While the run holds the engine, the page says so and nothing can be sent.
  await expect(page.getByTestId('engine-busy')).toContainText('正在使用運算引擎', { timeout: 30_000 })
  await expect(page.getByTestId('chat-input')).toBeDisabled()
  // Compare and the check need a finished run: they point to Training.
  await page.getByTestId('chat-tab-compare').click()
  await expect(page.getByTestId('chat-no-run')).toContainText('還沒有完成的訓練')
  await expect(page.getByTestId('chat-no-run').getByRole('link', { name: '前往訓練' })).toBeVisible()
  await page.getByTestId('chat-tab-chat').click()

  const done = await until(() => callApi<Run>(s, 'runs:get', { id: run.id }), (r) => !r.active, 'the run', 120_000)
  expect(done.status).toBe('completed')
  await expect(page.getByTestId('engine-busy')).toBeHidden()

  // The empty conversation switched to the run's adapter when the run finished.
  await expect(page.getByTestId('chat-adapter')).toHaveValue(`${run.id}:x`)
  const question = '公司的上班時間是幾點到幾點？'
  await page.getByTestId('chat-input').fill(question)
  await page.getByTestId('chat-input').press('Enter')
  await expect(lastAnswer(page)).toHaveAttribute('data-state', 'done', { timeout: 30_000 })
  await expect(lastAnswer(page)).toContainText('匯出的模型')

  // Side by side: the same question, two columns, both answered.
  await page.getByTestId('chat-tab-compare').click()
  await expect(page.getByTestId('chat-adapter')).toHaveValue(`${run.id}:x`)
  await page.getByTestId('chat-input').fill(question)
  await page.getByTestId('chat-input').press('Enter')
  const base = page.getByTestId('compare-base').last()
  const tuned = page.getByTestId('compare-tuned').last()
  await expect(base.getByTestId('assistant-message')).toHaveAttribute('data-state', 'done', { timeout: 30_000 })
  await expect(tuned.getByTestId('assistant-message')).toHaveAttribute('data-state', 'done', { timeout: 30_000 })
  await expect(base).toContainText('原始模型')
  await expect(tuned).toContainText('微調後')
  await expect(page.getByTestId('question-text')).toHaveText([question])
  await page.screenshot({ path: 'test-results/chat-compare-zh-TW.png' })

  // "Did it learn?": three training and three validation questions, base vs fine-tuned, scored.
  await page.getByTestId('chat-tab-check').click()
  await expect(page.getByTestId('check-panel')).toBeVisible()
  await page.getByTestId('check-per-split').fill('3')
  await page.getByTestId('check-start').click()
  const rows = page.getByTestId('check-row')
  await expect(rows).toHaveCount(6, { timeout: 60_000 })
  await expect(page.getByTestId('check-history')).toContainText('完成')
  await expect(page.locator('[data-testid="check-row"][data-split="train"]')).toHaveCount(3)
  await expect(page.locator('[data-testid="check-row"][data-split="validation"]')).toHaveCount(3)
  await expect(rows.first().getByTestId('item-score-tuned')).toHaveText(/^\d+%$/)
  await expect(page.getByTestId('check-summary-train').getByTestId('score-tuned')).toHaveText(/^\d+%$/)
  await expect(page.getByTestId('check-verdict')).toBeVisible()
  await page.screenshot({ path: 'test-results/chat-check-zh-TW.png', fullPage: true })

  // Kept with the run.
  await page.reload()
  await page.getByTestId('chat-tab-check').click()
  await expect(page.getByTestId('check-row')).toHaveCount(6)
})
