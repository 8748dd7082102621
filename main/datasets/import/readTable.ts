// Any supported file -> one table of string cells with the line (CSV/JSONL), row (XLSX) or item (JSON array)
// number of every record. File-level problems (empty, binary, bad quoting, broken JSON, a damaged workbook)
// come back as `problems`: the import refuses the whole file when there is any.
import ExcelJS from 'exceljs'
import type { ImportFormat, ImportProblem, SkipReason } from '../../../preload/contract'
import { decodeText, encodingLabel } from './decodeText'
import { parseDelimited, sniffDelimiter } from './delimited'
import { looksLikeHeader } from './mapping'

export interface TableRecord {
  line: number
  cells: string[]
  /** Set when the record cannot become a row (e.g. a multi-turn conversation): it is skipped with this reason. */
  skip?: { reason: SkipReason; detail?: string }
}

export interface Table {
  format: ImportFormat
  encoding: string | null
  sheets: string[] | null
  sheet: string | null
  shape: 'table' | 'qa' | 'messages' | 'alpaca' | null
  /** Column names (header cells, or JSON keys); empty when the table has no header row. */
  header: string[] | null
  /** Records after the header row. */
  records: TableRecord[]
  width: number
  lineKind: 'line' | 'row' | 'item'
  problems: ImportProblem[]
}

export interface ReadOptions {
  encoding?: string
  sheet?: string
}

export const MAX_FILE_BYTES = 100 * 1024 * 1024
const MAX_LISTED_PROBLEMS = 20

function startsWith(bytes: Uint8Array, sig: number[]): boolean {
  return sig.every((b, i) => bytes[i] === b)
}

/** Format from the file name, then from the content. */
export function detectFormat(fileName: string, bytes: Uint8Array): ImportFormat {
  const ext = fileName.toLowerCase().split('.').pop() ?? ''
  if (ext === 'xlsx' || ext === 'xlsm' || startsWith(bytes, [0x50, 0x4b, 0x03, 0x04])) return 'xlsx'
  if (ext === 'jsonl' || ext === 'ndjson') return 'jsonl'
  if (ext === 'json') return 'json'
  if (ext === 'tsv' || ext === 'tab') return 'tsv'
  if (ext === 'csv') return 'csv'
  let i = bytes[0] === 0xef ? 3 : 0
  while (i < bytes.length && (bytes[i] === 0x20 || bytes[i] === 0x0a || bytes[i] === 0x0d || bytes[i] === 0x09)) i++
  if (bytes[i] === 0x7b) return 'jsonl'
  if (bytes[i] === 0x5b) return 'json'
  return 'csv'
}

/** Non-text content: known binary signatures, NUL bytes (outside UTF-16) or many control characters. */
function binaryProblem(bytes: Uint8Array, text: string | null): ImportProblem | null {
  if (startsWith(bytes, [0xd0, 0xcf, 0x11, 0xe0])) return { code: 'oldXls' }
  const signatures: [number[], string][] = [
    [[0x25, 0x50, 0x44, 0x46], 'PDF'],
    [[0x89, 0x50, 0x4e, 0x47], 'PNG'],
    [[0xff, 0xd8, 0xff], 'JPEG'],
    [[0x47, 0x49, 0x46, 0x38], 'GIF'],
    [[0x50, 0x4b, 0x03, 0x04], 'ZIP'],
    [[0x1f, 0x8b], 'GZIP'],
    [[0x7f, 0x45, 0x4c, 0x46], 'ELF'],
    [[0x4d, 0x5a], 'EXE'],
  ]
  for (const [sig, name] of signatures) if (startsWith(bytes, sig)) return { code: 'binary', detail: name }
  if (text === null) return null
  const sample = text.slice(0, 65536)
  let control = 0
  for (let i = 0; i < sample.length; i++) {
    const c = sample.charCodeAt(i)
    if (c === 0) return { code: 'binary' }
    if ((c < 32 && c !== 9 && c !== 10 && c !== 13) || c === 0xfffd) control++
  }
  if (sample.length > 0 && control / sample.length > 0.02) return { code: 'binary' }
  return null
}

function emptyTable(format: ImportFormat, lineKind: Table['lineKind'], problems: ImportProblem[], encoding: string | null = null): Table {
  return { format, encoding, sheets: null, sheet: null, shape: null, header: null, records: [], width: 0, lineKind, problems }
}

