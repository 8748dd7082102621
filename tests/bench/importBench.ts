// Benchmark (not part of npm test): importing 50,000 Q&A rows through the real dispatcher into a real SQLite
// file, as CSV (UTF-8 and Big5) and XLSX, plus the first and the follow-up quality check of those rows.
// Target: a 50,000-row import under 5 s.
//
//   npx tsx tests/bench/importBench.ts [rows=50000] [repeats=3]
import ExcelJS from 'exceljs'
import { cpus } from 'node:os'
import type { ImportReport, Project, QualityReport, RowsMutation } from '../../preload/contract'
import { tempApp } from '../helpers/tempContext'
import { encodeBig5 } from '../fixtures/datasets/encodings'
import { csvText, syntheticRows } from '../fixtures/datasets/datasetFixtures'

const N = Number(process.argv[2] ?? 50_000)
const REPEATS = Number(process.argv[3] ?? 3)

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

async function main(): Promise<void> {
  const rows = syntheticRows(N)
  const csv = Buffer.from(csvText(rows), 'utf8')
  const big5 = Buffer.from(encodeBig5(csvText(rows)))
  const wb = new ExcelJS.Workbook()
  const ws = wb.addWorksheet('資料')
  ws.addRow(['問題', '回答', '分類'])
  for (const r of rows) ws.addRow([r.question, r.answer, r.category])
  const xlsx = Buffer.from(await wb.xlsx.writeBuffer())
  const files: [string, string, Buffer][] = [
    ['CSV UTF-8', 'bench.csv', csv],
    ['CSV Big5', 'bench-big5.csv', big5],
    ['XLSX', 'bench.xlsx', xlsx],
  ]
  console.log(`${N} rows; CSV ${(csv.length / 1e6).toFixed(1)} MB, Big5 ${(big5.length / 1e6).toFixed(1)} MB, XLSX ${(xlsx.length / 1e6).toFixed(1)} MB`)
  console.log(`node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? '?'}`)

  const results: string[] = []
  const importLines: string[] = []
  let csvMedian = 0
  for (const [label, name, bytes] of files) {
    const times: number[] = []
    for (let i = 0; i < REPEATS; i++) {
      const app = tempApp()
      try {
        const p = await app.call<Project>('projects:create', { name: `bench ${i}` })
        const b64 = bytes.toString('base64')
        const t0 = performance.now()
        const r = await app.call<ImportReport>('dataset:import', { projectId: p.id, fileName: name, dataBase64: b64 })
        const ms = performance.now() - t0
        if (!r.ok || r.added !== N) throw new Error(`${label}: import failed: ${JSON.stringify(r.problems)} added ${r.added}`)
        times.push(ms)
        if (i === 0 && label === 'CSV UTF-8') {
          const c0 = performance.now()
          const q = await app.call<QualityReport>('dataset:check', { projectId: p.id })
          const cold = performance.now() - c0
          const first = (await app.call<{ id: number }[]>('rows:list', { projectId: p.id }))[0]!
          await app.call<RowsMutation>('rows:update', { projectId: p.id, changes: [{ id: first.id, answer: '改過的回答' }] })
          const w0 = performance.now()
          await app.call<QualityReport>('dataset:check', { projectId: p.id })
          const warm = performance.now() - w0
          const l0 = performance.now()
          await app.call('rows:list', { projectId: p.id })
          const list = performance.now() - l0
          const u0 = performance.now()
          await app.call('rows:undo', { projectId: p.id })
          await app.call('rows:undo', { projectId: p.id }) // the whole import, as one step
          const undo = performance.now() - u0
          results.push(
            `quality check, first: ${cold.toFixed(0)} ms (${q.rowsWithProblems} rows with problems); after one edit: ${warm.toFixed(0)} ms`,
            `rows:list of ${N} rows: ${list.toFixed(0)} ms; undo edit + undo import: ${undo.toFixed(0)} ms`,
          )
        }
      } finally {
        await app.cleanup()
      }
    }
    const m = median(times)
    if (label === 'CSV UTF-8') csvMedian = m
    importLines.push(`import ${label}: median ${(m / 1000).toFixed(2)} s (runs: ${times.map((t) => (t / 1000).toFixed(2)).join(', ')})`)
  }
  console.log([...importLines, ...results].join('\n'))
  if (csvMedian > 5000) {
    console.error(`FAIL: the CSV import took ${(csvMedian / 1000).toFixed(2)} s (target: under 5 s)`)
    process.exit(1)
  }
}

void main()
