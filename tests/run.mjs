// `npm test`: every check of the project, in order, then one line `N passed, N failed`.
//
//   typecheck:node  tsc over main/, preload/, tests/          (1 check)
//   typecheck:web   vue-tsc over renderer/                    (1 check)
//   lint            eslint                                    (1 check)
//   unit            vitest: main services, native engine, renderer stores and components (each test counts)
//   build           electron-vite build                       (1 check)
//   e2e             Playwright in headless Chromium against browser mode (each test counts)
//
// `npm test -- unit e2e` runs only the named steps. A step that cannot run counts as failed.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const results = join(root, 'test-results')
const bin = (name) => join(root, 'node_modules', '.bin', name)

const steps = {
  'typecheck:node': () => check(bin('tsc'), ['-p', 'tsconfig.node.json', '--noEmit']),
  'typecheck:web': () => check(bin('vue-tsc'), ['-p', 'tsconfig.web.json', '--noEmit']),
  lint: () => check(bin('eslint'), ['.', '--max-warnings', '0']),
  unit: () => vitest(),
  build: () => check(bin('electron-vite'), ['build']),
  e2e: () => playwright(),
}

function run(cmd, args, extraEnv = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...extraEnv } })
  if (r.error) console.error(`[test] cannot run ${cmd}: ${r.error.message}`)
  return r.status === 0
}

function check(cmd, args) {
  const ok = run(cmd, args)
  return { passed: ok ? 1 : 0, failed: ok ? 0 : 1 }
}

function readJson(file) {
  try {
    return JSON.parse(readFileSync(file, 'utf8'))
  } catch {
    return null
  }
}

function vitest() {
  const out = join(results, 'vitest.json')
  rmSync(out, { force: true })
  const ok = run(bin('vitest'), ['run', '--reporter=default', '--reporter=json', `--outputFile.json=${out}`])
  const report = readJson(out)
  if (!report) return { passed: 0, failed: 1 }
  // A suite that failed to load counts as one failure even though it has no tests.
  const brokenFiles = (report.testResults ?? []).filter((f) => f.status === 'failed' && (f.assertionResults ?? []).length === 0).length
  const failed = report.numFailedTests + brokenFiles + (ok || report.numFailedTests + brokenFiles > 0 ? 0 : 1)
  return { passed: report.numPassedTests, failed }
}

function playwright() {
  const out = join(results, 'e2e.json')
  const ok = run(bin('playwright'), ['test'], { PLAYWRIGHT_JSON_OUTPUT_NAME: out })
  const report = readJson(out)
  if (!report) return { passed: 0, failed: 1 }
  const s = report.stats ?? {}
  const failed = (s.unexpected ?? 0) + (s.flaky ?? 0) + ((report.errors ?? []).length > 0 ? 1 : 0)
  return { passed: s.expected ?? 0, failed: failed || (ok ? 0 : 1) }
}

mkdirSync(results, { recursive: true })
const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'))
for (const w of wanted) {
  if (!(w in steps)) {
    console.error(`[test] unknown step "${w}"; steps: ${Object.keys(steps).join(', ')}`)
    process.exit(2)
  }
}
if (!existsSync(join(root, 'native', 'build', 'Release', 'qatuner.node'))) {
  console.warn('[test] native/build/Release/qatuner.node is missing: run `npm install` (or `npm run build:native`) first.')
}

let passed = 0
let failed = 0
const lines = []
for (const [name, fn] of Object.entries(steps)) {
  if (wanted.length && !wanted.includes(name)) continue
  console.log(`\n===== ${name} =====`)
  const t0 = Date.now()
  const r = fn()
  passed += r.passed
  failed += r.failed
  lines.push(`${r.failed ? 'FAIL' : 'ok  '} ${name.padEnd(16)} ${r.passed} passed, ${r.failed} failed (${((Date.now() - t0) / 1000).toFixed(1)} s)`)
}
console.log('\n' + lines.join('\n'))
console.log(`${passed} passed, ${failed} failed`)
process.exit(failed ? 1 : 0)
