// Plain-language text of a quality issue ("與第 12 列重複"), shared by the grid tooltip and the inspector.
import type { RowIssue } from '../../../preload/contract'

type Translate = (key: string, params?: Record<string, unknown>) => string

export function issueText(t: Translate, issue: RowIssue, rowNumbers: Map<number, number>): string {
  const row = issue.relatedId !== undefined ? (rowNumbers.get(issue.relatedId) ?? '?') : ''
  const field = issue.field ? t(`dataset.${issue.field}`) : ''
  return t(`dataset.issues.${issue.code}`, { row, detail: issue.detail ?? '', field })
}
