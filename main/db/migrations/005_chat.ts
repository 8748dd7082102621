// Schema 005 (chat): "Did it learn?" checks kept with their run. Chats and their messages use schema 1's tables
// (chats, chat_messages); their JSON columns are described in main/db/chatsRepo.ts.
//
// learn_checks       one check of a run's adapter (or one of its checkpoints): settings, status and progress.
// learn_check_items  one question of the check: its split, the reference answer, both answers and their scores.
//
// Written with IF NOT EXISTS so the step can run on a file that already has these tables (the migration list is
// positional; a reordering during development must not break a database).
import type Database from 'better-sqlite3'

export function m005Chat(db: Database.Database): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS learn_checks (
      id             INTEGER PRIMARY KEY,
      run_id         INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
      checkpoint_id  INTEGER,
      adapter_json   TEXT NOT NULL,
      adapter_path   TEXT NOT NULL,
      status         TEXT NOT NULL CHECK (status IN ('running', 'completed', 'cancelled', 'failed', 'interrupted')),
      per_split      INTEGER NOT NULL,
      max_new_tokens INTEGER NOT NULL,
      total          INTEGER NOT NULL DEFAULT 0,
      error          TEXT,
      created_at     TEXT NOT NULL,
      finished_at    TEXT
    );
    CREATE INDEX IF NOT EXISTS learn_checks_run ON learn_checks(run_id, id);

    CREATE TABLE IF NOT EXISTS learn_check_items (
      id             INTEGER PRIMARY KEY,
      check_id       INTEGER NOT NULL REFERENCES learn_checks(id) ON DELETE CASCADE,
      position       INTEGER NOT NULL,
      split          TEXT NOT NULL CHECK (split IN ('train', 'validation')),
      row_id_json    TEXT NOT NULL,
      question       TEXT NOT NULL,
      reference      TEXT NOT NULL,
      base_answer    TEXT NOT NULL,
      tuned_answer   TEXT NOT NULL,
      base_score     REAL NOT NULL,
      tuned_score    REAL NOT NULL,
      base_char_f1   REAL NOT NULL,
      tuned_char_f1  REAL NOT NULL,
      base_exact     INTEGER NOT NULL DEFAULT 0 CHECK (base_exact IN (0, 1)),
      tuned_exact    INTEGER NOT NULL DEFAULT 0 CHECK (tuned_exact IN (0, 1))
    );
    CREATE INDEX IF NOT EXISTS learn_check_items_check ON learn_check_items(check_id, position);
    CREATE INDEX IF NOT EXISTS chats_project ON chats(project_id, updated_at);
  `)
}
