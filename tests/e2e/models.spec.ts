// The Models page in Chromium against browser mode: the demo model is there; a tiny model folder is imported by its
// server-side path, its details are shown and it is picked for the current project; a broken folder explains
// itself; a download from the local fake Hub shows progress and ends ready; a gated repo asks for the license and
// the token, which is then saved (and never shown again).
import { expect, test } from '@playwright/test'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startFakeHub, type FakeHub } from '../fixtures/hub/fakeHub'
import { tinyHubFiles, writeTinyModelFolder } from '../fixtures/hub/tinyHubRepo'
import { callApi, newDataDir, startServer, type TestServer } from './server'

let server: TestServer | undefined
let hub: FakeHub | undefined
let work: string

test.beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'qt-e2e-models-'))
})
test.afterAll(() => rmSync(work, { recursive: true, force: true }))
test.afterEach(async () => {
  await server?.stop()
  server = undefined
  await hub?.close()
  hub = undefined
})

function serverEnv(dataDir: string, endpoint = 'http://127.0.0.1:9'): NodeJS.ProcessEnv {
  return { QT_HF_ENDPOINT: endpoint, QT_SECRET_KEY_FILE: join(dataDir, 'keys', 'secret.key') }
}

test('import the tiny model folder by path, see its details, use it for the project; the demo model is listed', async ({ page }) => {
  const folder = join(work, 'Tiny-Llama-Instruct')
  await writeTinyModelFolder(folder, { hiddenSize: 64, numLayers: 2, maxPosition: 1024 })
  const dataDir = newDataDir()
  server = await startServer(dataDir, serverEnv(dataDir))
  await page.goto(server.url)
  await expect(page.getByTestId('current-project')).toContainText('範例：員工手冊問答')
  await page.getByTestId('nav-models').click()
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('模型')

  // The demo model is created on first use and listed; with no model of one's own, the page says what to do next.
  const list = page.getByTestId('model-list')
  await expect(list.getByText('示範小模型 (CPU)')).toBeVisible()
  await expect(page.getByTestId('only-demo')).toBeVisible()

  // Import by typing the server-side path (browser mode has no folder dialog and says so).
  await page.getByTestId('open-import').click()
  await expect(page.getByTestId('browser-hint')).toContainText('伺服器')
  await page.getByTestId('import-path').fill(folder)
  await page.getByTestId('import-check').click()
  await expect(page.getByTestId('import-report')).toContainText('LlamaForCausalLM')
  await page.getByTestId('import-name').fill('小型測試模型')
  await page.getByTestId('import-submit').click()

  const row = list.locator('tr', { hasText: '小型測試模型' })
  await expect(row).toBeVisible()
  await expect(row.getByTestId('model-status')).toHaveText('可使用')
  await expect(row).toContainText('本機資料夾')
  await expect(row).toContainText('1,024')
  const details = page.getByTestId('model-details')
  await expect(details.getByTestId('details-name')).toHaveText('小型測試模型')
  await expect(details.getByTestId('details-architecture')).toHaveText('LlamaForCausalLM')
  await expect(details.getByTestId('details-context')).toContainText('1,024')
  await expect(details.getByTestId('details-dtype')).toHaveText('BF16')
  await expect(details.getByTestId('memory-training')).toBeVisible()
  await expect(details.getByTestId('memory-chat')).toBeVisible()
  await expect(details.getByTestId('template-select')).toHaveValue('model')
  await expect(details.getByTestId('no-gpu')).toBeVisible()
  await page.screenshot({ path: 'test-results/models-zh-TW.png', fullPage: true })

  // Use it for the current project: the page and the project record agree.
  await details.getByTestId('use-for-project').click()
  await expect(details.getByTestId('used-for-project')).toBeVisible()
  await expect(row).toContainText('此專案使用中')
  const projects = await callApi<{ modelId: number | null }[]>(server!, 'projects:list')
  const imported = (await callApi<{ id: number; name: string }[]>(server!, 'models:list')).find((m) => m.name === '小型測試模型')
  expect(projects[0].modelId).toBe(imported?.id)

  // Delete says it only unregisters an imported folder.
  await details.getByTestId('delete-model').click()
  await expect(page.getByTestId('delete-explain')).toContainText(folder)
  await page.keyboard.press('Escape')

  // A GGUF file gets its own explanation.
  const gguf = join(work, 'gguf-only')
  mkdirSync(gguf, { recursive: true })
  writeFileSync(join(gguf, 'llama-3-8b.Q4_K_M.gguf'), 'GGUF')
  await page.getByTestId('open-import').click()
  await page.getByTestId('import-path').fill(gguf)
  await page.getByTestId('import-check').click()
  await expect(page.getByTestId('model-problem')).toContainText('llama.cpp')
  await expect(page.getByTestId('model-problem')).toHaveAttribute('data-problem', 'gguf')
})

