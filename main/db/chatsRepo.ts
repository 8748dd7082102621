// Chats (chats, chat_messages) and "Did it learn?" checks (learn_checks, learn_check_items): all their SQL.
// JSON columns (main/chat owns and validates their shapes):
//   chats.adapter_json          ChatAdapterRef: null or { runId, checkpointId }
//   chats.settings_json         { mode: 'chat' | 'compare', sampling: SamplingSettings }
//   chat_messages.meta_json     { variant: 'base' | 'tuned' | null, generation: ChatMessageEntry['generation'] }
//   learn_checks.adapter_json   ChatAdapterInfo (which adapter was checked)
//   learn_checks.error          AppErrorInfo as JSON, or NULL
//   learn_check_items.row_id_json   the dataset row id (number or string) as JSON
import type { LearnCheckItem, LearnCheckSplitSummary } from '../../preload/contract'
import type { Db } from './openDatabase'
import { nowIso } from './now'

function parseJson(text: string | null): unknown {
  if (text === null) return null
  try {
    return JSON.parse(text) as unknown
  } catch {
    return null
  }
}

export interface ChatRow {
  id: number
  projectId: number
  title: string
  modelId: number | null
  /** The model's name now (null when no model or it was deleted). */
  modelName: string | null
  adapter: unknown
  settings: unknown
  messageCount: number
  /** The last question. */
  preview: string
  createdAt: string
  updatedAt: string
}

interface ChatRaw {
  id: number
  project_id: number
  title: string
  model_id: number | null
  model_name: string | null
  adapter_json: string
  settings_json: string
  message_count: number
  preview: string | null
  created_at: string
  updated_at: string
}

export interface MessageRow {
  id: number
  chatId: number
  role: 'user' | 'assistant'
  content: string
  meta: unknown
  createdAt: string
}

interface MessageRaw {
  id: number
  chat_id: number
  role: 'user' | 'assistant'
  content: string
  meta_json: string
  created_at: string
}

const toChat = (r: ChatRaw): ChatRow => ({
  id: r.id,
  projectId: r.project_id,
  title: r.title,
  modelId: r.model_id,
  modelName: r.model_name,
  adapter: parseJson(r.adapter_json),
  settings: parseJson(r.settings_json),
  messageCount: r.message_count,
  preview: r.preview ?? '',
  createdAt: r.created_at,
  updatedAt: r.updated_at,
})

const toMessage = (r: MessageRaw): MessageRow => ({ id: r.id, chatId: r.chat_id, role: r.role, content: r.content, meta: parseJson(r.meta_json), createdAt: r.created_at })

export type ChatsRepo = ReturnType<typeof createChatsRepo>

