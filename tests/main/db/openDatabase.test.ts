import Database from 'better-sqlite3'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { DatabaseOpenError, openDatabase, SCHEMA_VERSION } from '../../../main/db/openDatabase'
import { tempDir } from '../../helpers/tempContext'

const opened: Database.Database[] = []
afterEach(() => {
  for (const db of opened.splice(0)) db.close()
})

function expectOpenError(path: string, code: string): DatabaseOpenError {
  try {
    opened.push(openDatabase(path).db)
  } catch (err) {
    expect(err).toBeInstanceOf(DatabaseOpenError)
    expect((err as DatabaseOpenError).code).toBe(code)
    expect((err as DatabaseOpenError).path).toBe(path)
    return err as DatabaseOpenError
  }
  throw new Error('openDatabase should have failed')
}

describe('openDatabase', () => {
  it('creates the schema with WAL and foreign keys, and reopens without migrating again', () => {
    const path = join(tempDir(), 'app.sqlite')
    const first = openDatabase(path)
    opened.push(first.db)
    expect(first.created).toBe(true)
    expect(first.db.pragma('journal_mode', { simple: true })).toBe('wal')
    expect(first.db.pragma('foreign_keys', { simple: true })).toBe(1)
    expect(first.db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION)
    const tables = first.db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).pluck().all()
    for (const t of ['projects', 'qa_pairs', 'models', 'runs', 'run_metrics', 'checkpoints', 'chats', 'chat_messages', 'dataset_snapshots']) {
      expect(tables).toContain(t)
    }
    first.db.close()
    opened.pop()
    const second = openDatabase(path)
    opened.push(second.db)
    expect(second.created).toBe(false)
  })

  it('deletes a project with its rows (foreign keys cascade)', () => {
    const { db } = openDatabase(join(tempDir(), 'app.sqlite'))
    opened.push(db)
    const now = new Date().toISOString()
    const pid = db.prepare(`INSERT INTO projects (name, created_at, updated_at) VALUES ('p', ?, ?)`).run(now, now).lastInsertRowid
    db.prepare(`INSERT INTO qa_pairs (project_id, question, answer, position, created_at, updated_at) VALUES (?, 'q', 'a', 1, ?, ?)`).run(pid, now, now)
    db.prepare(`DELETE FROM projects WHERE id = ?`).run(pid)
    expect(db.prepare(`SELECT COUNT(*) FROM qa_pairs`).pluck().get()).toBe(0)
  })

  it('refuses a corrupt file and leaves it byte-for-byte untouched', () => {
    const path = join(tempDir(), 'app.sqlite')
    const garbage = Buffer.from('this is not a database, just some bytes '.repeat(200))
    writeFileSync(path, garbage)
    const err = expectOpenError(path, 'DB_CORRUPT')
    expect(err.message).toMatch(/not changed/)
    expect(readFileSync(path).equals(garbage)).toBe(true)
  })

  it('refuses a file from a newer schema and leaves it untouched', () => {
    const path = join(tempDir(), 'app.sqlite')
    const db = new Database(path)
    db.exec('CREATE TABLE future (x)')
    db.pragma(`user_version = ${SCHEMA_VERSION + 5}`)
    db.close()
    const before = readFileSync(path)
    const err = expectOpenError(path, 'DB_TOO_NEW')
    expect(err.message).toMatch(/newer version/)
    expect(readFileSync(path).equals(before)).toBe(true)
  })
})
