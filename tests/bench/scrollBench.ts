// Benchmark (not part of npm test): the dataset editor with 50,000 rows in headless Chromium against the
// built browser-mode server. Measures, in the page, requestAnimationFrame intervals while the grid scrolls
// (smooth scrolling, fast flings, random jumps like dragging the scrollbar, real mouse-wheel input), plus
// opening the page, moving with the keyboard, and importing the 50,000 rows through the file picker.
//
//   npx electron-vite build && npx tsx tests/bench/scrollBench.ts [rows=50000]
import { chromium, type Page } from '@playwright/test'
import { cpus, loadavg } from 'node:os'
import type { ImportReport, Project } from '../../preload/contract'
import { csvText, syntheticRows } from '../fixtures/datasets/datasetFixtures'
import { startServer } from '../e2e/server'

const N = Number(process.argv[2] ?? 50_000)

interface FrameStats {
  frames: number
  p50: number
  p95: number
  max: number
  over50: number
}

function stats(deltas: number[]): FrameStats {
  const s = [...deltas].sort((a, b) => a - b)
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!
  return { frames: s.length, p50: q(0.5), p95: q(0.95), max: s[s.length - 1]!, over50: s.filter((d) => d > 50).length }
}

const fmt = (s: FrameStats) =>
  `p50 ${s.p50.toFixed(1)} ms, p95 ${s.p95.toFixed(1)} ms, max ${s.max.toFixed(1)} ms, frames > 50 ms: ${s.over50} of ${s.frames}`

// In-page scripts are strings: tsx would otherwise inject its helpers (__name) into functions passed to the page.
const SCROLL_RUN = `(({ mode, frames }) => new Promise((resolve) => {
  const el = document.querySelector('[data-testid="grid-scroll"]')
  const deltas = []
  let last = performance.now()
  let i = 0
  let seed = 12345
  const step = () => {
    const now = performance.now()
    if (i > 0) deltas.push(now - last)
    last = now
    if (mode === 'smooth') el.scrollTop += 40
    else if (mode === 'fling') el.scrollTop += 600
    else {
      seed = (seed * 1103515245 + 12345) >>> 0
      el.scrollTop = (seed / 2 ** 32) * (el.scrollHeight - el.clientHeight)
    }
    if (++i <= frames) requestAnimationFrame(step)
    else resolve(deltas)
  }
  el.scrollTop = 0
  requestAnimationFrame(step)
}))`
const RECORD_START = `(() => {
  window.__deltas = []
  window.__stop = false
  let last = performance.now()
  const tick = () => {
    const now = performance.now()
    window.__deltas.push(now - last)
    last = now
    if (!window.__stop) requestAnimationFrame(tick)
  }
  requestAnimationFrame(tick)
})()`
const RECORD_STOP = `(() => { window.__stop = true; return window.__deltas.slice(1) })()`

/** Scrolls the grid from inside the page for `frames` animation frames and returns the frame intervals. */
async function scrollRun(page: Page, mode: 'smooth' | 'fling' | 'jump', frames: number): Promise<number[]> {
  return page.evaluate(`${SCROLL_RUN}(${JSON.stringify({ mode, frames })})`) as Promise<number[]>
}

