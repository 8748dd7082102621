// Export: CSV (UTF-8 with a BOM, so Excel opens Chinese text correctly), XLSX, and JSONL in the chat
// "messages" shape with the project's system prompt (one conversation per enabled row). The file comes
// back as base64 with a file name; the renderer saves it.
import ExcelJS from 'exceljs'
import type { ExportFormat, ExportedFile, Project, QaPair } from '../../preload/contract'

function csvCell(s: string): string {
  return /[",\r\n]/.test(s) || /^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s
}

export function toCsv(rows: QaPair[]): string {
  const lines = ['question,answer,category,enabled']
  for (const r of rows) lines.push([r.question, r.answer, r.category, r.enabled ? 'TRUE' : 'FALSE'].map(csvCell).join(','))
  return '\ufeff' + lines.join('\r\n') + '\r\n'
}

export function toJsonl(rows: QaPair[], systemPrompt: string): string {
  return rows
    .map((r) => {
      const messages = [
        ...(systemPrompt.trim() ? [{ role: 'system', content: systemPrompt }] : []),
        { role: 'user', content: r.question },
        { role: 'assistant', content: r.answer },
      ]
      return JSON.stringify({ messages }) + '\n'
    })
    .join('')
}

export async function toXlsx(rows: QaPair[], sheetName: string): Promise<Buffer> {
  const wb = new ExcelJS.Workbook()
  wb.creator = 'QA Tuner'
  const ws = wb.addWorksheet(sheetName.replace(/[\\/?*[\]:]/g, ' ').slice(0, 31) || 'Dataset', {
    views: [{ state: 'frozen', ySplit: 1 }],
  })
  ws.columns = [
    { header: 'question', key: 'question', width: 40 },
    { header: 'answer', key: 'answer', width: 80 },
    { header: 'category', key: 'category', width: 16 },
    { header: 'enabled', key: 'enabled', width: 10 },
  ]
  ws.getRow(1).font = { bold: true }
  for (const r of rows) ws.addRow({ question: r.question, answer: r.answer, category: r.category, enabled: r.enabled })
  ws.getColumn('question').alignment = { wrapText: true, vertical: 'top' }
  ws.getColumn('answer').alignment = { wrapText: true, vertical: 'top' }
  return Buffer.from(await wb.xlsx.writeBuffer())
}

/** A file name from the project name and today's date, safe on Windows, macOS and Linux. */
export function exportFileName(projectName: string, ext: string, now = new Date()): string {
  const safe = projectName.replace(/[\\/:*?"<>|\u0000-\u001f]+/g, '_').replace(/^[.\s]+|[.\s]+$/g, '').slice(0, 80) || 'dataset'
  const d = `${now.getFullYear()}${String(now.getMonth() + 1).padStart(2, '0')}${String(now.getDate()).padStart(2, '0')}`
  return `${safe}-${d}.${ext}`
}

export async function exportDataset(project: Project, rows: QaPair[], format: ExportFormat, includeDisabled: boolean): Promise<ExportedFile> {
  const chosen = includeDisabled ? rows : rows.filter((r) => r.enabled)
  if (format === 'csv') {
    return {
      fileName: exportFileName(project.name, 'csv'),
      mimeType: 'text/csv;charset=utf-8',
      dataBase64: Buffer.from(toCsv(chosen), 'utf8').toString('base64'),
      rowCount: chosen.length,
    }
  }
  if (format === 'jsonl') {
    return {
      fileName: exportFileName(project.name, 'jsonl'),
      mimeType: 'application/jsonl',
      dataBase64: Buffer.from(toJsonl(chosen, project.systemPrompt), 'utf8').toString('base64'),
      rowCount: chosen.length,
    }
  }
  return {
    fileName: exportFileName(project.name, 'xlsx'),
    mimeType: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
    dataBase64: (await toXlsx(chosen, project.name)).toString('base64'),
    rowCount: chosen.length,
  }
}