export function createChatsRepo(db: Db) {
  const SELECT = `SELECT c.*, m.name AS model_name,
      (SELECT COUNT(*) FROM chat_messages x WHERE x.chat_id = c.id) AS message_count,
      (SELECT substr(x.content, 1, 200) FROM chat_messages x WHERE x.chat_id = c.id AND x.role = 'user' ORDER BY x.id DESC LIMIT 1) AS preview
    FROM chats c LEFT JOIN models m ON m.id = c.model_id`
  const list = db.prepare<[number], ChatRaw>(`${SELECT} WHERE c.project_id = ? ORDER BY c.updated_at DESC, c.id DESC`)
  const get = db.prepare<[number], ChatRaw>(`${SELECT} WHERE c.id = ?`)
  const insert = db.prepare(
    `INSERT INTO chats (project_id, title, model_id, adapter_json, settings_json, created_at, updated_at)
     VALUES (@projectId, @title, @modelId, @adapterJson, @settingsJson, @now, @now)`,
  )
  const update = db.prepare(
    `UPDATE chats SET title = COALESCE(@title, title),
       model_id = CASE WHEN @setModel THEN @modelId ELSE model_id END,
       adapter_json = COALESCE(@adapterJson, adapter_json), settings_json = COALESCE(@settingsJson, settings_json),
       updated_at = @now WHERE id = @id`,
  )
  const touch = db.prepare(`UPDATE chats SET updated_at = ? WHERE id = ?`)
  const del = db.prepare(`DELETE FROM chats WHERE id = ?`)

  const messages = db.prepare<[number], MessageRaw>(`SELECT * FROM chat_messages WHERE chat_id = ? ORDER BY id`)
  const message = db.prepare<[number], MessageRaw>(`SELECT * FROM chat_messages WHERE id = ?`)
  const insertMessage = db.prepare(
    `INSERT INTO chat_messages (chat_id, role, content, meta_json, created_at) VALUES (@chatId, @role, @content, @metaJson, @now)`,
  )
  const updateMessage = db.prepare(
    `UPDATE chat_messages SET content = COALESCE(@content, content), meta_json = COALESCE(@metaJson, meta_json) WHERE id = @id`,
  )
  const deleteFrom = db.prepare(`DELETE FROM chat_messages WHERE chat_id = ? AND id >= ?`)
  const generating = db.prepare<[], MessageRaw>(
    `SELECT * FROM chat_messages WHERE role = 'assistant' AND json_extract(meta_json, '$.generation.state') = 'generating'`,
  )

  return {
    list: (projectId: number): ChatRow[] => list.all(projectId).map(toChat),
    get: (id: number): ChatRow | undefined => {
      const r = get.get(id)
      return r ? toChat(r) : undefined
    },
    create: (c: { projectId: number; title: string; modelId: number | null; adapter: unknown; settings: unknown }): number =>
      Number(
        insert.run({ projectId: c.projectId, title: c.title, modelId: c.modelId, adapterJson: JSON.stringify(c.adapter ?? null), settingsJson: JSON.stringify(c.settings), now: nowIso() })
          .lastInsertRowid,
      ),
    /** Changes the given fields (modelId: null clears it; leave it undefined to keep it). */
    update: (id: number, patch: { title?: string; modelId?: number | null; adapter?: unknown; settings?: unknown }): void => {
      update.run({
        id,
        title: patch.title ?? null,
        setModel: patch.modelId !== undefined ? 1 : 0,
        modelId: patch.modelId ?? null,
        adapterJson: patch.adapter !== undefined ? JSON.stringify(patch.adapter) : null,
        settingsJson: patch.settings !== undefined ? JSON.stringify(patch.settings) : null,
        now: nowIso(),
      })
    },
    touch: (id: number): void => {
      touch.run(nowIso(), id)
    },
    delete: (id: number): void => {
      del.run(id)
    },

    messages: (chatId: number): MessageRow[] => messages.all(chatId).map(toMessage),
    message: (id: number): MessageRow | undefined => {
      const r = message.get(id)
      return r ? toMessage(r) : undefined
    },
    addMessage: (m: { chatId: number; role: 'user' | 'assistant'; content: string; meta: unknown }): number =>
      Number(insertMessage.run({ chatId: m.chatId, role: m.role, content: m.content, metaJson: JSON.stringify(m.meta ?? {}), now: nowIso() }).lastInsertRowid),
    updateMessage: (id: number, patch: { content?: string; meta?: unknown }): void => {
      updateMessage.run({ id, content: patch.content ?? null, metaJson: patch.meta !== undefined ? JSON.stringify(patch.meta) : null })
    },
    /** Deletes the chat's messages with id >= fromId (edit and resend, regenerate). Returns how many. */
    deleteMessagesFrom: (chatId: number, fromId: number): number => deleteFrom.run(chatId, fromId).changes,
    /** Answers still marked as being written (a previous process stopped mid-answer). */
    generatingMessages: (): MessageRow[] => generating.all().map(toMessage),
    transaction: <T>(fn: () => T): T => db.transaction(fn)(),
  }
}

export interface LearnCheckRow {
  id: number
  runId: number
  projectId: number
  runName: string
  checkpointId: number | null
  adapter: unknown
  adapterPath: string
  status: 'running' | 'completed' | 'cancelled' | 'failed' | 'interrupted'
  perSplit: number
  maxNewTokens: number
  total: number
  done: number
  error: unknown
  createdAt: string
  finishedAt: string | null
}

