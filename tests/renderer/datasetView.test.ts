// Which rows the grid shows: search, category/problem/enabled filters and sort.
import { describe, expect, it } from 'vitest'
import type { QaPair, RowIssue } from '../../preload/contract'
import { categoryCounts, computeView, NO_FILTERS, type ViewFilters } from '../../renderer/src/composables/datasetView'

const row = (id: number, question: string, answer: string, category = '', enabled = true, position = id): QaPair => ({
  id,
  projectId: 1,
  question,
  answer,
  category,
  enabled,
  position,
  createdAt: '2026-01-01T00:00:00Z',
  updatedAt: `2026-01-0${id}T00:00:00Z`,
})
const rows = [row(1, '上班時間', '九點', '出勤'), row(2, 'Leave', 'Apply in the HR system', '請假'), row(3, '加班費', '', '薪資', false), row(4, '遠端工作', '每週兩天', '')]
const issues = new Map<number, RowIssue[]>([
  [3, [{ code: 'emptyAnswer', severity: 'error' }]],
  [4, [{ code: 'phone', severity: 'warning' }]],
])
const view = (f: Partial<ViewFilters>, sort = { key: 'position' as const, dir: 'asc' as const }) => computeView(rows, issues, { ...NO_FILTERS, ...f }, sort)

describe('dataset view', () => {
  it('searches question, answer and category, case-insensitively, all terms', () => {
    expect(view({ search: 'hr' })).toEqual([2])
    expect(view({ search: '出勤' })).toEqual([1])
    expect(view({ search: 'apply system' })).toEqual([2])
    expect(view({ search: 'apply 九點' })).toEqual([])
  })
  it('filters by category (and uncategorised), problems and enabled', () => {
    expect(view({ category: '請假' })).toEqual([2])
    expect(view({ category: '' })).toEqual([4])
    expect(view({ problems: 'any' })).toEqual([3, 4])
    expect(view({ problems: 'errors' })).toEqual([3])
    expect(view({ problems: 'phone' })).toEqual([4])
    expect(view({ enabled: 'disabled' })).toEqual([3])
    expect(view({ enabled: 'enabled', problems: 'any' })).toEqual([4])
  })
  it('sorts by a column or by problems, stable on position, both directions', () => {
    expect(view({}, { key: 'position', dir: 'desc' } as never)).toEqual([4, 3, 2, 1])
    expect(view({}, { key: 'problems', dir: 'desc' } as never)).toEqual([3, 4, 1, 2])
    expect(view({}, { key: 'enabled', dir: 'asc' } as never)).toEqual([3, 1, 2, 4])
    expect(view({}, { key: 'updatedAt', dir: 'desc' } as never)).toEqual([4, 3, 2, 1])
    expect(view({}, { key: 'category', dir: 'asc' } as never)[0]).toBe(4)
  })
  it('counts categories, uncategorised last', () => {
    const more = [...rows, row(5, 'x', 'y', '出勤')]
    const counts = categoryCounts(more)
    expect(counts[0]).toEqual({ name: '出勤', count: 2 })
    expect(counts.slice(1, 3).map((c) => c.name).sort()).toEqual(['薪資', '請假'].sort())
    expect(counts[3]).toEqual({ name: '', count: 1 })
  })
  it('filters 50,000 rows (a correctness check at size, not a timing test)', () => {
    const big = Array.from({ length: 50_000 }, (_, i) => row(i + 1, `問題 ${i}`, `回答 ${i % 7 === 0 ? '特休' : '一般'}`, i % 3 ? '出勤' : '請假'))
    const ids = computeView(big, new Map(), { ...NO_FILTERS, search: '特休', category: '請假' }, { key: 'position', dir: 'asc' })
    expect(ids.length).toBe(big.filter((r, i) => i % 7 === 0 && i % 3 === 0).length)
  })
})
