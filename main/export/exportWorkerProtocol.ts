// Messages between main and the export worker process (main/export/exportWorker.ts), and main's side of it:
// runExportInWorker() forks the worker, relays progress, answers its requests for the app engine's greedy answers,
// and on cancel asks it to stop (its runner deletes the temporary folder), then kills it if it does not exit in time
// and removes the temporary folder itself.
import { fork } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { AppErrorInfo, ExportResult } from '../../preload/contract'
import { AppError, toErrorInfo } from '../errors'
import { appRoot } from '../paths'
import type { ExportProgress, ExportSpec } from './runExport'

export type MainToExportWorker =
  | { t: 'start'; spec: ExportSpec }
  | { t: 'cancel' }
  | { t: 'answers'; id: number; ok: true; value: number[][] }
  | { t: 'answers'; id: number; ok: false; error: AppErrorInfo }

export type ExportWorkerToMain =
  | { t: 'progress'; p: ExportProgress }
  | { t: 'engineAnswers'; id: number; prompts: number[][]; stopIds: number[] }
  | { t: 'done'; result: ExportResult }
  | { t: 'failed'; error: AppErrorInfo }

/** The worker's entry file: the built out/main/exportWorker.js, or the TypeScript source (vitest, tsx). */
export function exportWorkerEntry(): { file: string; execArgv: string[] } {
  const root = appRoot()
  const source = join(root, 'main', 'export', 'exportWorker.ts')
  const built = join(root, 'out', 'main', 'exportWorker.js')
  if (import.meta.url.endsWith('.ts') || (!existsSync(built) && existsSync(source))) return { file: source, execArgv: ['--import', 'tsx'] }
  return { file: built, execArgv: [] }
}

export interface WorkerHooks {
  onProgress: (p: ExportProgress) => void
  /** The app engine's greedy answers (ids, stop token included) for these prompts. */
  engineAnswers: (prompts: number[][], stopIds: number[]) => Promise<number[][]>
  signal: AbortSignal
  /** How long a cancelled worker may take to clean up before it is killed (default 15 s). */
  killAfterMs?: number
}

/** Temporary folders an export named `name` may have left in `destDir` (runExport names them .<name>.partial-*). */
export async function removePartialFolders(destDir: string, name: string): Promise<void> {
  let entries: string[] = []
  try {
    entries = readdirSync(destDir)
  } catch {
    return
  }
  for (const e of entries) if (e.startsWith(`.${name}.partial-`)) await rm(join(destDir, e), { recursive: true, force: true })
}

export function runExportInWorker(spec: ExportSpec, hooks: WorkerHooks): Promise<ExportResult> {
  const { file, execArgv } = exportWorkerEntry()
  const child = fork(file, [], {
    cwd: appRoot(),
    execArgv,
    env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'json',
  })
  const send = (m: MainToExportWorker) => {
    if (child.connected) child.send(m)
  }
  return new Promise<ExportResult>((resolve, reject) => {
    let settled: { ok: true; result: ExportResult } | { ok: false; error: AppErrorInfo } | null = null
    let killTimer: NodeJS.Timeout | null = null
    const onAbort = () => {
      send({ t: 'cancel' })
      killTimer = setTimeout(() => child.kill('SIGKILL'), hooks.killAfterMs ?? 15_000)
    }
    if (hooks.signal.aborted) onAbort()
    else hooks.signal.addEventListener('abort', onAbort, { once: true })

    child.on('message', (raw: unknown) => {
      const m = raw as ExportWorkerToMain
      if (m.t === 'progress') hooks.onProgress(m.p)
      else if (m.t === 'engineAnswers') {
        hooks.engineAnswers(m.prompts, m.stopIds).then(
          (value) => send({ t: 'answers', id: m.id, ok: true, value }),
          (err: unknown) => send({ t: 'answers', id: m.id, ok: false, error: toErrorInfo(err) }),
        )
      } else if (m.t === 'done') settled = { ok: true, result: m.result }
      else if (m.t === 'failed') settled = { ok: false, error: m.error }
    })
    child.on('error', (err) => {
      if (!settled) settled = { ok: false, error: { code: 'INTERNAL', message: `The export process could not start: ${err.message}` } }
    })
    child.once('exit', (code, signal) => {
      if (killTimer) clearTimeout(killTimer)
      hooks.signal.removeEventListener('abort', onAbort)
      void (async () => {
        if (settled?.ok) return resolve(settled.result)
        // Killed or crashed mid-write: nothing may stay behind.
        await removePartialFolders(spec.destDir, spec.name)
        if (settled) return reject(new AppError(settled.error.code, settled.error.message, settled.error.details))
        if (hooks.signal.aborted) return reject(new AppError('CANCELLED', 'Export cancelled: nothing was kept.'))
        reject(new AppError('INTERNAL', `The export process stopped unexpectedly (${signal ?? `exit code ${code}`}). Nothing was kept; try again.`))
      })()
    })
    send({ t: 'start', spec })
  })
}
