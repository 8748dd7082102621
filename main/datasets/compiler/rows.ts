// Dataset rows → chat messages, or a reason the row cannot be trained on. Never throws on bad row data.
import type { ChatMessage } from '../../tokenizer/ChatFormat'

export type RowId = number | string

/** A question/answer row as the dataset editor keeps it. `enabled` false/0 rows are left out. */
export interface QaRow {
  id: RowId
  question: unknown
  answer: unknown
  enabled?: boolean | number
}

/** A multi-turn conversation (system/user/assistant messages). */
export interface ConversationRow {
  id: RowId
  messages: unknown
  enabled?: boolean | number
}

export type DatasetRow = QaRow | ConversationRow

/** Why a row is not in the training set. Stable codes: the UI translates them (zh-TW, en). */
export type RowProblemCode =
  | 'disabled' // the row is switched off in the editor
  | 'invalidRow' // not an object, or no usable id
  | 'duplicateId' // another row already has this id
  | 'notText' // question or answer is not a string
  | 'emptyQuestion'
  | 'emptyAnswer'
  | 'tooLarge' // a text is longer than maxFieldChars characters (not tokenized)
  | 'invalidConversation' // messages missing, unknown role, empty message, no answer
  | 'templateError' // the chat template rejected the conversation
  | 'tooLong' // more tokens than maxLength (truncation "skip")
  | 'promptTooLong' // the prompt alone fills maxLength: nothing of the answer would remain

export interface RowProblem {
  /** The row's id, or null when it has none. */
  rowId: RowId | null
  /** Position of the row in the input array. */
  index: number
  reason: RowProblemCode
  /** Plain English detail for logs (the UI shows its own text for `reason`). */
  detail: string
}

export type PreparedRow = { ok: true; id: RowId; messages: ChatMessage[] } | { ok: false; id: RowId | null; reason: RowProblemCode; detail: string }

const ROLES = new Set(['system', 'user', 'assistant'])

function describe(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'a list'
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`
}

export function validRowId(id: unknown): id is RowId {
  return (typeof id === 'number' && Number.isFinite(id)) || (typeof id === 'string' && id.length > 0)
}

/**
 * Turns a row into the conversation that is trained on: [system?, user, assistant] for Q&A rows (the system prompt
 * is left out when empty), the row's own messages for conversations (the system prompt is put first when the
 * conversation has no system message).
 */
export function prepareRow(row: unknown, systemPrompt: string, maxFieldChars: number): PreparedRow {
  if (typeof row !== 'object' || row === null || Array.isArray(row)) {
    return { ok: false, id: null, reason: 'invalidRow', detail: `the row is ${describe(row)}, not an object` }
  }
  const r = row as Record<string, unknown>
  if (!validRowId(r.id)) return { ok: false, id: null, reason: 'invalidRow', detail: `the row has no usable id (${describe(r.id)})` }
  const id = r.id
  if (r.enabled === false || r.enabled === 0) return { ok: false, id, reason: 'disabled', detail: 'the row is disabled' }
  const system: ChatMessage[] = systemPrompt.trim() ? [{ role: 'system', content: systemPrompt }] : []

  if ('messages' in r) {
    const msgs = r.messages
    if (!Array.isArray(msgs) || msgs.length === 0) return { ok: false, id, reason: 'invalidConversation', detail: 'the conversation has no messages' }
    const out: ChatMessage[] = []
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i] as Record<string, unknown> | null
      if (typeof m !== 'object' || m === null || typeof m.role !== 'string' || !ROLES.has(m.role)) {
        return { ok: false, id, reason: 'invalidConversation', detail: `message ${i + 1} has no role system/user/assistant` }
      }
      if (typeof m.content !== 'string') return { ok: false, id, reason: 'notText', detail: `message ${i + 1} (${m.role}) is ${describe(m.content)}, not text` }
      if (m.content.length > maxFieldChars) {
        return { ok: false, id, reason: 'tooLarge', detail: `message ${i + 1} (${m.role}) has ${m.content.length} characters; the limit is ${maxFieldChars}` }
      }
      if (!m.content.trim()) return { ok: false, id, reason: 'invalidConversation', detail: `message ${i + 1} (${m.role}) is empty` }
      out.push({ role: m.role, content: m.content })
    }
    if (!out.some((m) => m.role === 'assistant')) return { ok: false, id, reason: 'invalidConversation', detail: 'the conversation has no assistant answer' }
    return { ok: true, id, messages: out[0].role === 'system' ? out : [...system, ...out] }
  }

  const { question, answer } = r
  if (typeof question !== 'string') return { ok: false, id, reason: 'notText', detail: `the question is ${describe(question)}, not text` }
  if (typeof answer !== 'string') return { ok: false, id, reason: 'notText', detail: `the answer is ${describe(answer)}, not text` }
  if (question.length > maxFieldChars) return { ok: false, id, reason: 'tooLarge', detail: `the question has ${question.length} characters; the limit is ${maxFieldChars}` }
  if (answer.length > maxFieldChars) return { ok: false, id, reason: 'tooLarge', detail: `the answer has ${answer.length} characters; the limit is ${maxFieldChars}` }
  if (!question.trim()) return { ok: false, id, reason: 'emptyQuestion', detail: 'the question is empty' }
  if (!answer.trim()) return { ok: false, id, reason: 'emptyAnswer', detail: 'the answer is empty' }
  return { ok: true, id, messages: [...system, { role: 'user', content: question }, { role: 'assistant', content: answer }] }
}
