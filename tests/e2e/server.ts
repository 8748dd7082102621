// Starts the built browser-mode server (out/main/serve.js) as a real child process on a free port with
// its own data directory, and parses the URL (with token) it prints.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface TestServer {
  url: string
  base: string
  token: string
  dataDir: string
  proc: ChildProcess
  output(): string
  stop(signal?: NodeJS.Signals): Promise<void>
}

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')

export function newDataDir(): string {
  return mkdtempSync(join(tmpdir(), 'qt-e2e-'))
}

export function startServer(dataDir: string = newDataDir(), env: NodeJS.ProcessEnv = {}): Promise<TestServer> {
  const proc = spawn(process.execPath, [join(ROOT, 'out', 'main', 'serve.js'), '--port', '0', '--data-dir', dataDir], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()))
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()))
  return new Promise((resolveServer, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 30_000)
    const check = () => {
      const m = /Open: (http:\/\/[^\s]+)/.exec(out)
      if (!m) return
      clearTimeout(timer)
      proc.stdout!.off('data', check)
      const url = m[1]!
      const u = new URL(url)
      resolveServer({
        url,
        base: u.origin,
        token: u.searchParams.get('token')!,
        dataDir,
        proc,
        output: () => out,
        stop: (signal = 'SIGTERM') =>
          new Promise((done) => {
            if (proc.exitCode !== null || proc.signalCode !== null) return done()
            proc.once('exit', () => done())
            proc.kill(signal)
          }),
      })
    }
    proc.stdout!.on('data', check)
    proc.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`server exited with ${code}:\n${out}`))
    })
  })
}

/** Calls a channel of the server's HTTP API as the renderer does in browser mode; throws on `{ ok: false }`. */
export async function callApi<T>(s: TestServer, channel: string, arg?: unknown): Promise<T> {
  const res = await fetch(`${s.base}/api/${channel}`, {
    method: 'POST',
    headers: { 'x-qt-token': s.token, 'Content-Type': 'application/json' },
    body: JSON.stringify({ arg }),
  })
  const r = (await res.json()) as { ok: boolean; value?: T; error?: { message: string } }
  if (!r.ok) throw new Error(`${channel}: ${r.error?.message}`)
  return r.value as T
}