interface CheckRaw {
  id: number
  run_id: number
  project_id: number
  run_name: string
  checkpoint_id: number | null
  adapter_json: string
  adapter_path: string
  status: LearnCheckRow['status']
  per_split: number
  max_new_tokens: number
  total: number
  done: number
  error: string | null
  created_at: string
  finished_at: string | null
}

interface ItemRaw {
  id: number
  position: number
  split: 'train' | 'validation'
  row_id_json: string
  question: string
  reference: string
  base_answer: string
  tuned_answer: string
  base_score: number
  tuned_score: number
  base_char_f1: number
  tuned_char_f1: number
}

interface SummaryRaw {
  split: 'train' | 'validation'
  n: number
  base_score: number | null
  tuned_score: number | null
  base_f1: number | null
  tuned_f1: number | null
  base_exact: number
  tuned_exact: number
}

const toCheck = (r: CheckRaw): LearnCheckRow => ({
  id: r.id,
  runId: r.run_id,
  projectId: r.project_id,
  runName: r.run_name,
  checkpointId: r.checkpoint_id,
  adapter: parseJson(r.adapter_json),
  adapterPath: r.adapter_path,
  status: r.status,
  perSplit: r.per_split,
  maxNewTokens: r.max_new_tokens,
  total: r.total,
  done: r.done,
  error: parseJson(r.error),
  createdAt: r.created_at,
  finishedAt: r.finished_at,
})

const toItem = (r: ItemRaw): LearnCheckItem => ({
  id: r.id,
  position: r.position,
  split: r.split,
  rowId: parseJson(r.row_id_json) as number | string,
  question: r.question,
  reference: r.reference,
  baseAnswer: r.base_answer,
  tunedAnswer: r.tuned_answer,
  baseScore: r.base_score,
  tunedScore: r.tuned_score,
  baseCharF1: r.base_char_f1,
  tunedCharF1: r.tuned_char_f1,
})

export type NewLearnCheckItem = Omit<LearnCheckItem, 'id'> & { baseExact: boolean; tunedExact: boolean }

export type LearnChecksRepo = ReturnType<typeof createLearnChecksRepo>

