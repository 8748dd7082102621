// Schema 2 (dataset editor): the per-project edit journal behind undo/redo.
//
// Each row is one undoable step (a cell edit, a paste, a delete, an import...). ops_json holds the row
// states before and after, so undo and redo survive a restart. `undone` = 1 marks steps that were undone
// and can be redone; a new step deletes them (a new edit clears the redo stack).
import type Database from 'better-sqlite3'

export function m002DatasetEditor(db: Database.Database): void {
  db.exec(`
    CREATE TABLE dataset_edits (
      id            INTEGER PRIMARY KEY,
      project_id    INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
      label         TEXT NOT NULL,
      merge_key     TEXT,
      ops_json      TEXT NOT NULL,
      row_count     INTEGER NOT NULL DEFAULT 0,
      undone        INTEGER NOT NULL DEFAULT 0 CHECK (undone IN (0, 1)),
      created_at    TEXT NOT NULL
    );
    CREATE INDEX dataset_edits_project ON dataset_edits(project_id, undone, id);
    CREATE INDEX dataset_snapshots_project ON dataset_snapshots(project_id, created_at);
  `)
}