test('download from the (fake) Hub with progress; a gated repo asks for license and token', async ({ page }) => {
  const files = await tinyHubFiles({ hiddenSize: 64, numLayers: 2 })
  hub = await startFakeHub({
    'acme/Tiny-Chat': { files },
    'meta-llama/Tiny-Gated': { files, gated: true, allowedTokens: ['hf_E2eAcceptedToken123456'] },
  })
  const dataDir = newDataDir()
  server = await startServer(dataDir, serverEnv(dataDir, hub.url))
  await page.goto(`${server.url.split('#')[0]}#/models`)
  await page.getByTestId('open-download').click()
  const panel = page.getByTestId('download-panel')
  await expect(panel.getByTestId('preset-meta-llama/Meta-Llama-3-8B-Instruct')).toBeAttached()
  await expect(panel).toContainText('教學使用')
  await expect(panel.getByTestId('token-status')).toContainText('尚未儲存權杖')

  await panel.getByTestId('repo-input').fill('acme/Tiny-Chat')
  await panel.getByTestId('download-submit').click()
  const row = page.getByTestId('model-list').locator('tr', { hasText: 'acme/Tiny-Chat' })
  await expect(row.getByTestId('model-status')).toHaveText('可使用', { timeout: 30_000 })
  await expect(page.getByTestId('model-details').getByTestId('details-architecture')).toHaveText('LlamaForCausalLM')

  // Gated without a token: the explanation, the license link and where to paste the token.
  await page.getByTestId('open-download').click()
  await page.getByTestId('repo-input').fill('meta-llama/Tiny-Gated')
  await page.getByTestId('download-submit').click()
  const gatedRow = page.getByTestId('model-list').locator('tr', { hasText: 'meta-llama/Tiny-Gated' })
  await expect(gatedRow.getByTestId('model-status')).toHaveText('失敗', { timeout: 30_000 })
  const problem = page.getByTestId('model-details').getByTestId('model-problem')
  await expect(problem).toContainText('這是需要同意授權的模型')
  await expect(problem.getByRole('link', { name: '開啟授權頁面' })).toHaveAttribute('href', `${hub.url}/meta-llama/Tiny-Gated`)
  await page.screenshot({ path: 'test-results/models-gated-zh-TW.png' })

  // "Enter the access token" opens the token field; paste, save, retry: it downloads. The token is never shown back.
  await page.getByTestId('enter-token').click()
  await expect(page.getByTestId('token-input')).toBeFocused()
  await page.screenshot({ path: 'test-results/models-download-panel-zh-TW.png' })
  await page.getByTestId('token-input').fill('hf_E2eAcceptedToken123456')
  await page.getByTestId('token-save').click()
  await expect(page.getByTestId('token-status')).toContainText('已儲存權杖')
  await expect(page.getByTestId('token-status')).toContainText('0600')
  await expect(page.getByTestId('token-input')).toHaveValue('')
  await gatedRow.click()
  await page.getByTestId('resume-download').click()
  await expect(gatedRow.getByTestId('model-status')).toHaveText('可使用', { timeout: 30_000 })
  expect(await page.content()).not.toContain('hf_E2eAcceptedToken123456')
})
