// Opens the app's SQLite file: WAL, foreign keys, numbered migrations applied in one transaction.
//
// A file that is corrupt, not a database, or written by a newer version of the app is never modified:
// it is first inspected read-only, and a DatabaseOpenError (with the path) tells the UI to show the
// error page instead of the shell.
import Database from 'better-sqlite3'
import { existsSync, mkdirSync, statSync } from 'node:fs'
import { dirname } from 'node:path'
import { migrations } from './migrations'

export type Db = Database.Database

export class DatabaseOpenError extends Error {
  constructor(
    readonly code: 'DB_CORRUPT' | 'DB_TOO_NEW' | 'DB_UNAVAILABLE',
    message: string,
    readonly path: string,
  ) {
    super(message)
    this.name = 'DatabaseOpenError'
  }
}

export const SCHEMA_VERSION = migrations.length

export interface OpenResult {
  db: Db
  /** True when the file did not exist before (first start). */
  created: boolean
}

function inspectExisting(path: string, nativeBinding: string | undefined): void {
  let ro: Db | undefined
  try {
    ro = new Database(path, { readonly: true, fileMustExist: true, nativeBinding })
    const version = ro.pragma('user_version', { simple: true }) as number
    if (version > SCHEMA_VERSION) {
      throw new DatabaseOpenError(
        'DB_TOO_NEW',
        `This data file was written by a newer version of the app (schema ${version}, this version knows ${SCHEMA_VERSION}). ` +
          'Update the app, or start it with a different data folder. The file was not changed.',
        path,
      )
    }
    const check = ro.pragma('quick_check', { simple: true })
    if (check !== 'ok') throw Object.assign(new Error(String(check)), { code: 'SQLITE_CORRUPT' })
  } catch (err) {
    if (err instanceof DatabaseOpenError) throw err
    const reason = err instanceof Error ? err.message : String(err)
    const code = String((err as { code?: unknown }).code ?? '')
    if (!/^SQLITE_(NOTADB|CORRUPT)/.test(code)) {
      throw new DatabaseOpenError('DB_UNAVAILABLE', `The data file cannot be opened (${reason}). It was not changed.`, path)
    }
    throw new DatabaseOpenError(
      'DB_CORRUPT',
      `The data file is damaged and cannot be opened (${reason}). It was not changed. ` +
        'Move it somewhere safe (or restore a backup), then restart the app to begin with a new one.',
      path,
    )
  } finally {
    ro?.close()
  }
}

export function openDatabase(path: string, opts: { nativeBinding?: string } = {}): OpenResult {
  const created = !existsSync(path) || statSync(path).size === 0
  if (!created) inspectExisting(path, opts.nativeBinding)
  try {
    mkdirSync(dirname(path), { recursive: true })
  } catch (err) {
    throw new DatabaseOpenError('DB_UNAVAILABLE', `Cannot create the data folder ${dirname(path)}: ${(err as Error).message}`, path)
  }
  let db: Db
  try {
    db = new Database(path, { nativeBinding: opts.nativeBinding })
  } catch (err) {
    throw new DatabaseOpenError('DB_UNAVAILABLE', `Cannot open the data file: ${(err as Error).message}`, path)
  }
  db.pragma('journal_mode = WAL')
  db.pragma('foreign_keys = ON')
  db.pragma('busy_timeout = 5000')
  db.pragma('synchronous = NORMAL')
  migrate(db)
  return { db, created }
}

/** Applies the migrations the file lacks, all in one transaction; user_version records the schema. */
export function migrate(db: Db): void {
  const current = db.pragma('user_version', { simple: true }) as number
  if (current >= migrations.length) return
  db.transaction(() => {
    for (let v = current; v < migrations.length; v++) {
      migrations[v]!(db)
    }
    db.pragma(`user_version = ${migrations.length}`)
  })()
}
