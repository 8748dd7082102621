// Schema 1: projects and their Q&A rows, models, training runs (metrics, checkpoints, frozen dataset
// snapshots) and chats. Timestamps are ISO-8601 UTC strings.
import type Database from 'better-sqlite3'

export function m001Initial(db: Database.Database): void {
  db.exec(`
    CREATE TABLE models (
      id            INTEGER PRIMARY KEY,
      name          TEXT NOT NULL,
      path          TEXT NOT NULL UNIQUE,
      source        TEXT NOT NULL CHECK (source IN ('local', 'hub', 'demo')),
      repo_id       TEXT,
      revision      TEXT,
      architecture  TEXT NOT NULL DEFAULT '',
      size_bytes    INTEGER NOT NULL DEFAULT 0,
      status        TEXT NOT NULL DEFAULT 'ready' CHECK (status IN ('ready', 'downloading', 'failed')),
      info_json     TEXT NOT NULL DEFAULT '{}',
      added_at      TEXT NOT NULL
    );

    CREATE TABLE projects (
      id            INTEGER PRIMARY KEY,
      name          TEXT NOT NULL UNIQUE COLLATE NOCASE,
      language      TEXT NOT NULL DEFAULT 'zh-TW' CHECK (language IN ('zh-TW', 'en')),
      system_prompt TEXT NOT NULL DEFAULT '',
      model_id      INTEGER REFERENCES models(id) ON DELETE SET NULL,
      created_at    TEXT NOT NULL,
      updated_at    TEXT NOT NULL
    );

    CREATE TABLE qa_pairs (
      id            INTEGER PRIMARY KEY,
      project_id    INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
      question      TEXT NOT NULL DEFAULT '',
      answer        TEXT NOT NULL DEFAULT '',
      category      TEXT NOT NULL DEFAULT '',
      enabled       INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
      position      REAL NOT NULL,
      created_at    TEXT NOT NULL,
      updated_at    TEXT NOT NULL
    );
    CREATE INDEX qa_pairs_project_position ON qa_pairs(project_id, position);

    CREATE TABLE dataset_snapshots (
      id            INTEGER PRIMARY KEY,
      project_id    INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
      content_hash  TEXT NOT NULL,
      row_count     INTEGER NOT NULL,
      system_prompt TEXT NOT NULL,
      rows_json     TEXT NOT NULL,
      created_at    TEXT NOT NULL,
      UNIQUE (project_id, content_hash)
    );

    CREATE TABLE runs (
      id            INTEGER PRIMARY KEY,
      project_id    INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
      model_id      INTEGER REFERENCES models(id) ON DELETE SET NULL,
      snapshot_id   INTEGER REFERENCES dataset_snapshots(id) ON DELETE SET NULL,
      name          TEXT NOT NULL DEFAULT '',
      status        TEXT NOT NULL CHECK (status IN ('queued', 'preparing', 'loading', 'training', 'evaluating',
                                                    'completed', 'stopped', 'failed', 'interrupted')),
      preset        TEXT NOT NULL DEFAULT '',
      settings_json TEXT NOT NULL DEFAULT '{}',
      output_dir    TEXT NOT NULL DEFAULT '',
      error         TEXT,
      total_steps   INTEGER NOT NULL DEFAULT 0,
      step          INTEGER NOT NULL DEFAULT 0,
      epoch         REAL NOT NULL DEFAULT 0,
      best_val_loss REAL,
      summary_json  TEXT NOT NULL DEFAULT '{}',
      created_at    TEXT NOT NULL,
      started_at    TEXT,
      ended_at      TEXT
    );
    CREATE INDEX runs_project ON runs(project_id, created_at);

    CREATE TABLE run_metrics (
      id            INTEGER PRIMARY KEY,
      run_id        INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
      kind          TEXT NOT NULL CHECK (kind IN ('train', 'eval')),
      step          INTEGER NOT NULL,
      epoch         REAL NOT NULL,
      loss          REAL,
      lr            REAL,
      grad_norm     REAL,
      tokens        INTEGER,
      tokens_per_s  REAL,
      gpu_mem_bytes INTEGER,
      created_at    TEXT NOT NULL
    );
    CREATE INDEX run_metrics_run_step ON run_metrics(run_id, kind, step);

    CREATE TABLE checkpoints (
      id            INTEGER PRIMARY KEY,
      run_id        INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
      step          INTEGER NOT NULL,
      epoch         REAL NOT NULL,
      kind          TEXT NOT NULL CHECK (kind IN ('step', 'epoch', 'best', 'final')),
      path          TEXT NOT NULL,
      val_loss      REAL,
      created_at    TEXT NOT NULL
    );
    CREATE INDEX checkpoints_run ON checkpoints(run_id, step);

    CREATE TABLE chats (
      id            INTEGER PRIMARY KEY,
      project_id    INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
      title         TEXT NOT NULL DEFAULT '',
      model_id      INTEGER REFERENCES models(id) ON DELETE SET NULL,
      adapter_json  TEXT NOT NULL DEFAULT 'null',
      settings_json TEXT NOT NULL DEFAULT '{}',
      created_at    TEXT NOT NULL,
      updated_at    TEXT NOT NULL
    );

    CREATE TABLE chat_messages (
      id            INTEGER PRIMARY KEY,
      chat_id       INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
      role          TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
      content       TEXT NOT NULL,
      meta_json     TEXT NOT NULL DEFAULT '{}',
      created_at    TEXT NOT NULL
    );
    CREATE INDEX chat_messages_chat ON chat_messages(chat_id, id);
  `)
}
