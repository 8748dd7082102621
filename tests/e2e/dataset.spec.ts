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

test('mapping step, a refused file, paste rows, multi-select delete, Simplified fix, export, versions', async ({ page }) => {
  server = await startServer()
  await page.goto(server.url)
  await newProject(page, '流程測試')

  // A file without recognisable headers asks for the column mapping, with a preview.
  const noHeader = Buffer.from('出勤,上班時間？,九點到六點\n假勤,怎麼請假？,在系統申請\n', 'utf8')
  await page.getByTestId('import-file').setInputFiles({ name: 'nohead.csv', mimeType: 'text/csv', buffer: noHeader })
  const dialog = page.getByTestId('import-dialog')
  await expect(dialog).toContainText('請指定哪一欄是問題')
  await dialog.getByTestId('import-has-header').uncheck()
  await dialog.getByTestId('map-question').selectOption('1')
  await dialog.getByTestId('map-answer').selectOption('2')
  await dialog.getByTestId('map-category').selectOption('0')
  await dialog.getByTestId('import-submit').click()
  await expect(page.getByTestId('import-report')).toContainText('已匯入 2 筆')
  await page.getByTestId('import-done').click()
  await expect(cell(page, '怎麼請假？', 'category')).toHaveText('假勤')

  // A malformed file is refused with the line number, and nothing changes.
  await page.getByTestId('import-file').setInputFiles({ name: 'bad.csv', mimeType: 'text/csv', buffer: Buffer.from(fixtures.badQuoteCsv()) })
  await expect(page.getByTestId('import-report')).toContainText('資料沒有任何變更')
  await expect(page.getByTestId('import-report')).toContainText('第 2 行的引號沒有正確配對')
  await page.keyboard.press('Escape')
  await expect(page.getByTestId('row-count')).toHaveText('共 2 筆')

  // Paste rows copied from a spreadsheet (TSV with a quoted multi-line cell) as new rows.
  await page.getByTestId('paste-rows').click()
  await page.getByTestId('paste-area').fill('問題\t回答\t分類\n请假规定在哪里？\t"请看员工手册\n第三章"\t假勤\n報帳期限？\t出差回來 30 天內\t財務\n')
  await page.getByTestId('paste-submit').click()
  await expect(page.getByTestId('row-count')).toHaveText('共 4 筆')
  await expect(cell(page, '请假规定在哪里？', 'answer')).toContainText('第三章')

  // The Simplified row is flagged; one click converts it to Traditional (Taiwan).
  await expect(page.getByTestId('quality-simplifiedChinese')).toContainText('1')
  await page.getByTestId('convert-all').click()
  await expect(cell(page, '請假規定在哪裡？', 'answer')).toContainText('請看員工手冊')
  await expect(page.getByTestId('quality-simplifiedChinese')).toHaveCount(0)

  // Save a version, change things, and see the changes since that version.
  await page.getByTestId('versions-button').click()
  await page.getByTestId('snapshot-create').click()
  await expect(page.getByTestId('snapshot-list').locator('li')).toHaveCount(1)
  await page.keyboard.press('Escape')
  await cell(page, '報帳期限？', 'answer').click()
  await page.keyboard.type('出差回來 14 天內')
  await page.keyboard.press('Enter')
  await expect(cell(page, '報帳期限？', 'answer')).toHaveText('出差回來 14 天內')

  // Multi-select with Ctrl-click on row numbers, delete with confirmation, then undo.
  await row(page, '上班時間？').locator('.cell.num').click()
  await row(page, '怎麼請假？').locator('.cell.num').click({ modifiers: ['Control'] })
  await expect(page.getByTestId('delete-rows')).toHaveText(/刪除 2 列/)
  await page.keyboard.press('Delete')
  await page.getByTestId('confirm-delete-rows').click()
  await expect(page.getByTestId('row-count')).toHaveText('共 2 筆')

  await page.getByTestId('versions-button').click()
  await page.getByTestId('snapshot-compare').click()
  const summary = page.getByTestId('diff-summary')
  await expect(summary).toContainText('移除 2')
  await expect(summary).toContainText('修改 1')
  await expect(page.getByTestId('versions-dialog')).toContainText('出差回來 14 天內')
  await page.screenshot({ path: 'test-results/dataset-versions.png' })
  await page.keyboard.press('Escape')
  await page.getByTestId('undo').click()
  await expect(page.getByTestId('row-count')).toHaveText('共 4 筆')

  // Export CSV: a real download, UTF-8 with a BOM.
  await page.getByTestId('export-button').click()
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-csv').click()])
  expect(download.suggestedFilename()).toMatch(/^流程測試-\d{8}\.csv$/)
  const path = await download.path()
  const { readFileSync } = await import('node:fs')
  const bytes = readFileSync(path)
  expect([...bytes.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf])
  expect(bytes.toString('utf8')).toContain('請假規定在哪裡？')
})

