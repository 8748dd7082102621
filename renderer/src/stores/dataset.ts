// The dataset editor's state: the open project's rows (held in memory, not deeply reactive, so 50,000 rows
// cost little), the visible view (search, filters, sort), the quality report, the undo history and the
// save state.
//
// Edits are optimistic: the grid shows the new value at once, the change is queued to main (one request at
// a time, in order, so the undo journal sees what the user did in the order they did it), and a failure
// rolls the cell back and says why. Structural changes (add, delete, undo, redo) apply main's answer.
import { defineStore } from 'pinia'
import { computed, reactive, ref, shallowRef } from 'vue'
import type { EditHistory, EditLabel, QaFields, QaPair, QualityReport, RowIssue, RowsMutation } from '../../../preload/contract'
import { api } from '../api'
import { computeView, isFiltered, NO_FILTERS, type ViewFilters, type ViewSort } from '../composables/datasetView'

export type SaveState = 'idle' | 'saving' | 'saved' | 'error'
export type Field = keyof QaFields
export type RowChange = { id: number } & Partial<QaFields>

const NO_HISTORY: EditHistory = { canUndo: false, canRedo: false, undoLabel: null, redoLabel: null }
const CHECK_DELAY_MS = 700

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

export const useDatasetStore = defineStore('dataset', () => {
  const projectId = ref<number | null>(null)
  const loading = ref(false)
  const loaded = ref(false)
  const loadError = ref<string | null>(null)

  // Rows by id, and in position order. Plain (non-reactive) data; `version` tells Vue something changed.
  let rows = new Map<number, QaPair>()
  let ordered: QaPair[] = []
  let orderDirty = false
  const version = ref(0)
  const rowCount = ref(0)
  const viewIds = shallowRef<number[]>([])
  /** 1-based row number of each id in position order (what "#" shows and issues refer to). */
  const rowNumbers = shallowRef<Map<number, number>>(new Map())

  const filters = reactive<ViewFilters>({ ...NO_FILTERS })
  const sort = ref<ViewSort>({ key: 'position', dir: 'asc' })

  const quality = shallowRef<QualityReport | null>(null)
  const issues = shallowRef<Map<number, RowIssue[]>>(new Map())
  const checking = ref(false)
  const checkError = ref<string | null>(null)

  const history = ref<EditHistory>({ ...NO_HISTORY })
  const pending = ref(0)
  const saveState = ref<SaveState>('idle')
  const saveError = ref<string | null>(null)
  /** Rows the grid should reveal (after undo/redo/add); `seq` changes on every request. */
  const reveal = ref<{ ids: number[]; seq: number } | null>(null)

  const filtered = computed(() => isFiltered(filters) || sort.value.key !== 'position')

  // ------------------------------------------------------------------------------------------
  // rows in memory

  function bump(): void {
    version.value++
    rowCount.value = rows.size
  }

  function orderedRows(): QaPair[] {
    if (orderDirty) {
      ordered = [...rows.values()].sort((a, b) => a.position - b.position || a.id - b.id)
      const numbers = new Map<number, number>()
      ordered.forEach((r, i) => numbers.set(r.id, i + 1))
      rowNumbers.value = numbers
      orderDirty = false
    }
    return ordered
  }

  /** A row by id (reading it makes the caller re-render when rows change). */
  function getRow(id: number): QaPair | undefined {
    void version.value
    return rows.get(id)
  }

  function allRows(): QaPair[] {
    void version.value
    return orderedRows()
  }

  function refreshView(): void {
    viewIds.value = computeView(orderedRows(), issues.value, filters, sort.value)
  }

  function applyMutation(m: RowsMutation, opts: { structural?: boolean } = {}): void {
    let structural = opts.structural ?? false
    for (const r of m.upserted) {
      if (!rows.has(r.id)) structural = true
      else if (rows.get(r.id)!.position !== r.position) structural = true
      rows.set(r.id, r)
    }
    for (const id of m.deletedIds) {
      if (rows.delete(id)) structural = true
    }
    history.value = m.history
    if (structural) {
      orderDirty = true
      orderedRows()
    }
    bump()
  }

  // ------------------------------------------------------------------------------------------
  // the request queue

  let chain: Promise<unknown> = Promise.resolve()

  function enqueue<T>(fn: () => Promise<T>): Promise<T> {
    pending.value++
    saveState.value = 'saving'
    const run = chain.then(fn)
    chain = run.catch(() => undefined)
    return run.then(
      (v) => {
        pending.value--
        if (pending.value === 0) {
          saveState.value = 'saved'
          saveError.value = null
        }
        return v
      },
      (err: unknown) => {
        pending.value--
        saveState.value = 'error'
        saveError.value = errorMessage(err)
        throw err
      },
    )
  }

  /** Resolves when every queued change has been answered. */
  function flush(): Promise<void> {
    return chain.then(() => undefined)
  }

  // ------------------------------------------------------------------------------------------
  // loading

  async function load(pid: number | null): Promise<void> {
    projectId.value = pid
    rows = new Map()
    ordered = []
    orderDirty = true
    viewIds.value = []
    quality.value = null
    issues.value = new Map()
    history.value = { ...NO_HISTORY }
    saveState.value = 'idle'
    saveError.value = null
    loaded.value = false
    loadError.value = null
    bump()
    if (pid === null) return
    loading.value = true
    try {
      if (!(await fetchRows(pid))) return
      loaded.value = true
      scheduleCheck(0)
    } catch (err) {
      loadError.value = errorMessage(err)
    } finally {
      loading.value = false
    }
  }

  /** Reloads the rows from main (after an import), keeping filters and sort. */
  async function reload(): Promise<void> {
    const pid = projectId.value
    if (pid === null) return
    if (await fetchRows(pid)) scheduleCheck(0, true)
  }

  /** Waits for queued changes to be answered, then reads the project's rows and edit history from main; false when
   *  another project was opened meanwhile (nothing is changed then). */
  async function fetchRows(pid: number): Promise<boolean> {
    await flush()
    const [list, hist] = await Promise.all([api['rows:list']({ projectId: pid }), api['rows:history']({ projectId: pid })])
    if (projectId.value !== pid) return false
    rows = new Map(list.map((r) => [r.id, r]))
    orderDirty = true
    history.value = hist
    bump()
    refreshView()
    return true
  }

  // ------------------------------------------------------------------------------------------
  // quality report

  let checkTimer: ReturnType<typeof setTimeout> | null = null
  let checkSeq = 0

  function scheduleCheck(delay = CHECK_DELAY_MS, refreshViewAfter = false): void {
    if (checkTimer) clearTimeout(checkTimer)
    checkTimer = setTimeout(() => void runCheck(refreshViewAfter), delay)
  }

  async function runCheck(refreshViewAfter: boolean): Promise<void> {
    const pid = projectId.value
    if (pid === null) return
    const seq = ++checkSeq
    checking.value = true
    try {
      await flush()
      const report = await api['dataset:check']({ projectId: pid })
      if (seq !== checkSeq || projectId.value !== pid) return
      quality.value = report
      issues.value = new Map(report.rows.map((r) => [r.id, r.issues]))
      checkError.value = null
      // A problems filter is re-applied only when rows came or went, so a row being fixed does not vanish
      // under the cursor (it shows as fixed instead).
      if (refreshViewAfter || (filters.problems !== 'all' && viewIds.value.length === 0)) refreshView()
    } catch (err) {
      checkError.value = errorMessage(err)
    } finally {
      if (seq === checkSeq) checking.value = false
    }
  }

  // ------------------------------------------------------------------------------------------
  // editing

  /** Optimistic field changes (one undoable step; saves with the same mergeKey merge into one). */
  function saveFields(changes: RowChange[], opts: { label?: 'edit' | 'paste' | 'clear' | 'toggle'; mergeKey?: string } = {}): Promise<void> {
    const pid = projectId.value
    if (pid === null || changes.length === 0) return Promise.resolve()
    const previous: RowChange[] = []
    const sent: RowChange[] = []
    for (const change of changes) {
      const row = rows.get(change.id)
      if (!row) continue
      const before: RowChange = { id: row.id }
      const next: RowChange = { id: row.id }
      for (const f of ['question', 'answer', 'category', 'enabled'] as const) {
        if (change[f] === undefined || change[f] === row[f]) continue
        ;(before as Record<string, unknown>)[f] = row[f]
        ;(next as Record<string, unknown>)[f] = change[f]
      }
      if (Object.keys(next).length === 1) continue
      rows.set(row.id, { ...row, ...next })
      previous.push(before)
      sent.push(next)
    }
    if (sent.length === 0) return Promise.resolve()
    bump()
    return enqueue(async () => {
      try {
        const m = await api['rows:update']({ projectId: pid, changes: sent, label: opts.label, mergeKey: opts.mergeKey })
        if (projectId.value !== pid) return
        for (const r of m.upserted) {
          const local = rows.get(r.id)
          if (local) rows.set(r.id, { ...local, updatedAt: r.updatedAt })
        }
        history.value = m.history
        bump()
        scheduleCheck()
      } catch (err) {
        if (projectId.value !== pid) throw err
        // Roll back the fields this request set, unless a later edit changed them again.
        for (let i = 0; i < sent.length; i++) {
          const row = rows.get(sent[i]!.id)
          if (!row) continue
          const restore: Partial<QaPair> = {}
          for (const [f, v] of Object.entries(sent[i]!)) {
            if (f === 'id') continue
            if (row[f as Field] === v) (restore as Record<string, unknown>)[f] = previous[i]![f as Field]
          }
          rows.set(row.id, { ...row, ...restore })
        }
        bump()
        throw err
      }
    })
  }

  /** Pastes a block: changes to existing rows plus new rows after `afterId`, as one undoable step. */
  function paste(changes: RowChange[], newRows: Partial<QaFields>[], afterId: number | null): Promise<QaPair[]> {
    const pid = projectId.value
    if (pid === null) return Promise.resolve([])
    if (newRows.length === 0) return saveFields(changes, { label: 'paste' }).then(() => [])
    return enqueue(async () => {
      const m = await api['rows:update']({ projectId: pid, changes, label: 'paste', append: { rows: newRows, afterId } })
      if (projectId.value !== pid) return []
      const added = m.upserted.filter((r) => !rows.has(r.id))
      applyMutation(m)
      insertIntoView(added.map((r) => r.id), afterId)
      scheduleCheck()
      return added
    })
  }

  function insertIntoView(ids: number[], afterId: number | null): void {
    if (ids.length === 0) return
    const view = viewIds.value.slice()
    const at = afterId === null ? -1 : view.indexOf(afterId)
    if (at >= 0) view.splice(at + 1, 0, ...ids)
    else view.push(...ids)
    viewIds.value = view
  }

  /** Adds rows after `afterId` (null: at the end); they appear in the view right there, whatever the filter. */
  function insertRows(newRows: Partial<QaFields>[], afterId: number | null, label: 'insert' | 'paste' = 'insert'): Promise<QaPair[]> {
    const pid = projectId.value
    if (pid === null) return Promise.resolve([])
    return enqueue(async () => {
      const m = await api['rows:insert']({ projectId: pid, rows: newRows, afterId, label })
      if (projectId.value !== pid) return []
      applyMutation(m, { structural: true })
      insertIntoView(m.upserted.map((r) => r.id), afterId)
      reveal.value = { ids: m.upserted.map((r) => r.id), seq: (reveal.value?.seq ?? 0) + 1 }
      scheduleCheck()
      return m.upserted
    })
  }

  function deleteRows(ids: number[]): Promise<void> {
    const pid = projectId.value
    if (pid === null || ids.length === 0) return Promise.resolve()
    return enqueue(async () => {
      const m = await api['rows:delete']({ projectId: pid, ids })
      if (projectId.value !== pid) return
      applyMutation(m, { structural: true })
      const gone = new Set(m.deletedIds)
      viewIds.value = viewIds.value.filter((id) => !gone.has(id))
      scheduleCheck()
    })
  }

  async function step(kind: 'undo' | 'redo'): Promise<EditLabel | null> {
    const pid = projectId.value
    if (pid === null) return null
    return enqueue(async () => {
      const m = await api[kind === 'undo' ? 'rows:undo' : 'rows:redo']({ projectId: pid })
      if (projectId.value !== pid) return null
      const before = rows.size
      const structural = m.deletedIds.length > 0 || m.upserted.some((r) => !rows.has(r.id))
      applyMutation(m)
      if (structural || rows.size !== before) {
        // Rows came back or went away: rebuild the view (filters and sort still apply).
        refreshView()
        // Rows that came back are shown even if the filter would hide them.
        const shown = new Set(viewIds.value)
        const missing = m.upserted.filter((r) => !shown.has(r.id)).map((r) => r.id)
        if (missing.length) insertIntoView(missing, null)
      }
      if (m.upserted.length) reveal.value = { ids: m.upserted.map((r) => r.id), seq: (reveal.value?.seq ?? 0) + 1 }
      scheduleCheck(CHECK_DELAY_MS, structural)
      return m.label
    })
  }

  const undo = () => step('undo')
  const redo = () => step('redo')

  function convertChinese(ids?: number[]): Promise<number> {
    const pid = projectId.value
    if (pid === null) return Promise.resolve(0)
    return enqueue(async () => {
      const m = await api['rows:convertChinese']({ projectId: pid, ids })
      if (projectId.value !== pid) return 0
      applyMutation(m)
      scheduleCheck(0)
      return m.upserted.length
    })
  }

  // ------------------------------------------------------------------------------------------
  // view

  function setFilters(patch: Partial<ViewFilters>): void {
    Object.assign(filters, patch)
    refreshView()
  }

  function clearFilters(): void {
    Object.assign(filters, NO_FILTERS)
    sort.value = { key: 'position', dir: 'asc' }
    refreshView()
  }

  function setSort(next: ViewSort): void {
    sort.value = next
    refreshView()
  }

  return {
    projectId,
    loading,
    loaded,
    loadError,
    version,
    rowCount,
    viewIds,
    rowNumbers,
    filters,
    sort,
    filtered,
    quality,
    issues,
    checking,
    checkError,
    history,
    pending,
    saveState,
    saveError,
    reveal,
    getRow,
    allRows,
    load,
    reload,
    refreshView,
    scheduleCheck,
    saveFields,
    paste,
    insertRows,
    deleteRows,
    undo,
    redo,
    convertChinese,
    setFilters,
    clearFilters,
    setSort,
    flush,
  }
})