async function main(): Promise<void> {
  const server = await startServer()
  const call = async <T>(channel: string, arg: unknown): Promise<T> => {
    const res = await fetch(`${server.base}/api/${channel}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-qt-token': server.token, host: new URL(server.base).host },
      body: JSON.stringify({ arg }),
    })
    const body = (await res.json()) as { ok: boolean; value: T; error?: { message: string } }
    if (!body.ok) throw new Error(`${channel}: ${body.error?.message}`)
    return body.value
  }
  const lines: string[] = [`${N} rows; node ${process.version}; ${cpus().length} x ${cpus()[0]?.model ?? '?'}; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`]
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  })
  try {
    const csv = Buffer.from(csvText(syntheticRows(N)), 'utf8')
    const p = await call<Project>('projects:create', { name: '50k 列' })
    const t0 = performance.now()
    const r = await call<ImportReport>('dataset:import', { projectId: p.id, fileName: 'bench.csv', dataBase64: csv.toString('base64') })
    lines.push(`import over HTTP: ${((performance.now() - t0) / 1000).toFixed(2)} s (${r.added} rows, ${(csv.length / 1e6).toFixed(1)} MB CSV)`)
    await call('settings:set', { lastProjectId: p.id })

    const page = await browser.newPage({ viewport: { width: 1440, height: 900 }, locale: 'zh-TW' })
    page.on('pageerror', (e) => console.error('page error:', e.message))
    const o0 = performance.now()
    await page.goto(server.url)
    await page.getByTestId('row-count').filter({ hasText: N.toLocaleString('en-US') }).waitFor({ timeout: 60_000 })
    lines.push(`open the dataset page with ${N} rows (to the grid showing them): ${((performance.now() - o0) / 1000).toFixed(2)} s`)
    await page.getByTestId('problem-count').waitFor({ timeout: 60_000 })
    const rendered = await page.getByTestId('grid-row').count()
    lines.push(`DOM rows rendered at 1440x900: ${rendered} (of ${N})`)

    await scrollRun(page, 'smooth', 30) // warm-up
    for (const [mode, frames, what] of [
      ['smooth', 300, 'smooth scroll, 40 px per frame'],
      ['fling', 300, 'fast fling, 600 px per frame'],
      ['jump', 300, 'random jumps over all rows each frame (scrollbar drag)'],
    ] as const) {
      lines.push(`${what}: ${fmt(stats(await scrollRun(page, mode, frames)))}`)
    }

    // Real wheel input: the frame recorder runs in the page while Playwright sends wheel events.
    await page.evaluate(RECORD_START)
    const box = (await page.getByTestId('grid-scroll').boundingBox())!
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2)
    for (let i = 0; i < 150; i++) await page.mouse.wheel(0, 240)
    const wheel = (await page.evaluate(RECORD_STOP)) as number[]
    lines.push(`mouse wheel, 150 notches of 240 px: ${fmt(stats(wheel))}`)

    // Keyboard: 100 ArrowDown presses and 20 PageDown presses from a cell.
    await page.getByTestId('grid-row').first().locator('[data-col="question"]').click()
    const k0 = performance.now()
    for (let i = 0; i < 100; i++) await page.keyboard.press('ArrowDown')
    for (let i = 0; i < 20; i++) await page.keyboard.press('PageDown')
    lines.push(`keyboard: 100 x ArrowDown + 20 x PageDown: ${((performance.now() - k0) / 120).toFixed(1)} ms per key press (round trip through Playwright)`)
    await page.close()

    // The whole user path: a 50,000-row CSV through the file picker, to the report on screen.
    const q = await call<Project>('projects:create', { name: '50k 匯入' })
    await call('settings:set', { lastProjectId: q.id })
    const page2 = await browser.newPage({ viewport: { width: 1440, height: 900 }, locale: 'zh-TW' })
    await page2.goto(server.url)
    await page2.getByTestId('empty-state').waitFor()
    // Playwright's own transfer of the file into the browser is not the app's time: start at the input's change event.
    await page2.evaluate(`document.querySelector('[data-testid=import-file]').addEventListener('change', () => { window.__picked = Date.now() }, true)`)
    await page2.getByTestId('import-file').setInputFiles({ name: 'bench.csv', mimeType: 'text/csv', buffer: csv })
    await page2.getByTestId('import-report').waitFor({ timeout: 60_000 })
    const reportAt = Date.now()
    await page2.getByTestId('row-count').filter({ hasText: N.toLocaleString('en-US') }).waitFor({ timeout: 60_000 })
    const rowsAt = Date.now()
    const picked = Number(await page2.evaluate('window.__picked'))
    lines.push(
      `import through the file picker, from choosing the file: report on screen ${((reportAt - picked) / 1000).toFixed(2)} s, ` +
        `grid showing all rows ${((rowsAt - picked) / 1000).toFixed(2)} s (read, preview, upload, import, reload)`,
    )
    await page2.close()
  } finally {
    await browser.close()
    await server.stop()
  }
  console.log(lines.join('\n'))
}

void main()
