// A damaged database is never overwritten: the app shows where it is and what to do, and the file keeps
// its exact bytes after the app has run.
import { expect, test } from '@playwright/test'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { newDataDir, startServer, type TestServer } from './server'

let server: TestServer | undefined
test.afterEach(async () => {
  await server?.stop()
  server = undefined
})

test('a corrupt database shows the error page with its path and stays untouched', async ({ page }) => {
  const dataDir = newDataDir()
  const dbPath = join(dataDir, 'qa-tuner.sqlite')
  const garbage = Buffer.from('SQLite format 3\0'.padEnd(4096, '\u00ff'), 'latin1')
  writeFileSync(dbPath, garbage)

  server = await startServer(dataDir)
  await page.goto(server.url)
  await expect(page.getByTestId('database-error')).toBeVisible()
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('無法開啟資料檔案')
  await expect(page.getByTestId('database-path')).toHaveText(dbPath)

  // Other channels refuse with DB_UNAVAILABLE instead of crashing the server.
  const res = await page.request.post(`${server.base}/api/projects:list`, { headers: { 'x-qt-token': server.token }, data: {} })
  expect(await res.json()).toMatchObject({ ok: false, error: { code: 'DB_UNAVAILABLE' } })

  await server.stop()
  server = undefined
  expect(readFileSync(dbPath).equals(garbage)).toBe(true)
})
