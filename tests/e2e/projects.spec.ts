// The shell in zh-TW: the sample project is there on first start; create, rename, restart the server,
// the project is still there; delete asks for confirmation.
import { expect, test } from '@playwright/test'
import { startServer, type TestServer } from './server'

let server: TestServer | undefined
test.afterEach(async () => {
  await server?.stop()
  server = undefined
})

test('first start opens the sample project in zh-TW with real Chinese glyphs', async ({ page }) => {
  server = await startServer()
  await page.goto(server.url)
  await expect(page.getByTestId('current-project')).toContainText('範例：員工手冊問答')
  await expect(page.getByTestId('row-count')).toHaveText('共 50 筆')
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('資料集')
  await page.screenshot({ path: 'test-results/shell-zh-TW.png' })
  // The token was moved out of the address bar into session storage.
  expect(page.url()).not.toContain('token=')
})

test('create and rename a project; it survives a server restart; delete needs confirmation', async ({ page }) => {
  server = await startServer()
  const dataDir = server.dataDir
  await page.goto(server.url)
  await page.getByTestId('nav-projects').click()
  await page.getByTestId('new-project').click()
  await page.getByTestId('project-name-input').fill('人資常見問題')
  await page.getByTestId('submit-project').click()
  await expect(page.getByTestId('current-project')).toContainText('人資常見問題')
  await expect(page.getByTestId('empty-state')).toBeVisible()

  await page.getByTestId('nav-projects').click()
  const card = page.getByTestId('project-list').locator('li', { hasText: '人資常見問題' })
  await card.getByTestId('rename-project').click()
  await page.getByTestId('project-name-input').fill('人資 FAQ 2026')
  await page.getByTestId('submit-project').click()
  await expect(page.getByTestId('project-list')).toContainText('人資 FAQ 2026')

  // Duplicate names are refused with a message, not a crash.
  await page.getByTestId('new-project').click()
  await page.getByTestId('project-name-input').fill('人資 FAQ 2026')
  await page.getByTestId('submit-project').click()
  await expect(page.getByRole('alert')).toContainText('already exists')
  await page.keyboard.press('Escape')

  await server.stop()
  server = await startServer(dataDir)
  await page.goto(`${server.url.split('#')[0]}#/projects`)
  await expect(page.getByTestId('project-list')).toContainText('人資 FAQ 2026')
  await expect(page.getByTestId('project-list')).toContainText('範例：員工手冊問答')

  const renamed = page.getByTestId('project-list').locator('li', { hasText: '人資 FAQ 2026' })
  await renamed.getByTestId('delete-project').click()
  await expect(page.getByRole('dialog')).toContainText('人資 FAQ 2026')
  await page.getByTestId('confirm-delete').click()
  await expect(page.getByTestId('project-list')).not.toContainText('人資 FAQ 2026')
})
