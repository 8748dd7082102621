// Models: the installed list, live download progress (push events), the Hub token status, presets and the
// compute devices the memory estimates are compared with. Formatting helpers for sizes, counts and durations.
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import type { ComputeDevice, DownloadProgress, HubPreset, HubTokenStatus, ModelEntry, ModelFolderReport, ModelTemplateChoice } from '../../../preload/contract'
import { api } from '../api'

/** 16.1 GB, 980 MB, 12 KB (decimal units, as disk sizes and ENGINE_FACTS use). */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n <= 0) return '0 B'
  const units = ['B', 'KB', 'MB', 'GB', 'TB']
  let i = 0
  let v = n
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000
    i++
  }
  return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`
}

/** 8.03B, 494M, 988K parameters. */
export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`
  if (n >= 1e6) return `${(n / 1e6).toFixed(n >= 1e8 ? 0 : 1)}M`
  if (n >= 1e3) return `${Math.round(n / 1e3)}K`
  return String(n)
}

/** 1:05:09, 4:07, 0:12. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds))
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const r = String(s % 60).padStart(2, '0')
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${r}` : `${m}:${r}`
}

export const useModelsStore = defineStore('models', () => {
  const models = ref<ModelEntry[]>([])
  const loaded = ref(false)
  const loadError = ref<string | null>(null)
  const selectedId = ref<number | null>(null)
  const progress = ref<Record<number, DownloadProgress>>({})
  const token = ref<HubTokenStatus | null>(null)
  const presets = ref<HubPreset[]>([])
  const devices = ref<ComputeDevice[]>([])
  const devicesNote = ref<string | null>(null)

  const selected = computed(() => models.value.find((m) => m.id === selectedId.value) ?? null)
  const gpus = computed(() => devices.value.filter((d) => d.backend === 'cuda'))
  /** Models of the user's own (not the demo). */
  const ownModels = computed(() => models.value.filter((m) => m.source !== 'demo'))

  /** Reloads the list. Calls while a reload is in flight share it, and it then reloads once more: the list it is
   *  fetching may predate what prompted them (a download that fails within milliseconds sent its `models:changed`
   *  while the first reload was under way, and the row stayed "downloading": an e2e test caught it). */
  let refreshing: Promise<void> | null = null
  let again = false
  function refresh(): Promise<void> {
    if (refreshing) {
      again = true
      return refreshing
    }
    refreshing = (async () => {
      try {
        do {
          again = false
          await load()
        } while (again)
      } finally {
        refreshing = null
      }
    })()
    return refreshing
  }

  async function load(): Promise<void> {
    try {
      models.value = await api['models:list']()
      loaded.value = true
      loadError.value = null
      if (selectedId.value !== null && !models.value.some((m) => m.id === selectedId.value)) selectedId.value = null
      if (selectedId.value === null) selectedId.value = ownModels.value[0]?.id ?? models.value[0]?.id ?? null
    } catch (err) {
      loadError.value = err instanceof Error ? err.message : String(err)
    }
  }

  async function loadExtras(): Promise<void> {
    const [p, t, d] = await Promise.all([api['hub:presets'](), api['hub:tokenStatus'](), api['models:devices']()])
    presets.value = p
    token.value = t
    devices.value = d.devices
    devicesNote.value = d.note
  }

  /** Live progress when a download is running, else the last stored one. */
  function progressOf(m: ModelEntry): DownloadProgress | null {
    return progress.value[m.id] ?? m.download
  }

  async function inspect(path: string): Promise<ModelFolderReport> {
    return api['models:inspectFolder']({ path })
  }
  async function importFolder(path: string, name?: string): Promise<ModelEntry> {
    const m = await api['models:import']({ path, name })
    await refresh()
    selectedId.value = m.id
    return m
  }
  async function pickFolder(): Promise<{ supported: boolean; path: string | null }> {
    return api['models:pickFolder']()
  }
  async function remove(id: number): Promise<{ removedFiles: boolean }> {
    const r = await api['models:delete']({ id })
    delete progress.value[id]
    await refresh()
    return r
  }
  async function setTemplate(id: number, template: ModelTemplateChoice): Promise<void> {
    await api['models:setTemplate']({ id, template })
    await refresh()
  }
  async function download(repoId: string): Promise<ModelEntry> {
    const m = await api['hub:download']({ repoId })
    await refresh()
    selectedId.value = m.id
    return m
  }
  async function pause(id: number): Promise<void> {
    await api['hub:pause']({ modelId: id })
    await refresh()
  }
  async function resume(id: number): Promise<void> {
    await api['hub:resume']({ modelId: id })
    await refresh()
  }
  async function cancel(id: number): Promise<void> {
    await api['hub:cancel']({ modelId: id })
    delete progress.value[id]
    await refresh()
  }
  async function saveToken(value: string): Promise<void> {
    token.value = await api['hub:setToken']({ token: value })
  }
  async function clearToken(): Promise<void> {
    token.value = await api['hub:clearToken']()
  }

  api.on('models:changed', () => void refresh())
  api.on('models:downloadProgress', (p) => {
    progress.value = { ...progress.value, [p.modelId]: p }
    if (p.state === 'done' || p.state === 'failed' || p.state === 'paused') void refresh()
  })

  return {
    models,
    loaded,
    loadError,
    selectedId,
    selected,
    ownModels,
    progress,
    token,
    presets,
    devices,
    devicesNote,
    gpus,
    refresh,
    loadExtras,
    progressOf,
    inspect,
    importFolder,
    pickFolder,
    remove,
    setTemplate,
    download,
    pause,
    resume,
    cancel,
    saveToken,
    clearToken,
  }
})
