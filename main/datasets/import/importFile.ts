// Import: preview (what the file holds, how its columns map) and the import itself, which adds every usable
// row in ONE transaction and one undoable step, or, when the file has a problem, changes nothing and says
// why with line numbers.
import type { ImportMapping, ImportOptions, ImportPreview, ImportProblem, ImportReport, QaFields, SkipReason } from '../../../preload/contract'
import type { RowEditor } from '../rowEdits'
import { MAX_CATEGORY_CHARS, MAX_TEXT_CHARS } from '../limits'
import { looksLikeHeader, mappingFromHeader, parseEnabled, positionalMapping } from './mapping'
import { readTable, type Table, type TableRecord } from './readTable'

const SAMPLE_ROWS = 8
const MAX_LISTED_SKIPS = 500
const MAX_LISTED_PROBLEMS = 20

interface Prepared {
  table: Table
  hasHeader: boolean
  columns: string[]
  records: TableRecord[]
  mapping: ImportMapping
  autoMapped: boolean
  problems: ImportProblem[]
}

async function prepare(fileName: string, bytes: Uint8Array, options: ImportOptions): Promise<Prepared> {
  const table = await readTable(fileName, bytes, { encoding: options.encoding, sheet: options.sheet })
  const problems = [...table.problems]
  let hasHeader = false
  let columns: string[] = []
  let records = table.records
  let mapping: ImportMapping = { question: null, answer: null, category: null, enabled: null }
  let autoMapped = false

  if (table.shape === 'messages' || table.shape === 'alpaca') {
    hasHeader = true
    columns = table.header ?? []
    mapping = { question: 0, answer: 1, category: null, enabled: null }
    autoMapped = true
  } else if (table.shape === 'qa') {
    hasHeader = true
    columns = table.header ?? []
    mapping = mappingFromHeader(columns)
    autoMapped = mapping.question !== null && mapping.answer !== null
  } else if (records.length > 0) {
    const first = records[0]!
    hasHeader = options.hasHeader ?? looksLikeHeader(first.cells)
    if (hasHeader) {
      columns = Array.from({ length: table.width }, (_, i) => (first.cells[i] ?? '').trim())
      records = records.slice(1)
      mapping = mappingFromHeader(columns)
      autoMapped = mapping.question !== null && mapping.answer !== null
      // A record with more filled cells than the header has columns usually means an unquoted delimiter
      // inside a text: refuse rather than silently splitting an answer.
      const headerWidth = first.cells.length
      for (const r of records) {
        if (r.cells.length <= headerWidth) continue
        if (r.cells.slice(headerWidth).every((c) => c.trim() === '')) continue
        if (problems.filter((p) => p.code === 'fieldCount').length >= MAX_LISTED_PROBLEMS) break
        problems.push({ code: 'fieldCount', line: r.line, detail: `${r.cells.length}/${headerWidth}` })
      }
    } else {
      columns = Array.from({ length: table.width }, () => '')
      mapping = positionalMapping(table.width)
    }
  }
  if (problems.length === 0 && records.length === 0) problems.push({ code: 'noRows' })
  return { table, hasHeader, columns, records, mapping, autoMapped, problems }
}

export async function previewImport(fileName: string, bytes: Uint8Array, options: ImportOptions = {}): Promise<ImportPreview> {
  const p = await prepare(fileName, bytes, options)
  const width = p.columns.length
  return {
    fileName,
    format: p.table.format,
    encoding: p.table.encoding,
    sheets: p.table.sheets,
    sheet: p.table.sheet,
    shape: p.table.shape,
    hasHeader: p.hasHeader,
    columns: p.columns,
    sampleRows: p.records.slice(0, SAMPLE_ROWS).map((r) => Array.from({ length: width }, (_, i) => r.cells[i] ?? '')),
    totalRecords: p.records.length,
    mapping: p.mapping,
    autoMapped: p.autoMapped,
    lineKind: p.table.lineKind,
    problems: p.problems,
  }
}

function clean(s: string | undefined): string {
  return (s ?? '').replace(/\r\n?/g, '\n').trim()
}

const key = (q: string, a: string) => `${q}\u0000${a}`

export interface ImportContext {
  editor: RowEditor
  /** Existing rows of the project, for duplicate detection. */
  existing: () => { question: string; answer: string }[]
}

