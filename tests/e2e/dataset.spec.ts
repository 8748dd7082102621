// The dataset editor in headless Chromium against browser mode: import a Big5 CSV and an XLSX through the
// real file picker, edit cells, undo, filter to rows with problems, reload and restart: everything persisted.
import { expect, test, type Page } from '@playwright/test'
import { fixtures, syntheticRows } from '../fixtures/datasets/datasetFixtures'
import { startServer, type TestServer } from './server'

let server: TestServer | undefined
test.afterEach(async () => {
  await server?.stop()
  server = undefined
})

async function newProject(page: Page, name: string): Promise<void> {
  await page.getByTestId('nav-projects').click()
  await page.getByTestId('new-project').click()
  await page.getByTestId('project-name-input').fill(name)
  await page.getByTestId('submit-project').click()
  await expect(page.getByTestId('current-project')).toContainText(name)
}

async function importFile(page: Page, name: string, buffer: Buffer, mimeType: string): Promise<void> {
  await page.getByTestId('import-file').setInputFiles({ name, mimeType, buffer })
  await expect(page.getByTestId('import-report')).toBeVisible()
}

const row = (page: Page, text: string) => page.getByTestId('grid-row').filter({ hasText: text })
const cell = (page: Page, text: string, col: string) => row(page, text).locator(`[data-col="${col}"]`)

test('import Big5 CSV and XLSX, edit, undo, filter problems, reload and restart', async ({ page }) => {
  server = await startServer()
  const dataDir = server.dataDir
  await page.goto(server.url)
  await newProject(page, '匯入測試')
  await expect(page.getByTestId('empty-state')).toContainText('這個專案還沒有問答資料')

  // 1. The 50-row HR handbook as Big5: recognised columns, so it imports with no mapping step.
  await importFile(page, 'hr-big5.csv', Buffer.from(fixtures.big5Csv()), 'text/csv')
  await expect(page.getByTestId('import-report')).toContainText('已匯入 50 筆')
  await expect(page.getByTestId('import-report')).toContainText('Big5')
  await page.getByTestId('import-done').click()
  await expect(page.getByTestId('row-count')).toHaveText('共 50 筆')
  await expect(cell(page, '公司的上班時間是幾點到幾點？', 'answer')).toContainText('本公司採彈性上班制')

  // 2. A small Big5 file with a Chinese header: one row skipped (duplicate), with its line number.
  await importFile(page, 'small-big5.csv', Buffer.from(fixtures.big5SmallCsv()), 'text/csv')
  const report = page.getByTestId('import-report')
  await expect(report).toContainText('已匯入 3 筆')
  await expect(report).toContainText('與檔案中前面的列重複')
  await report.getByText('查看略過的列').click()
  await expect(report.locator('td.num')).toHaveText(['5'])
  await page.getByTestId('import-done').click()

  // 3. An XLSX workbook whose data is on its second sheet, with an enabled column (否 = disabled).
  const xlsx = Buffer.from(await fixtures.xlsx(syntheticRows(20)))
  await importFile(page, 'hr.xlsx', xlsx, 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet')
  await expect(page.getByTestId('import-report')).toContainText('已匯入 21 筆')
  await page.getByTestId('import-done').click()
  await expect(page.getByTestId('row-count')).toHaveText('共 74 筆')
  await page.screenshot({ path: 'test-results/dataset-imported.png' })

  // 4. Edit a cell (Enter, select all, type, Enter), then undo with Ctrl+Z.
  const question = '遲到會被扣薪嗎？'
  const original = (await cell(page, question, 'answer').innerText()).trim()
  await cell(page, question, 'answer').click()
  await page.keyboard.press('Enter')
  await expect(page.getByTestId('cell-editor')).toHaveClass(/editing/)
  await page.keyboard.press('Control+A')
  await page.keyboard.type('遲到一律以事假計算。')
  await page.keyboard.press('Enter')
  await expect(cell(page, question, 'answer')).toHaveText('遲到一律以事假計算。')
  await expect(page.getByTestId('save-state')).toHaveText('已儲存')
  await page.keyboard.press('Control+Z')
  await expect(cell(page, question, 'answer')).toHaveText(original)
  await expect(page.getByTestId('save-state')).toHaveText('已儲存')

  // Typing on a cell replaces its content (like a spreadsheet); Delete clears a cell (an error: no answer).
  await cell(page, '忘記打卡怎麼辦？', 'category').click()
  await page.keyboard.type('打卡')
  await page.keyboard.press('Enter')
  await expect(cell(page, '忘記打卡怎麼辦？', 'category')).toHaveText('打卡')
  await cell(page, '可以在家遠端工作嗎？', 'answer').click()
  await page.keyboard.press('Delete')
  await expect(cell(page, '可以在家遠端工作嗎？', 'answer')).toHaveText('')

  // 5. Rows with problems: the phone number row (warning) and the cleared answer (error).
  await expect(page.getByTestId('problem-count')).toContainText('2 筆有問題')
  await page.getByTestId('filter-problems').selectOption('any')
  await expect(page.getByTestId('grid-row')).toHaveCount(2)
  await expect(page.getByTestId('shown-count')).toHaveText('顯示 2 筆')
  await expect(page.getByTestId('grid-row').first().getByTestId('row-issue')).toBeVisible()
  await page.screenshot({ path: 'test-results/dataset-problems.png' })

  // 6. Reload the page: everything is still there.
  await page.reload()
  await expect(page.getByTestId('row-count')).toHaveText('共 74 筆')
  await expect(cell(page, question, 'answer')).toHaveText(original)
  await expect(cell(page, '忘記打卡怎麼辦？', 'category')).toHaveText('打卡')
  await page.getByTestId('filter-problems').selectOption('any')
  await expect(page.getByTestId('grid-row')).toHaveCount(2)

  // 7. Restart the server on the same data folder: the rows and the undo history survived.
  await server.stop()
  server = await startServer(dataDir)
  await page.goto(server.url)
  await expect(page.getByTestId('row-count')).toHaveText('共 74 筆')
  await expect(cell(page, '可以在家遠端工作嗎？', 'answer')).toHaveText('')
  await expect(page.getByTestId('undo')).toBeEnabled()
  await page.getByTestId('undo').click()
  await expect(cell(page, '可以在家遠端工作嗎？', 'answer')).toContainText('經主管同意後')
})
