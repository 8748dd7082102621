// Export: CSV with a UTF-8 BOM, XLSX and chat-format JSONL; CSV and XLSX round-trip through the importer.
import ExcelJS from 'exceljs'
import { afterEach, describe, expect, it } from 'vitest'
import type { ExportedFile, ImportReport, Project, QaPair, RowsMutation } from '../../../preload/contract'
import { exportFileName } from '../../../main/datasets/exportDataset'
import { tempApp, type TempApp } from '../../helpers/tempContext'

let app: TempApp
afterEach(async () => app?.cleanup())

const ROWS = [
  { question: '上班時間？', answer: '彈性上班：\n核心時段 10 點到 4 點。', category: '出勤' },
  { question: '他說"可以"嗎, 真的?', answer: '可以，請看第 3 條。', category: '' },
  { question: '停用的列', answer: '不會匯出到 JSONL。', category: '其他', enabled: false },
  { question: '=1+1', answer: ' 前後有空白 ', category: '特殊' },
]

async function setup(): Promise<{ pid: number; rows: QaPair[] }> {
  app = tempApp()
  const p = await app.call<Project>('projects:create', { name: '人資/FAQ: 2026' })
  const m = await app.call<RowsMutation>('rows:insert', { projectId: p.id, rows: ROWS })
  return { pid: p.id, rows: m.upserted }
}

const bytesOf = (f: ExportedFile) => Buffer.from(f.dataBase64, 'base64')

describe('dataset:export', () => {
  it('CSV starts with a UTF-8 BOM, quotes what needs quoting, and imports back to the same rows', async () => {
    const { pid } = await setup()
    const f = await app.call<ExportedFile>('dataset:export', { projectId: pid, format: 'csv' })
    expect(f.fileName).toMatch(/^人資_FAQ_ 2026-\d{8}\.csv$/)
    expect(f.rowCount).toBe(4)
    const bytes = bytesOf(f)
    expect([...bytes.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf])
    const text = bytes.toString('utf8')
    expect(text).toContain('"他說""可以""嗎, 真的?"')
    expect(text).toContain('"彈性上班：\r\n'.replace('\r\n', '\n'))

    const target = await app.call<Project>('projects:create', { name: 'copy' })
    const r = await app.call<ImportReport>('dataset:import', { projectId: target.id, fileName: f.fileName, dataBase64: f.dataBase64 })
    expect(r).toMatchObject({ ok: true, encoding: 'UTF-8 (BOM)', added: 4 })
    const back = await app.call<QaPair[]>('rows:list', { projectId: target.id })
    // Import trims cells; everything else (newlines, quotes, the enabled flag) comes back.
    expect(back.map((x) => [x.question, x.answer, x.category, x.enabled])).toEqual(
      ROWS.map((x) => [x.question, x.answer.trim(), x.category, x.enabled ?? true]),
    )
  })

  it('XLSX has a header row and Chinese text, and imports back', async () => {
    const { pid } = await setup()
    const f = await app.call<ExportedFile>('dataset:export', { projectId: pid, format: 'xlsx' })
    const wb = new ExcelJS.Workbook()
    await wb.xlsx.load(bytesOf(f) as unknown as ExcelJS.Buffer)
    const ws = wb.worksheets[0]!
    expect(ws.getRow(1).values).toEqual([undefined, 'question', 'answer', 'category', 'enabled'])
    expect(ws.getRow(2).getCell(2).value).toBe('彈性上班：\n核心時段 10 點到 4 點。')
    expect(ws.getRow(5).getCell(1).value).toBe('=1+1') // a string, not a formula
    const target = await app.call<Project>('projects:create', { name: 'copy' })
    const r = await app.call<ImportReport>('dataset:import', { projectId: target.id, fileName: f.fileName, dataBase64: f.dataBase64 })
    expect(r).toMatchObject({ ok: true, added: 4 })
    expect((await app.call<QaPair[]>('rows:list', { projectId: target.id })).map((x) => x.enabled)).toEqual([true, true, false, true])
  })

  it('JSONL has one chat conversation per enabled row, with the system prompt', async () => {
    const { pid } = await setup()
    const f = await app.call<ExportedFile>('dataset:export', { projectId: pid, format: 'jsonl' })
    const lines = bytesOf(f).toString('utf8').trimEnd().split('\n').map((l) => JSON.parse(l))
    expect(f.rowCount).toBe(3)
    expect(lines).toHaveLength(3)
    expect(lines[0]).toEqual({
      messages: [
        { role: 'system', content: '你是一個zh-tw版本的聊天機器人' },
        { role: 'user', content: '上班時間？' },
        { role: 'assistant', content: '彈性上班：\n核心時段 10 點到 4 點。' },
      ],
    })
    const all = await app.call<ExportedFile>('dataset:export', { projectId: pid, format: 'jsonl', includeDisabled: true })
    expect(all.rowCount).toBe(4)
  })

  it('makes file names safe on every OS', () => {
    expect(exportFileName('a/b\\c:d*e?"f"<g>|h', 'csv', new Date(2026, 0, 5))).toBe('a_b_c_d_e_f_g_h-20260105.csv')
    expect(exportFileName('...', 'csv', new Date(2026, 0, 5))).toBe('dataset-20260105.csv')
  })
})