export function createLearnChecksRepo(db: Db) {
  const SELECT = `SELECT k.*, r.project_id AS project_id, r.name AS run_name,
      (SELECT COUNT(*) FROM learn_check_items i WHERE i.check_id = k.id) AS done
    FROM learn_checks k JOIN runs r ON r.id = k.run_id`
  const get = db.prepare<[number], CheckRaw>(`${SELECT} WHERE k.id = ?`)
  const byRun = db.prepare<[number], CheckRaw>(`${SELECT} WHERE k.run_id = ? ORDER BY k.id DESC`)
  const byProject = db.prepare<[number], CheckRaw>(`${SELECT} WHERE r.project_id = ? ORDER BY k.id DESC`)
  const insert = db.prepare(
    `INSERT INTO learn_checks (run_id, checkpoint_id, adapter_json, adapter_path, status, per_split, max_new_tokens, total, created_at)
     VALUES (@runId, @checkpointId, @adapterJson, @adapterPath, 'running', @perSplit, @maxNewTokens, @total, @now)`,
  )
  const finish = db.prepare(`UPDATE learn_checks SET status = @status, error = @error, finished_at = @now WHERE id = @id`)
  const setTotal = db.prepare(`UPDATE learn_checks SET total = ? WHERE id = ?`)
  const running = db.prepare<[], { id: number }>(`SELECT id FROM learn_checks WHERE status = 'running'`)
  const del = db.prepare(`DELETE FROM learn_checks WHERE id = ?`)
  const insertItem = db.prepare(
    `INSERT INTO learn_check_items (check_id, position, split, row_id_json, question, reference, base_answer, tuned_answer,
       base_score, tuned_score, base_char_f1, tuned_char_f1, base_exact, tuned_exact)
     VALUES (@checkId, @position, @split, @rowIdJson, @question, @reference, @baseAnswer, @tunedAnswer,
       @baseScore, @tunedScore, @baseCharF1, @tunedCharF1, @baseExact, @tunedExact)`,
  )
  const items = db.prepare<[number], ItemRaw>(`SELECT * FROM learn_check_items WHERE check_id = ? ORDER BY position`)
  const item = db.prepare<[number], ItemRaw>(`SELECT * FROM learn_check_items WHERE id = ?`)
  const summary = db.prepare<[number], SummaryRaw>(
    `SELECT split, COUNT(*) AS n, AVG(base_score) AS base_score, AVG(tuned_score) AS tuned_score, AVG(base_char_f1) AS base_f1,
       AVG(tuned_char_f1) AS tuned_f1, SUM(base_exact) AS base_exact, SUM(tuned_exact) AS tuned_exact
     FROM learn_check_items WHERE check_id = ? GROUP BY split`,
  )

  const emptySplit = (): LearnCheckSplitSummary => ({ count: 0, baseScore: null, tunedScore: null, baseCharF1: null, tunedCharF1: null, baseExact: 0, tunedExact: 0 })

  return {
    get: (id: number): LearnCheckRow | undefined => {
      const r = get.get(id)
      return r ? toCheck(r) : undefined
    },
    listByRun: (runId: number): LearnCheckRow[] => byRun.all(runId).map(toCheck),
    listByProject: (projectId: number): LearnCheckRow[] => byProject.all(projectId).map(toCheck),
    create: (c: { runId: number; checkpointId: number | null; adapter: unknown; adapterPath: string; perSplit: number; maxNewTokens: number; total: number }): number =>
      Number(
        insert.run({ runId: c.runId, checkpointId: c.checkpointId, adapterJson: JSON.stringify(c.adapter), adapterPath: c.adapterPath, perSplit: c.perSplit, maxNewTokens: c.maxNewTokens, total: c.total, now: nowIso() })
          .lastInsertRowid,
      ),
    setTotal: (id: number, total: number): void => {
      setTotal.run(total, id)
    },
    finish: (id: number, status: Exclude<LearnCheckRow['status'], 'running'>, error: unknown = null): void => {
      finish.run({ id, status, error: error === null ? null : JSON.stringify(error), now: nowIso() })
    },
    /** Ids of checks still marked running (a previous process stopped mid-check). */
    runningIds: (): number[] => running.all().map((r) => r.id),
    delete: (id: number): void => {
      del.run(id)
    },
    addItem: (checkId: number, it: NewLearnCheckItem): LearnCheckItem => {
      const id = Number(
        insertItem.run({
          checkId,
          position: it.position,
          split: it.split,
          rowIdJson: JSON.stringify(it.rowId),
          question: it.question,
          reference: it.reference,
          baseAnswer: it.baseAnswer,
          tunedAnswer: it.tunedAnswer,
          baseScore: it.baseScore,
          tunedScore: it.tunedScore,
          baseCharF1: it.baseCharF1,
          tunedCharF1: it.tunedCharF1,
          baseExact: it.baseExact ? 1 : 0,
          tunedExact: it.tunedExact ? 1 : 0,
        }).lastInsertRowid,
      )
      return toItem(item.get(id)!)
    },
    items: (checkId: number): LearnCheckItem[] => items.all(checkId).map(toItem),
    /** Mean scores and exact answers per split (SQL aggregates over the answered questions). */
    summary: (checkId: number): { train: LearnCheckSplitSummary; validation: LearnCheckSplitSummary } => {
      const out = { train: emptySplit(), validation: emptySplit() }
      for (const r of summary.all(checkId)) {
        out[r.split] = {
          count: r.n,
          baseScore: r.base_score,
          tunedScore: r.tuned_score,
          baseCharF1: r.base_f1,
          tunedCharF1: r.tuned_f1,
          baseExact: r.base_exact,
          tunedExact: r.tuned_exact,
        }
      }
      return out
    },
  }
}
