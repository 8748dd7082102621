// Exports: the estimate of what the dialog would write (sizes, free space, template, stop tokens), the jobs of this
// session with live progress (export:progress push events), start and cancel.
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import type { AppErrorInfo, ExportEstimate, ExportJob, ExportRequest } from '../../../preload/contract'
import { api, ApiError } from '../api'

export function toErrorInfo(err: unknown): AppErrorInfo {
  if (err instanceof ApiError) return { code: err.code, message: err.message, details: err.details }
  return { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) }
}

export const useExportStore = defineStore('export', () => {
  const jobs = ref<Record<string, ExportJob>>({})
  const estimate = ref<ExportEstimate | null>(null)
  const estimating = ref(false)
  const estimateError = ref<AppErrorInfo | null>(null)
  let estimateSeq = 0
  let unsubscribe: (() => void) | null = null

  /** Newest first. */
  const jobList = computed(() => Object.values(jobs.value).sort((a, b) => (a.startedAt < b.startedAt ? 1 : -1)))

  function listen(): void {
    if (unsubscribe) return
    unsubscribe = api.on('export:progress', (job) => {
      jobs.value = { ...jobs.value, [job.id]: job }
    })
  }

  async function loadJobs(projectId?: number): Promise<void> {
    listen()
    for (const j of await api['export:jobs']({ projectId })) jobs.value = { ...jobs.value, [j.id]: j }
  }

  /** Re-estimates for a request; an older answer arriving late is dropped. */
  async function refreshEstimate(req: ExportRequest): Promise<void> {
    const seq = ++estimateSeq
    estimating.value = true
    try {
      const e = await api['export:estimate'](req)
      if (seq !== estimateSeq) return
      estimate.value = e
      estimateError.value = null
    } catch (err) {
      if (seq !== estimateSeq) return
      estimate.value = null
      estimateError.value = toErrorInfo(err)
    } finally {
      if (seq === estimateSeq) estimating.value = false
    }
  }

  function clearEstimate(): void {
    estimateSeq++
    estimate.value = null
    estimateError.value = null
    estimating.value = false
  }

  async function start(req: ExportRequest): Promise<ExportJob> {
    listen()
    const job = await api['export:start'](req)
    // A progress event may have arrived first: keep the newer state.
    if (!jobs.value[job.id]) jobs.value = { ...jobs.value, [job.id]: job }
    return job
  }

  async function cancel(jobId: string): Promise<ExportJob> {
    const job = await api['export:cancel']({ jobId })
    jobs.value = { ...jobs.value, [job.id]: job }
    return job
  }

  return { jobs, jobList, estimate, estimating, estimateError, listen, loadJobs, refreshEstimate, clearEstimate, start, cancel }
})
