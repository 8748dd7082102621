// Which column holds the question, the answer, the category and the enabled flag: recognised by header
// name (English and Chinese, Traditional and Simplified), else by position.
import type { ImportMapping } from '../../../preload/contract'

const ALIASES: Record<keyof ImportMapping, string[]> = {
  question: ['question', 'questions', 'q', 'prompt', 'query', 'instruction', 'input', 'user', '問題', '问题', '提問', '提问', '題目', '题目', '問', '问', '使用者', '用戶'],
  answer: ['answer', 'answers', 'a', 'response', 'output', 'completion', 'reply', 'assistant', '回答', '答案', '回覆', '回复', '答', '解答', '助理'],
  category: ['category', 'categories', 'tag', 'tags', 'topic', 'type', 'group', '分類', '分类', '類別', '类别', '標籤', '标签', '主題', '主题', '類型', '类型'],
  enabled: ['enabled', 'enable', 'active', 'use', 'include', '啟用', '启用', '使用', '是否啟用', '是否启用'],
}

function norm(s: string): string {
  return s.normalize('NFKC').trim().toLowerCase().replace(/[\s_\-:：]+/g, '')
}

const LOOKUP = new Map<string, keyof ImportMapping>()
for (const [field, names] of Object.entries(ALIASES) as [keyof ImportMapping, string[]][]) {
  for (const n of names) LOOKUP.set(norm(n), field)
}

/** The field a header cell names, if any. */
export function fieldOfHeader(cell: string): keyof ImportMapping | null {
  return LOOKUP.get(norm(cell)) ?? null
}

/** Mapping from header names; null fields when not found. */
export function mappingFromHeader(header: string[]): ImportMapping {
  const m: ImportMapping = { question: null, answer: null, category: null, enabled: null }
  header.forEach((cell, i) => {
    const f = fieldOfHeader(cell)
    if (f && m[f] === null) m[f] = i
  })
  return m
}

/** True when a first record looks like a header row: at least one cell names a field. */
export function looksLikeHeader(cells: string[]): boolean {
  const m = mappingFromHeader(cells)
  return m.question !== null || m.answer !== null
}

/** Columns in order: question, answer, category (the tutorial's CSV layout without a header). */
export function positionalMapping(width: number): ImportMapping {
  return {
    question: width > 0 ? 0 : null,
    answer: width > 1 ? 1 : null,
    category: width > 2 ? 2 : null,
    enabled: null,
  }
}

export function parseEnabled(value: string): boolean {
  const v = norm(value)
  if (v === '') return true
  return !['0', 'false', 'no', 'n', 'off', 'x', '否', '停用', '不啟用', '不启用', 'disabled'].includes(v)
}