export async function importFile(
  ctx: ImportContext,
  projectId: number,
  fileName: string,
  bytes: Uint8Array,
  mappingArg: ImportMapping | undefined,
  options: ImportOptions = {},
): Promise<ImportReport> {
  const t0 = performance.now()
  const p = await prepare(fileName, bytes, options)
  // Without an explicit mapping only a file whose columns were recognised by name is imported: a file with
  // unknown columns ("wrong columns") needs the user to say which column is which.
  const mapping = mappingArg ?? (p.autoMapped ? p.mapping : null)
  const base = {
    fileName,
    format: p.table.format,
    encoding: p.table.encoding,
    lineKind: p.table.lineKind,
  }
  const refuse = (problems: ImportProblem[]): ImportReport => ({
    ok: false,
    ...base,
    added: 0,
    replaced: 0,
    skipped: 0,
    skippedByReason: {},
    skippedRows: [],
    problems,
    durationMs: Math.round(performance.now() - t0),
    history: null,
  })
  if (p.problems.length) return refuse(p.problems)
  const width = Math.max(p.table.width, p.columns.length)
  const bad = (i: number | null) => i !== null && (i < 0 || i >= width)
  if (!mapping || mapping.question === null || mapping.answer === null || [mapping.question, mapping.answer, mapping.category, mapping.enabled].some(bad)) {
    return refuse([{ code: 'unmapped' }])
  }

  const skipIncomplete = options.skipIncomplete ?? true
  const skipDuplicates = options.skipDuplicates ?? true
  const replace = options.mode === 'replace'
  const seen = new Set<string>()
  if (skipDuplicates && !replace) for (const r of ctx.existing()) seen.add(key(r.question.trim(), r.answer.trim()))
  const inFile = new Set<string>()

  const rows: QaFields[] = []
  const skippedRows: ImportReport['skippedRows'] = []
  const skippedByReason: Partial<Record<SkipReason, number>> = {}
  let skipped = 0
  const skip = (line: number, reason: SkipReason, detail?: string) => {
    skipped++
    skippedByReason[reason] = (skippedByReason[reason] ?? 0) + 1
    if (skippedRows.length < MAX_LISTED_SKIPS) skippedRows.push(detail === undefined ? { line, reason } : { line, reason, detail })
  }

  for (const r of p.records) {
    if (r.skip) {
      skip(r.line, r.skip.reason, r.skip.detail)
      continue
    }
    const question = clean(r.cells[mapping.question])
    const answer = clean(r.cells[mapping.answer])
    const category = mapping.category === null ? '' : clean(r.cells[mapping.category])
    const enabled = mapping.enabled === null ? true : parseEnabled(r.cells[mapping.enabled] ?? '')
    if (question === '' && answer === '' && category === '') {
      skip(r.line, 'blank')
      continue
    }
    if (question.length > MAX_TEXT_CHARS || answer.length > MAX_TEXT_CHARS || category.length > MAX_CATEGORY_CHARS) {
      skip(r.line, 'tooLong', String(Math.max(question.length, answer.length)))
      continue
    }
    if (skipIncomplete && question === '') {
      skip(r.line, 'emptyQuestion')
      continue
    }
    if (skipIncomplete && answer === '') {
      skip(r.line, 'emptyAnswer')
      continue
    }
    if (skipDuplicates) {
      const k = key(question, answer)
      if (inFile.has(k)) {
        skip(r.line, 'duplicateInFile')
        continue
      }
      if (seen.has(k)) {
        skip(r.line, 'duplicateExisting')
        continue
      }
      inFile.add(k)
    }
    rows.push({ question, answer, category, enabled })
  }

  let added = 0
  let replaced = 0
  let history: ImportReport['history'] = null
  // Replace only with something: a file whose rows were all skipped never empties the project.
  if (rows.length > 0) {
    const done = ctx.editor.bulkImport(projectId, rows, replace)
    added = done.added
    replaced = done.replaced
    history = done.history
  }
  return {
    ok: true,
    ...base,
    added,
    replaced,
    skipped,
    skippedByReason,
    skippedRows,
    problems: [],
    durationMs: Math.round(performance.now() - t0),
    history,
  }
}
