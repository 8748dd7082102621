// The headless CLI (main/cli/finetune.ts) as a real child process, plain-line output (not a terminal).
//
// SLOW TEST (about a minute on 2 cores): `npm run finetune` with no arguments trains the sample project on the
// bundled demo model from scratch and prints a generated answer. The only test of the full demo run.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { parseFinetuneArgs } from '../../../main/cli/finetune'
import { appRoot } from '../../../main/paths'

const dirs: string[] = []
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

function dataDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'qt-cli-'))
  dirs.push(d)
  return d
}

interface Finished {
  code: number | null
  out: string
}

function cli(args: string[], dir: string, onLine?: (line: string, child: ReturnType<typeof spawn>) => void): Promise<Finished> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(appRoot(), 'main', 'cli', 'finetune.ts'), ...args], {
    cwd: appRoot(),
    env: { ...process.env, QT_DATA_DIR: dir },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let pending = ''
  const take = (d: Buffer) => {
    out += d.toString()
    pending += d.toString()
    const lines = pending.split('\n')
    pending = lines.pop()!
    for (const l of lines) onLine?.(l, child)
  }
  child.stdout.on('data', take)
  child.stderr.on('data', take)
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, out })))
}

describe('npm run finetune', () => {
  it('parses its options and refuses unknown ones with a plain message', () => {
    const a = parseFinetuneArgs(['--project', 'HR', '--preset', 'small', '--set', 'lr=1e-4', '--set', 'loraTargets=q_proj,v_proj', '--device', 'cuda:0'], {})
    expect(a).toMatchObject({ project: 'HR', preset: 'small', device: 'cuda:0', set: { lr: 1e-4, loraTargets: ['q_proj', 'v_proj'] } })
    expect(() => parseFinetuneArgs(['--preset', 'huge'], {})).toThrow(/Unknown preset "huge"/)
    expect(() => parseFinetuneArgs(['--set', 'lr=-1'], {})).toThrow(/Bad --set value: lr/)
    expect(() => parseFinetuneArgs(['--set', 'nope=1'], {})).toThrow(/Unknown setting "nope"/)
    expect(() => parseFinetuneArgs(['--device', 'gpu'], {})).toThrow(/--device must be/)
    expect(() => parseFinetuneArgs(['--frobnicate'], {})).toThrow(/Unknown option/)
    expect(parseFinetuneArgs([], { QT_DATA_DIR: '/x' }).dataDir).toBe('/x')
  })

  it('SLOW (~1 min): with no arguments it fine-tunes the sample project on the demo model and prints a generated answer', async () => {
    const dir = dataDir()
    const r = await cli([], dir)
    expect(r.code, r.out).toBe(0)
    expect(r.out).toMatch(/project "範例：員工手冊問答" \(50 rows\) · model "示範小模型 \(CPU\)"/)
    expect(r.out).toMatch(/Preset "demo" on cpu/)
    expect(r.out).toMatch(/eval {2}step \d+ {2}epoch/)
    const m = /Run #1 completed at step (\d+)\/\1 · training loss ([\d.]+) -> ([\d.]+)/.exec(r.out)
    expect(m, r.out).not.toBeNull()
    expect(Number(m![3])).toBeLessThan(1) // the demo model learns the sample (7.4 -> ~0.2 measured)
    expect(Number(m![3])).toBeLessThan(Number(m![2]) / 4)
    expect(r.out).toMatch(/Verdict: /)
    expect(r.out).toMatch(/Adapter \(PEFT\): .*runs[\\/]1[\\/]adapter/)
    expect(r.out).toMatch(/Question: .+？/)
    const said = /Model says: (.*)/.exec(r.out)
    const trained = /Trained answer: (.*)/.exec(r.out)
    expect(said?.[1].trim().length).toBeGreaterThan(0)
    // It recites the trained answer (allowing a few differing characters).
    const a = [...said![1].trim()], b = [...trained![1].trim()]
    const same = a.filter((ch, i) => b[i] === ch).length
    expect(same / b.length, `${said![1]}\n${trained![1]}`).toBeGreaterThan(0.8)
  }, 300_000)

  it('Ctrl+C stops gracefully with a checkpoint; the same command then resumes and completes', async () => {
    const dir = dataDir()
    const args = ['--preset', 'demo', '--set', 'epochs=3', '--set', 'validationFraction=0']
    let sent = false
    const first = await cli(args, dir, (line, child) => {
      if (!sent && /^ {2}step [2-9]\d*\//.test(line)) {
        sent = true
        child.kill('SIGINT')
      }
    })
    expect(first.out).toMatch(/Stopping after the current step/)
    expect(first.code, first.out).toBe(130)
    const stoppedAt = Number(/Stopped\. Run the same command again to resume from step (\d+)/.exec(first.out)?.[1])
    expect(stoppedAt, first.out).toBeGreaterThan(0)

    const second = await cli(args, dir)
    expect(second.code, second.out).toBe(0)
    expect(second.out).toMatch(new RegExp(`Resuming run #1 from step ${stoppedAt}`))
    expect(second.out).toMatch(/Run #1 completed at step 39\/39/) // 50 rows, no validation, batches of 4: 13 steps x 3 epochs
  }, 300_000)
})
