// Runs of the open project: the history, the run that is open (its detail and its curves, kept live from
// training:progress), stop / resume / delete, comparisons, and the start-up offers to resume interrupted runs
// (all projects).
//
// Curves: the open run's RunSeries is loaded from runs:metrics and then extended by each progress event's points.
// Events that arrive while the metrics are being fetched are held and applied after them, so a page opened (or
// reloaded) in the middle of a run misses nothing. Series are markRaw: the charts read plain arrays and redraw on
// `revision`.
import { defineStore } from 'pinia'
import { computed, markRaw, ref, shallowRef, watch } from 'vue'
import type { Events, Run, RunComparison, RunDetail, TrainingProgress } from '../../../preload/contract'
import { api, ApiError } from '../api'
import { isActive } from '../composables/trainingText'
import { RunSeries } from '../composables/metricSeries'

/** Points per curve asked from runs:metrics (bucket means beyond that). */
export const METRIC_POINTS = 1500
const COMPARE_POINTS = 800
/** An open active run with no progress for this long is re-read from main (a missed event, a restarted server). */
export const STALE_MS = 12_000
const WATCH_MS = 4_000

export type LiveProgress = Omit<TrainingProgress, 'points' | 'evalPoints'>

export const useRunsStore = defineStore('runs', () => {
  const projectId = ref<number | null>(null)
  const runs = ref<Run[]>([])
  const loaded = ref(false)
  const loadError = ref<string | null>(null)
  const selectedId = ref<number | null>(null)
  const detail = ref<RunDetail | null>(null)
  /** The open run's curves (markRaw; `revision` below tells the charts to redraw). */
  const series = shallowRef<RunSeries | null>(null)
  const revision = ref(0)
  const seriesLoading = ref(false)
  /** The latest progress of each run seen in this session (without its points). */
  const live = ref<Record<number, LiveProgress>>({})
  /** Runs asked to stop that have not ended yet (the step in progress ends, then a checkpoint is written). */
  const stopping = ref<Record<number, boolean>>({})
  const actionError = ref<string | null>(null)
  /** Interrupted runs of any project that the start-up offers to resume. */
  const offers = ref<Run[]>([])
  const compareIds = ref<number[]>([])
  const comparison = shallowRef<RunComparison | null>(null)
  const compareSeries = shallowRef<RunSeries[]>([])
  const comparing = ref(false)

  /** main could not be reached when the open run was re-read (server gone or restarted). */
  const connectionLost = ref(false)
  const selected = computed<Run | null>(() => runs.value.find((r) => r.id === selectedId.value) ?? detail.value ?? null)
  const activeRun = computed(() => runs.value.find((r) => isActive(r.status)) ?? null)

  let pending: { runId: number; events: TrainingProgress[] } | null = null
  let listSeq = 0

  function upsert(run: Run): void {
    if (run.projectId !== projectId.value) return
    const i = runs.value.findIndex((r) => r.id === run.id)
    if (i >= 0) runs.value.splice(i, 1, run)
    else runs.value.unshift(run)
    if (detail.value?.id === run.id) detail.value = { ...detail.value, ...run }
    if (!isActive(run.status)) delete stopping.value[run.id]
  }

  /** Loads the project's runs; when nothing is open, opens `prefer` (a run of this project) or else the active one. */
  async function load(pid: number | null, prefer: number | null = null): Promise<void> {
    if (pid !== projectId.value) {
      projectId.value = pid
      runs.value = []
      loaded.value = false
      close()
      compareIds.value = []
      comparison.value = null
    }
    if (pid === null) return
    const seq = ++listSeq
    try {
      const list = await api['runs:list']({ projectId: pid })
      if (seq !== listSeq || pid !== projectId.value) return
      runs.value = list
      loaded.value = true
      loadError.value = null
      for (const r of list) if (!isActive(r.status)) delete stopping.value[r.id]
      compareIds.value = compareIds.value.filter((id) => list.some((r) => r.id === id))
      if (selectedId.value !== null && !list.some((r) => r.id === selectedId.value)) close()
      if (selectedId.value === null) {
        const wanted = list.find((r) => r.id === prefer) ?? list.find((r) => isActive(r.status))
        if (wanted) await open(wanted.id)
      } else if (detail.value) {
        const fresh = list.find((r) => r.id === selectedId.value)
        if (fresh) detail.value = { ...detail.value, ...fresh }
      }
    } catch (err) {
      if (seq === listSeq) loadError.value = message(err)
    }
  }

  /** Opens a run: its detail and its curves (re-fetched, then kept live). */
  async function open(id: number): Promise<void> {
    selectedId.value = id
    actionError.value = null
    const s = markRaw(new RunSeries(id))
    series.value = s
    pending = { runId: id, events: [] }
    seriesLoading.value = true
    try {
      const [d, m] = await Promise.all([api['runs:get']({ id }), api['runs:metrics']({ runId: id, maxPoints: METRIC_POINTS })])
      if (selectedId.value !== id) return
      detail.value = d
      upsert(d)
      s.load(m)
      for (const e of pending?.runId === id ? pending.events : []) s.append(e.points, e.evalPoints)
      revision.value++
    } catch (err) {
      if (selectedId.value === id) actionError.value = message(err)
    } finally {
      if (pending?.runId === id) pending = null
      if (selectedId.value === id) seriesLoading.value = false
    }
  }

  /** Back to the new-run form. */
  function close(): void {
    selectedId.value = null
    detail.value = null
    series.value = null
    pending = null
    seriesLoading.value = false
  }

  async function refreshDetail(): Promise<void> {
    const id = selectedId.value
    if (id === null) return
    try {
      const d = await api['runs:get']({ id })
      if (selectedId.value === id) detail.value = d
      upsert(d)
    } catch (err) {
      if (selectedId.value === id) actionError.value = message(err)
    }
  }

  /** A run just started (training store): listed and opened. */
  async function started(run: Run): Promise<void> {
    upsert(run)
    await open(run.id)
  }

  async function stop(id: number): Promise<void> {
    stopping.value = { ...stopping.value, [id]: true }
    actionError.value = null
    try {
      upsert(await api['training:stop']({ runId: id }))
    } catch (err) {
      delete stopping.value[id]
      actionError.value = message(err)
    }
  }

  async function resume(id: number): Promise<Run | null> {
    actionError.value = null
    try {
      const run = await api['runs:resume']({ id })
      offers.value = offers.value.filter((r) => r.id !== id)
      upsert(run)
      if (selectedId.value !== id) await open(id)
      else await refreshDetail()
      return run
    } catch (err) {
      actionError.value = message(err)
      return null
    }
  }

  async function remove(id: number): Promise<boolean> {
    actionError.value = null
    try {
      await api['runs:delete']({ id })
      runs.value = runs.value.filter((r) => r.id !== id)
      compareIds.value = compareIds.value.filter((x) => x !== id)
      offers.value = offers.value.filter((r) => r.id !== id)
      if (comparison.value?.runs.some((r) => r.id === id)) comparison.value = null
      if (selectedId.value === id) close()
      return true
    } catch (err) {
      actionError.value = message(err)
      return false
    }
  }

  function toggleCompare(id: number): void {
    compareIds.value = compareIds.value.includes(id) ? compareIds.value.filter((x) => x !== id) : [...compareIds.value, id]
  }

  async function compare(ids: number[] = compareIds.value): Promise<void> {
    if (ids.length < 2) return
    comparing.value = true
    actionError.value = null
    try {
      const c = await api['runs:compare']({ ids, maxPoints: COMPARE_POINTS })
      compareSeries.value = c.curves.map((m) => {
        const s = markRaw(new RunSeries(m.runId))
        s.load(m)
        return s
      })
      comparison.value = c
    } catch (err) {
      actionError.value = message(err)
    } finally {
      comparing.value = false
    }
  }

  function closeCompare(): void {
    comparison.value = null
    compareSeries.value = []
  }

  async function loadOffers(): Promise<void> {
    try {
      offers.value = (await api['runs:list']({})).filter((r) => r.summary.resumeOffered && r.resumable)
    } catch {
      offers.value = []
    }
  }

  async function dismissOffer(id: number): Promise<void> {
    offers.value = offers.value.filter((r) => r.id !== id)
    try {
      upsert(await api['runs:dismissResume']({ id }))
    } catch (err) {
      actionError.value = message(err)
    }
  }

  // ---- an active run that went quiet is re-read (missed events, an engine or server that died) ----

  let lastHeard = Date.now()
  let watchTimer: ReturnType<typeof setInterval> | null = null

  async function resync(): Promise<void> {
    const id = selectedId.value
    if (id === null) return
    try {
      const d = await api['runs:get']({ id })
      connectionLost.value = false
      if (selectedId.value !== id) return
      detail.value = d
      upsert(d)
      if (!isActive(d.status)) {
        await open(id)
        void loadOffers()
      }
    } catch (err) {
      if (err instanceof ApiError && (err.code === 'NETWORK' || err.code === 'FORBIDDEN')) connectionLost.value = true
    }
  }

  watch(
    () => selected.value !== null && isActive(selected.value.status),
    (on) => {
      if (watchTimer) clearInterval(watchTimer)
      watchTimer = null
      if (!on) return
      lastHeard = Date.now()
      watchTimer = setInterval(() => {
        if (Date.now() - lastHeard < STALE_MS) return
        lastHeard = Date.now()
        void resync()
      }, WATCH_MS)
    },
  )

  // ---- push events ----

  function onProgress(p: TrainingProgress): void {
    const { points, evalPoints, ...rest } = p
    if (p.runId === selectedId.value) {
      lastHeard = Date.now()
      connectionLost.value = false
    }
    live.value = { ...live.value, [p.runId]: rest }
    if (pending?.runId === p.runId) pending.events.push(p)
    else if (series.value?.runId === p.runId && series.value.append(points, evalPoints)) revision.value++
    const run = runs.value.find((r) => r.id === p.runId)
    if (run) {
      const changed: Run = {
        ...run,
        status: p.status,
        active: isActive(p.status),
        step: p.step,
        totalSteps: p.totalSteps || run.totalSteps,
        stepsPerEpoch: p.stepsPerEpoch || run.stepsPerEpoch,
        epoch: p.epoch,
        bestValLoss: p.bestValLoss ?? run.bestValLoss,
        lastTrainLoss: p.loss ?? run.lastTrainLoss,
      }
      upsert(changed)
    }
  }

  let refreshTimer: ReturnType<typeof setTimeout> | null = null
  function onChanged(e: Events['runs:changed']): void {
    if (e.reason === 'resumeOffer' || e.status === null) void loadOffers()
    if (e.status === null) {
      runs.value = runs.value.filter((r) => r.id !== e.runId)
      if (selectedId.value === e.runId) close()
      return
    }
    if (e.projectId !== projectId.value) return
    if (refreshTimer) clearTimeout(refreshTimer)
    refreshTimer = setTimeout(() => {
      refreshTimer = null
      void load(projectId.value).then(() => (selectedId.value !== null ? refreshDetail() : undefined))
    }, 150)
  }

  api.on('training:progress', onProgress)
  api.on('runs:changed', onChanged)

  return {
    projectId, runs, loaded, loadError, selectedId, detail, series, revision, seriesLoading, live, stopping, actionError, offers, compareIds, comparison,
    compareSeries, comparing, selected, activeRun, connectionLost,
    load, open, close, refreshDetail, started, stop, resume, remove, toggleCompare, compare, closeCompare, loadOffers, dismissOffer, onProgress, onChanged,
    resync,
  }
})

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