test('spreadsheet keyboard: navigation, Alt+Enter newlines, IME typing, block paste and copy, one-step undo', async ({ page }) => {
  server = await startServer()
  await page.goto(server.url)
  await expect(page.getByTestId('row-count')).toHaveText('共 50 筆')
  const editor = page.getByTestId('cell-editor')
  const activeCell = page.locator('.cell.active')

  // Arrows, Tab, Home/End, Ctrl+End.
  await page.getByTestId('grid-row').first().locator('[data-col="question"]').click()
  await page.keyboard.press('ArrowDown')
  await page.keyboard.press('Tab')
  await expect(activeCell).toHaveAttribute('data-col', 'answer')
  await expect(page.locator('.grid-row.active-row .cell.num')).toHaveText('2')
  await page.keyboard.press('End')
  await expect(activeCell).toHaveAttribute('data-col', 'enabled')
  await page.keyboard.press('Home')
  await expect(activeCell).toHaveAttribute('data-col', 'question')
  await page.keyboard.press('Control+End')
  await expect(page.locator('.grid-row.active-row .cell.num')).toHaveText('50')
  await page.keyboard.press('Control+Home')
  await expect(page.locator('.grid-row.active-row .cell.num')).toHaveText('1')

  // Enter edits, Alt+Enter and Shift+Enter add line breaks, Escape cancels, Enter commits and moves down.
  await page.keyboard.press('ArrowRight')
  await page.keyboard.press('Enter')
  await page.keyboard.press('Control+A')
  await page.keyboard.type('第一行')
  await page.keyboard.press('Alt+Enter')
  await page.keyboard.type('第二行')
  await page.keyboard.press('Shift+Enter')
  await page.keyboard.type('第三行')
  await page.keyboard.press('Enter')
  const first = page.getByTestId('grid-row').first().locator('[data-col="answer"]')
  await expect(first.locator('.cell-text')).toHaveJSProperty('textContent', '第一行\n第二行\n第三行')
  await expect(page.locator('.grid-row.active-row .cell.num')).toHaveText('2')
  await page.keyboard.press('Enter')
  await page.keyboard.type('不要存')
  await page.keyboard.press('Escape')
  await expect(page.getByTestId('grid-row').nth(1).locator('[data-col="answer"]')).not.toContainText('不要存')

  // An IME composition (注音) typed on a cell that is not being edited goes into the cell.
  await page.keyboard.press('ArrowRight')
  const cdp = await page.context().newCDPSession(page)
  await cdp.send('Input.imeSetComposition', { text: 'ㄒㄧㄣ', selectionStart: 3, selectionEnd: 3 })
  await cdp.send('Input.insertText', { text: '薪資' })
  await expect(editor).toHaveClass(/editing/)
  await page.keyboard.press('Enter')
  await expect(page.getByTestId('grid-row').nth(1).locator('[data-col="category"]')).toHaveText('薪資')

  // Paste a block copied from Excel at the second-to-last row: it fills 2 rows and adds 1, in one step.
  await page.keyboard.press('Control+End')
  await page.keyboard.press('ArrowUp')
  await page.keyboard.press('Home')
  const tsv = '貼上的問題一\t"多行\n回答一"\r\n貼上的問題二\t回答二\r\n貼上的問題三\t回答三\r\n'
  // (In-page scripts as strings: this file is type-checked without the DOM library.)
  await page.evaluate(`(() => {
    const dt = new DataTransfer()
    dt.setData('text/plain', ${JSON.stringify(tsv)})
    document.querySelector('[data-testid=cell-editor]').dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }))
  })()`)
  await expect(page.getByTestId('row-count')).toHaveText('共 51 筆')
  await expect(cell(page, '貼上的問題一', 'answer')).toHaveText('多行\n回答一')
  await expect(cell(page, '貼上的問題三', 'answer')).toHaveText('回答三')

  // The pasted block is selected; copy it back out as TSV (what Excel reads).
  const copied = await page.evaluate(`(() => {
    const dt = new DataTransfer()
    document.querySelector('[data-testid=cell-editor]').dispatchEvent(new ClipboardEvent('copy', { clipboardData: dt, bubbles: true, cancelable: true }))
    return dt.getData('text/plain')
  })()`)
  expect(copied).toBe('貼上的問題一\t"多行\n回答一"\r\n貼上的問題二\t回答二\r\n貼上的問題三\t回答三\r\n')

  // One undo takes the whole paste back.
  await page.keyboard.press('Control+Z')
  await expect(page.getByTestId('row-count')).toHaveText('共 50 筆')
  await expect(page.getByTestId('grid-row').filter({ hasText: '貼上的問題' })).toHaveCount(0)
  await page.keyboard.press('Control+Y')
  await expect(page.getByTestId('row-count')).toHaveText('共 51 筆')
})

test('the system prompt is edited on the dataset page and saved', async ({ page }) => {
  server = await startServer()
  await page.goto(server.url)
  await expect(page.getByTestId('system-prompt')).toContainText('你是一個zh-tw版本的聊天機器人')
  await page.getByTestId('system-prompt-toggle').click()
  await page.getByTestId('system-prompt-input').fill('你是本公司的人資助理，請用繁體中文回答。')
  await expect(page.getByTestId('system-prompt')).toContainText('已儲存')
  await page.reload()
  await expect(page.getByTestId('system-prompt')).toContainText('你是本公司的人資助理')
})
