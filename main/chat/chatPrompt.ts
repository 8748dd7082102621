// A conversation -> the prompt ids the engine continues, rendered exactly as training renders a row: the same chat
// format (tokenizer + template, ChatFormat), the same system message rule as the compiler's prepareRow (the system
// prompt first, left out when empty), message text trimmed, control-token strings typed by a user kept as plain
// text. The generation prompt (assistant header) is added, and generation stops at the format's stop ids: the
// template's end-of-turn token (the token training puts after every answer) plus the tokenizer's eos ids.
//
// Long conversations are fitted to the model's context: the oldest turns go first (never the system prompt and
// never the newest question), leaving room for the answer.
import { AppError } from '../errors'
import type { ChatFormat, ChatMessage } from '../tokenizer/ChatFormat'

export interface Turn {
  role: 'user' | 'assistant'
  content: string
}

export interface ChatPrompt {
  ids: number[]
  stopIds: number[]
  /** Earlier turns left out so that the prompt and the answer fit the context. */
  droppedTurns: number
}

/** The messages of a conversation as training builds them (main/datasets/compiler/rows.ts prepareRow). */
export function conversationMessages(systemPrompt: string, turns: readonly Turn[]): ChatMessage[] {
  const system: ChatMessage[] = systemPrompt.trim() ? [{ role: 'system', content: systemPrompt }] : []
  return [...system, ...turns.map((t) => ({ role: t.role, content: t.content }))]
}

/** Answer tokens always left room for, even when maxNewTokens is larger than what fits. */
const MIN_ANSWER_ROOM = 16

/**
 * The prompt for the next answer. `turns` ends with the user's question. `contextLength` is the model's
 * max_position_embeddings; `maxNewTokens` the answer budget (room is kept for min(maxNewTokens, a quarter of the
 * context), at least MIN_ANSWER_ROOM tokens).
 */
export function buildChatPrompt(format: ChatFormat, systemPrompt: string, turns: readonly Turn[], contextLength: number, maxNewTokens: number): ChatPrompt {
  if (turns.length === 0 || turns[turns.length - 1].role !== 'user') {
    throw new AppError('INVALID_ARGUMENT', 'A conversation to answer must end with a question.')
  }
  const room = Math.max(MIN_ANSWER_ROOM, Math.min(maxNewTokens, Math.floor(contextLength / 4)))
  const budget = contextLength - room
  let start = 0
  for (;;) {
    const kept = turns.slice(start)
    const ids = format.encode(conversationMessages(systemPrompt, kept), { addGenerationPrompt: true }).ids
    if (ids.length <= budget) return { ids, stopIds: [...format.stopIds], droppedTurns: start }
    // Drop the oldest question with its answer(s); the newest question always stays.
    if (start === turns.length - 1) {
      throw new AppError(
        'INVALID_ARGUMENT',
        `The question is too long for this model: with the system prompt it takes ${ids.length} tokens, and the model reads at most ${contextLength} (${room} kept for the answer). Shorten the question or the system prompt.`,
        { promptTokens: ids.length, contextLength },
      )
    }
    let next = start + 1
    while (turns[next].role !== 'user') next++
    start = next
  }
}
