// The new-run form of the open project: presets and the advanced panel's field list (training:presets), the chosen
// preset with the user's changes on top, the estimate main computes for them (refreshed, debounced, as they
// change), and the one start button. A refused start keeps main's problems so the page lists them next to the
// fields they concern. Also the engine's status (device, who holds it), kept live from engine:status.
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import type {
  EngineStatus, PresetId, Run, SettingKey, SettingProblem, TrainingEstimate, TrainingPreset, TrainingPresets, TrainingSettings,
} from '../../../preload/contract'
import { api, ApiError } from '../api'
import { settingsChanges } from '../composables/trainingText'

/** Debounce of the estimate while settings are being edited. */
export const ESTIMATE_DELAY_MS = 300

export const useTrainingStore = defineStore('training', () => {
  const presets = ref<TrainingPresets | null>(null)
  const presetsError = ref<string | null>(null)
  const projectId = ref<number | null>(null)
  const presetId = ref<PresetId>('demo')
  /** The user picked the preset (the suggested one no longer replaces it). */
  const presetChosen = ref(false)
  const changes = ref<Partial<TrainingSettings>>({})
  const estimate = ref<TrainingEstimate | null>(null)
  const estimating = ref(false)
  const estimateError = ref<string | null>(null)
  /** Problems of a refused start (until the settings change). */
  const startProblems = ref<SettingProblem[] | null>(null)
  const startError = ref<string | null>(null)
  const starting = ref(false)
  const engine = ref<EngineStatus | null>(null)

  const preset = computed<TrainingPreset | null>(() => presets.value?.presets.find((p) => p.id === presetId.value) ?? null)
  const settings = computed<TrainingSettings | null>(() => (preset.value ? { ...preset.value.settings, ...changes.value } : null))
  const changedKeys = computed(() => Object.keys(changes.value) as SettingKey[])
  /** What to show: a refused start's problems, else the estimate's. */
  const problems = computed<SettingProblem[]>(() => startProblems.value ?? estimate.value?.problems ?? [])
  const errors = computed(() => problems.value.filter((p) => p.severity === 'error'))
  const fieldProblems = computed(() => {
    const out: Partial<Record<SettingKey, SettingProblem[]>> = {}
    for (const p of problems.value) if (p.field) (out[p.field] ??= []).push(p)
    return out
  })
  /** Problems not tied to one setting (no model, empty dataset, a run already active). */
  const generalProblems = computed(() => problems.value.filter((p) => !p.field))

  let timer: ReturnType<typeof setTimeout> | null = null
  let seq = 0

  async function loadPresets(): Promise<void> {
    if (presets.value) return
    try {
      presets.value = await api['training:presets']()
      presetsError.value = null
    } catch (err) {
      presetsError.value = message(err)
    }
  }

  /** Opens the form for a project; `lastRun` (the project's newest run) gives the starting preset and settings. */
  async function setup(pid: number | null, lastRun: Run | null = null): Promise<void> {
    await loadPresets()
    if (pid === projectId.value && estimate.value) return
    projectId.value = pid
    estimate.value = null
    startProblems.value = null
    startError.value = null
    presetChosen.value = false
    changes.value = {}
    presetId.value = 'demo'
    if (lastRun && presets.value?.presets.some((p) => p.id === lastRun.preset)) {
      useSettingsOf(lastRun, false)
    }
    if (pid !== null) await refreshEstimate()
  }

  /** Fills the form with a run's preset and settings (plus optional tweaks: "train longer"). */
  function useSettingsOf(run: Run, chosen = true, tweak: Partial<TrainingSettings> = {}): void {
    const p = presets.value?.presets.find((x) => x.id === run.preset)
    if (!p) return
    presetId.value = p.id
    presetChosen.value = chosen || presetChosen.value
    changes.value = settingsChanges(p.settings, { ...run.settings, ...tweak })
    changed()
  }

  function setPreset(id: PresetId): void {
    presetId.value = id
    presetChosen.value = true
    changes.value = {}
    changed()
  }

  /** Sets one setting; a value equal to the preset's removes the change. */
  function setSetting<K extends SettingKey>(key: K, value: TrainingSettings[K]): void {
    const base = preset.value?.settings[key]
    const next = { ...changes.value }
    if (JSON.stringify(base) === JSON.stringify(value)) delete next[key]
    else next[key] = value
    changes.value = next
    changed()
  }

  function resetSettings(): void {
    changes.value = {}
    changed()
  }

  function changed(): void {
    startProblems.value = null
    startError.value = null
    scheduleEstimate()
  }

  function scheduleEstimate(delay = ESTIMATE_DELAY_MS): void {
    if (timer) clearTimeout(timer)
    timer = setTimeout(() => {
      timer = null
      void refreshEstimate()
    }, delay)
  }

  async function refreshEstimate(): Promise<void> {
    const pid = projectId.value
    if (pid === null) return
    if (timer) {
      clearTimeout(timer)
      timer = null
    }
    const mine = ++seq
    estimating.value = true
    try {
      const est = await api['training:estimate']({ projectId: pid, preset: presetId.value, settings: { ...changes.value } })
      if (mine !== seq) return
      estimate.value = est
      estimateError.value = null
      // The first estimate suggests a preset for this dataset and device; take it until the user picks one.
      if (!presetChosen.value && Object.keys(changes.value).length === 0 && est.suggestedPreset !== presetId.value) {
        presetId.value = est.suggestedPreset
        presetChosen.value = true
        await refreshEstimate()
      }
    } catch (err) {
      if (mine === seq) estimateError.value = message(err)
    } finally {
      if (mine === seq) estimating.value = false
    }
  }

  /** The one button: starts a run, or keeps main's reasons for refusing it. */
  async function start(): Promise<Run | null> {
    const pid = projectId.value
    if (pid === null || starting.value) return null
    starting.value = true
    startError.value = null
    startProblems.value = null
    try {
      const run = await api['training:start']({ projectId: pid, preset: presetId.value, settings: { ...changes.value } })
      void refreshEstimate()
      return run
    } catch (err) {
      const details = err instanceof ApiError ? (err.details as { problems?: SettingProblem[] } | undefined) : undefined
      if (details?.problems?.length) startProblems.value = details.problems
      else startError.value = message(err)
      return null
    } finally {
      starting.value = false
    }
  }

  async function loadEngine(): Promise<void> {
    try {
      engine.value = await api['engine:status']()
    } catch {
      /* the page shows what it last knew */
    }
  }

  api.on('engine:status', (s) => (engine.value = s))
  // A run that starts or ends changes what the estimate says (run active, measured speed).
  api.on('runs:changed', (e) => {
    if (e.projectId === projectId.value && e.reason === 'status') scheduleEstimate(600)
  })
  api.on('projects:changed', (e) => {
    if (e.projectId === projectId.value || e.projectId === null) scheduleEstimate()
  })
  api.on('models:changed', () => scheduleEstimate())

  return {
    presets, presetsError, projectId, presetId, presetChosen, changes, estimate, estimating, estimateError, startProblems, startError, starting, engine,
    preset, settings, changedKeys, problems, errors, fieldProblems, generalProblems,
    loadPresets, setup, useSettingsOf, setPreset, setSetting, resetSettings, scheduleEstimate, refreshEstimate, start, loadEngine,
  }
})

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
