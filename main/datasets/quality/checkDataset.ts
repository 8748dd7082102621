// The dataset editor's quality report: per-row issues and a summary, for a whole project in one pass.
//
// Per-text results (empty, control tokens, Simplified characters, personal data, the normalised text and
// its MinHash signature) depend only on the text, so they are cached by text: after an edit only the
// changed rows are analysed again, and the report for 50,000 rows is then a few hundred milliseconds.
// Duplicates are found with hash maps (exact) and MinHash/LSH (near, see nearDuplicates.ts), never by
// comparing every pair. Disabled rows are "parked": they are not checked and not counted as problems.
import type { IssueCode, QaPair, QualityReport, RowIssue, TokenLimitStatus } from '../../../preload/contract'
import { findNearDuplicates, signature, type NearDupItem } from './nearDuplicates'
import { findSimplified } from './chinese'
import { findControlTokens, findEmails, findTaiwanIds, findTaiwanPhones, mask, normalizeForDuplicates } from './textChecks'

export const NEAR_DUPLICATE_THRESHOLD = 0.9

export const SEVERITY: Record<IssueCode, 'error' | 'warning'> = {
  emptyQuestion: 'error',
  emptyAnswer: 'error',
  duplicate: 'warning',
  sameQuestion: 'warning',
  nearDuplicate: 'warning',
  overTokenLimit: 'warning',
  controlToken: 'warning',
  simplifiedChinese: 'warning',
  nationalId: 'warning',
  phone: 'warning',
  email: 'warning',
}

interface TextAnalysis {
  issues: RowIssue[]
  /** Normalised question, and question + answer. */
  nq: string
  nqa: string
  signature: Int32Array
}

type Field = 'question' | 'answer' | 'category'

function issue(code: IssueCode, extra: Omit<RowIssue, 'code' | 'severity'> = {}): RowIssue {
  return { code, severity: SEVERITY[code], ...extra }
}

function analyseText(q: string, a: string, c: string, zhTW: boolean): TextAnalysis {
  const issues: RowIssue[] = []
  if (q.trim() === '') issues.push(issue('emptyQuestion', { field: 'question' }))
  if (a.trim() === '') issues.push(issue('emptyAnswer', { field: 'answer' }))
  const fields: [Field, string][] = [
    ['question', q],
    ['answer', a],
  ]
  for (const [field, text] of fields) {
    const tokens = findControlTokens(text)
    if (tokens.length) issues.push(issue('controlToken', { field, detail: tokens.slice(0, 3).join(' ') }))
  }
  if (zhTW) {
    for (const [field, text] of [...fields, ['category', c] as [Field, string]]) {
      const chars = findSimplified(text)
      if (chars.length) issues.push(issue('simplifiedChinese', { field, detail: chars.join('') }))
    }
  }
  for (const [field, text] of fields) {
    const ids = findTaiwanIds(text)
    if (ids.length) issues.push(issue('nationalId', { field, detail: ids.slice(0, 2).map((v) => mask(v, 'id')).join(', ') }))
    const phones = findTaiwanPhones(text)
    if (phones.length) issues.push(issue('phone', { field, detail: phones.slice(0, 2).map((v) => mask(v, 'phone')).join(', ') }))
    const emails = findEmails(text)
    if (emails.length) issues.push(issue('email', { field, detail: emails.slice(0, 2).map((v) => mask(v, 'email')).join(', ') }))
  }
  const nq = normalizeForDuplicates(q)
  const nqa = `${nq}\u0001${normalizeForDuplicates(a)}`
  return { issues, nq, nqa, signature: signature(nqa) }
}

/** What the checks read of a row. */
export type CheckRow = Pick<QaPair, 'id' | 'question' | 'answer' | 'category' | 'enabled'>

/** Token counts of rows against the project's model, provided by the training-set compiler (optional stage). */
export interface TokenStage {
  status: TokenLimitStatus
  /** Row id -> token count, for rows over the limit. */
  over: Map<number, number>
}

