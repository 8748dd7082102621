// Runs the native engine's C++ checks (native/tests, built as engine_tests by `npm run build:native`) and
// registers one vitest test per C++ test, so `npm test` counts each of them.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const exeName = process.platform === 'win32' ? 'engine_tests.exe' : 'engine_tests'
// Ninja / Makefiles put it in build/tests; Visual Studio generators in build/tests/<Config>.
const candidates = [join(root, 'native', 'build', 'tests', exeName), join(root, 'native', 'build', 'tests', 'Release', exeName),
  join(root, 'native', 'build', 'tests', 'Debug', exeName)]
const exe = candidates.find((p) => existsSync(p))

function listTests(): string[] {
  if (!exe) return []
  const r = spawnSync(exe, ['--list'], { encoding: 'utf8' })
  if (r.status !== 0) return []
  return r.stdout.split('\n').map((s) => s.trim()).filter(Boolean)
}

const names = listTests()

describe('native engine (C++ engine_tests)', () => {
  it('engine_tests is built and lists its tests', () => {
    expect(exe, `engine_tests not found in native/build/tests: run \`npm run build:native\``).toBeTruthy()
    expect(names.length).toBeGreaterThan(40)
  })

  for (const name of names) {
    it(name, () => {
      const r = spawnSync(exe!, [name], { encoding: 'utf8', timeout: 120_000 })
      expect(r.status, `${r.stdout}${r.stderr}`).toBe(0)
      expect(r.stdout).toContain(`ok   ${name}`)
    })
  }
})