export async function readTable(fileName: string, bytes: Uint8Array, opts: ReadOptions = {}): Promise<Table> {
  const format = detectFormat(fileName, bytes)
  if (bytes.length === 0) return emptyTable(format, format === 'xlsx' ? 'row' : 'line', [{ code: 'empty' }])
  if (bytes.length > MAX_FILE_BYTES) return emptyTable(format, 'line', [{ code: 'tooLarge', detail: String(MAX_FILE_BYTES / 1024 / 1024) }])
  if (format === 'xlsx') return readXlsx(bytes, opts.sheet)

  const early = binaryProblem(bytes, null)
  if (early) return emptyTable(format, 'line', [early])
  const decoded = decodeText(bytes, opts.encoding)
  const encoding = encodingLabel(decoded.encoding)
  const bin = binaryProblem(bytes, decoded.text)
  if (bin) return emptyTable(format, 'line', [bin], encoding)
  if (decoded.text.trim() === '') return emptyTable(format, 'line', [{ code: 'empty' }], encoding)
  if (format === 'jsonl' || format === 'json') return readJson(decoded.text, format, encoding)
  return readDelimited(decoded.text, format, encoding)
}

function readDelimited(text: string, format: ImportFormat, encoding: string): Table {
  const delimiter = format === 'tsv' ? '\t' : sniffDelimiter(text)
  const parsed = parseDelimited(text, delimiter, MAX_LISTED_PROBLEMS)
  const problems: ImportProblem[] = parsed.problems.map((p) => ({ code: p.code, line: p.line, detail: p.detail }))
  const records = parsed.records.map((r) => ({ line: r.line, cells: r.cells }))
  const width = records.reduce((w, r) => Math.max(w, r.cells.length), 0)
  return { format: delimiter === '\t' ? 'tsv' : 'csv', encoding, sheets: null, sheet: null, shape: 'table', header: null, records, width, lineKind: 'line', problems }
}

// --- XLSX ------------------------------------------------------------------------------------

function cellText(v: ExcelJS.CellValue): string {
  if (v === null || v === undefined) return ''
  if (typeof v === 'string') return v
  if (typeof v === 'number' || typeof v === 'boolean') return String(v)
  if (v instanceof Date) return v.toISOString().replace(/T00:00:00\.000Z$/, '')
  if (typeof v === 'object') {
    if ('richText' in v && Array.isArray(v.richText)) return v.richText.map((t) => t.text).join('')
    if ('formula' in v || 'sharedFormula' in v) {
      const r = (v as { result?: ExcelJS.CellValue }).result
      return r === undefined ? '' : cellText(r as ExcelJS.CellValue)
    }
    if ('text' in v && typeof (v as { text: unknown }).text === 'string') return (v as { text: string }).text
    if ('error' in v) return ''
  }
  return String(v)
}

async function readXlsx(bytes: Uint8Array, sheetName?: string): Promise<Table> {
  const wb = new ExcelJS.Workbook()
  try {
    await wb.xlsx.load(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) as unknown as ExcelJS.Buffer)
  } catch (err) {
    return emptyTable('xlsx', 'row', [{ code: 'badXlsx', detail: err instanceof Error ? err.message.slice(0, 200) : String(err) }])
  }
  const sheets = wb.worksheets.map((w) => w.name)
  // The chosen sheet; else the first whose first row names a question or answer column; else the first with data.
  const firstRow = (w: ExcelJS.Worksheet): string[] => {
    let cells: string[] = []
    w.eachRow({ includeEmpty: false }, (row) => {
      if (cells.length === 0) cells = (row.values as ExcelJS.CellValue[]).slice(1).map(cellText)
    })
    return cells
  }
  const ws =
    (sheetName ? wb.worksheets.find((w) => w.name === sheetName) : undefined) ??
    wb.worksheets.find((w) => w.actualRowCount > 0 && looksLikeHeader(firstRow(w))) ??
    wb.worksheets.find((w) => w.actualRowCount > 0) ??
    wb.worksheets[0]
  if (!ws) return { ...emptyTable('xlsx', 'row', [{ code: 'noRows' }]), sheets }
  const records: TableRecord[] = []
  let width = 0
  ws.eachRow({ includeEmpty: false }, (row, rowNumber) => {
    const values = row.values as ExcelJS.CellValue[]
    const cells: string[] = []
    for (let c = 1; c < values.length; c++) cells.push(cellText(values[c]))
    while (cells.length && cells[cells.length - 1] === '') cells.pop()
    if (cells.length === 0) return
    width = Math.max(width, cells.length)
    records.push({ line: rowNumber, cells })
  })
  return { format: 'xlsx', encoding: null, sheets, sheet: ws.name, shape: 'table', header: null, records, width, lineKind: 'row', problems: [] }
}