export class QualityChecker {
  private cache = new Map<string, TextAnalysis>()

  /** Runs every check over the rows of one project (rows in display order). */
  check(projectId: number, rows: CheckRow[], language: string, tokens: TokenStage): QualityReport {
    const t0 = performance.now()
    const zhTW = language === 'zh-TW'
    if (this.cache.size > 400_000) this.cache.clear()
    const enabled = rows.filter((r) => r.enabled)
    const analyses = enabled.map((r) => {
      const key = `${zhTW ? 1 : 0}\u0002${r.question}\u0002${r.answer}\u0002${r.category}`
      let an = this.cache.get(key)
      if (!an) {
        an = analyseText(r.question, r.answer, r.category, zhTW)
        this.cache.set(key, an)
      }
      return an
    })

    const extra = new Map<number, RowIssue[]>()
    const add = (id: number, i: RowIssue) => {
      const list = extra.get(id)
      if (list) list.push(i)
      else extra.set(id, [i])
    }

    // Exact duplicates (normalised question + answer) and one question with different answers.
    const byQa = new Map<string, number[]>()
    const byQ = new Map<string, number[]>()
    enabled.forEach((r, i) => {
      const an = analyses[i]!
      if (an.nq === '' && an.nqa === '\u0001') return
      const qa = byQa.get(an.nqa)
      if (qa) qa.push(i)
      else byQa.set(an.nqa, [i])
      if (an.nq === '') return
      const q = byQ.get(an.nq)
      if (q) q.push(i)
      else byQ.set(an.nq, [i])
    })
    for (const members of byQa.values()) {
      if (members.length < 2) continue
      members.forEach((i, k) => {
        add(enabled[i]!.id, issue('duplicate', { relatedId: enabled[members[k === 0 ? 1 : 0]!]!.id }))
      })
    }
    for (const members of byQ.values()) {
      if (members.length < 2) continue
      const distinct = new Set(members.map((i) => analyses[i]!.nqa))
      if (distinct.size < 2) continue
      for (const i of members) {
        const other = members.find((j) => analyses[j]!.nqa !== analyses[i]!.nqa)!
        add(enabled[i]!.id, issue('sameQuestion', { relatedId: enabled[other]!.id }))
      }
    }

    // Near duplicates among the rows that are not exact duplicates of another (one representative each).
    const items: NearDupItem[] = []
    const seenQa = new Set<string>()
    enabled.forEach((r, i) => {
      const an = analyses[i]!
      if (seenQa.has(an.nqa)) return
      seenQa.add(an.nqa)
      items.push({ id: r.id, text: an.nqa, signature: an.signature })
    })
    for (const [id, related] of findNearDuplicates(items, NEAR_DUPLICATE_THRESHOLD)) add(id, issue('nearDuplicate', { relatedId: related }))

    for (const [id, count] of tokens.over) {
      if (tokens.status.state === 'checked') add(id, issue('overTokenLimit', { detail: `${count} / ${tokens.status.limit}` }))
    }

    const out: QualityReport['rows'] = []
    const byCode: Partial<Record<IssueCode, number>> = {}
    let errorRows = 0
    let warningRows = 0
    enabled.forEach((r, i) => {
      const own = analyses[i]!.issues
      const more = extra.get(r.id)
      if (own.length === 0 && !more) return
      const issues = more ? [...own, ...more] : own
      out.push({ id: r.id, issues })
      const codes = new Set(issues.map((x) => x.code))
      for (const c of codes) byCode[c] = (byCode[c] ?? 0) + 1
      if (issues.some((x) => x.severity === 'error')) errorRows++
      else warningRows++
    })
    return {
      projectId,
      checkedRows: enabled.length,
      disabledRows: rows.length - enabled.length,
      rowsWithProblems: out.length,
      errorRows,
      warningRows,
      byCode,
      tokenLimit: tokens.status,
      rows: out,
      durationMs: Math.round(performance.now() - t0),
    }
  }
}
