// AppContext: everything the services share, created once per process by main/index.ts (Electron),
// main/serve.ts (browser mode) or a test. It opens the database; when that fails the context still
// exists in a 'database-error' state so the UI can explain what happened, and handlers that need the
// database refuse with DB_UNAVAILABLE.
import { join } from 'node:path'
import type { AppStatus } from '../preload/contract'
import { openDatabase, DatabaseOpenError, type Db } from './db/openDatabase'
import { createRepos, type Repos } from './db/repos'
import { AppError } from './errors'
import { EventBus } from './events'
import { seedSampleProject } from './projects/seedSampleProject'
import type { SettingsStore } from './settings/settingsStore'

export interface AppContextOptions {
  mode: 'electron' | 'browser'
  dataDir: string
  settings: SettingsStore
  /** Seed the sample project on first start (default true). */
  seed?: boolean
  /** better-sqlite3 native binding to use (the Electron build when running inside Electron). */
  sqliteBinding?: string
}

export interface AppContext {
  readonly mode: 'electron' | 'browser'
  readonly dataDir: string
  readonly databasePath: string
  readonly status: AppStatus
  readonly settings: SettingsStore
  readonly events: EventBus
  /** The open database; throws DB_UNAVAILABLE in the database-error state. */
  db(): Db
  repos(): Repos
  /** Functions run by close(), in reverse order of registration (engine host, servers, ...). */
  onClose(fn: () => void | Promise<void>): void
  close(): Promise<void>
}

export const DATABASE_FILE = 'qa-tuner.sqlite'

export function createAppContext(opts: AppContextOptions): AppContext {
  const databasePath = join(opts.dataDir, DATABASE_FILE)
  let db: Db | null = null
  let repos: Repos | null = null
  let status: AppStatus
  try {
    const opened = openDatabase(databasePath, { nativeBinding: opts.sqliteBinding })
    db = opened.db
    repos = createRepos(db)
    if (opened.created && opts.seed !== false) seedSampleProject(repos, opts.settings)
    status = { state: 'ready', firstRun: opened.created }
  } catch (err) {
    if (!(err instanceof DatabaseOpenError)) throw err
    status = { state: 'database-error', code: err.code, message: err.message, path: err.path }
  }
  const closers: (() => void | Promise<void>)[] = []
  const unavailable = () =>
    new AppError('DB_UNAVAILABLE', status.state === 'database-error' ? status.message : 'The database is closed.')

  return {
    mode: opts.mode,
    dataDir: opts.dataDir,
    databasePath,
    status,
    settings: opts.settings,
    events: new EventBus(),
    db() {
      if (!db) throw unavailable()
      return db
    },
    repos() {
      if (!repos) throw unavailable()
      return repos
    },
    onClose(fn) {
      closers.push(fn)
    },
    async close() {
      for (const fn of closers.reverse()) {
        try {
          await fn()
        } catch (err) {
          console.error('[context] close step failed:', err)
        }
      }
      closers.length = 0
      db?.close()
      db = null
      repos = null
    },
  }
}