// --- JSONL / JSON ------------------------------------------------------------------------------

type Json = null | boolean | number | string | Json[] | { [k: string]: Json }

function str(v: Json | undefined): string {
  if (v === null || v === undefined) return ''
  if (typeof v === 'string') return v
  if (typeof v === 'object') return JSON.stringify(v)
  return String(v)
}

function isObject(v: Json): v is { [k: string]: Json } {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function readJson(text: string, format: 'jsonl' | 'json', encoding: string): Table {
  const items: { line: number; value: Json }[] = []
  const problems: ImportProblem[] = []
  let lineKind: Table['lineKind'] = 'line'
  const trimmed = text.trimStart()
  if (trimmed.startsWith('[')) {
    lineKind = 'item'
    try {
      const arr = JSON.parse(text) as Json
      if (!Array.isArray(arr)) throw new Error('not an array')
      arr.forEach((value, i) => items.push({ line: i + 1, value }))
    } catch (err) {
      return emptyTable(format, 'line', [{ code: 'badJson', detail: err instanceof Error ? err.message.slice(0, 160) : String(err) }], encoding)
    }
  } else {
    const lines = text.split(/\r\n|\n|\r/)
    lines.forEach((l, i) => {
      if (l.trim() === '') return
      try {
        items.push({ line: i + 1, value: JSON.parse(l) as Json })
      } catch (err) {
        if (problems.length < MAX_LISTED_PROBLEMS) {
          problems.push({ code: 'badJson', line: i + 1, detail: err instanceof Error ? err.message.slice(0, 160) : String(err) })
        }
      }
    })
    if (problems.length) return emptyTable(format, 'line', problems, encoding)
  }

  // Shape by majority of objects: OpenAI chat ({messages}), alpaca ({instruction, output}), or flat objects.
  let messages = 0
  let alpaca = 0
  for (const it of items) {
    if (!isObject(it.value)) continue
    if (Array.isArray(it.value.messages)) messages++
    else if ('instruction' in it.value && 'output' in it.value) alpaca++
  }
  const table = (shape: Table['shape'], header: string[], records: TableRecord[]): Table => ({
    format,
    encoding,
    sheets: null,
    sheet: null,
    shape,
    header,
    records,
    width: header.length,
    lineKind,
    problems: records.length || items.length ? [] : [{ code: 'noRows' }],
  })

  if (messages > 0 && messages >= alpaca) {
    const records = items.map(({ line, value }): TableRecord => {
      if (!isObject(value) || !Array.isArray(value.messages)) return { line, cells: ['', ''], skip: { reason: 'unknownShape' } }
      const turns = value.messages.filter(isObject)
      const users = turns.filter((m) => m.role === 'user')
      const assistants = turns.filter((m) => m.role === 'assistant')
      if (users.length > 1 || assistants.length > 1) {
        return { line, cells: ['', ''], skip: { reason: 'multiTurn', detail: String(users.length) } }
      }
      return { line, cells: [str(users[0]?.content), str(assistants[0]?.content)] }
    })
    return table('messages', ['user', 'assistant'], records)
  }
  if (alpaca > 0) {
    const records = items.map(({ line, value }): TableRecord => {
      if (!isObject(value) || !('instruction' in value)) return { line, cells: ['', ''], skip: { reason: 'unknownShape' } }
      const instruction = str(value.instruction).trim()
      const input = str(value.input).trim()
      return { line, cells: [input ? `${instruction}\n\n${input}` : instruction, str(value.output)] }
    })
    return table('alpaca', ['instruction + input', 'output'], records)
  }
  // Flat objects: columns are the keys in order of first appearance.
  const keys: string[] = []
  const index = new Map<string, number>()
  for (const it of items) {
    if (!isObject(it.value)) continue
    for (const k of Object.keys(it.value)) {
      if (!index.has(k)) {
        index.set(k, keys.length)
        keys.push(k)
      }
    }
  }
  if (keys.length === 0) return emptyTable(format, lineKind, [{ code: 'unknownShape' }], encoding)
  const records = items.map(({ line, value }): TableRecord => {
    if (!isObject(value)) return { line, cells: keys.map(() => ''), skip: { reason: 'unknownShape' } }
    return { line, cells: keys.map((k) => str(value[k])) }
  })
  return table('qa', keys, records)
}
