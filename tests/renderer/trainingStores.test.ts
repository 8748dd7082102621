// The training and runs stores against a fake of the contract: the estimate follows the settings (debounced, only
// the newest answer kept), the suggested preset is taken until the user picks one, a refused start keeps main's
// problems by field; the runs store opens the active run, keeps its curves live from progress events (also those
// that arrive while the metrics load), marks stops until the run ends, resumes, deletes, compares, and offers
// interrupted runs.
import { mount } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import type {
  MetricPoint, PresetId, Run, RunMetrics, SettingProblem, TrainingEstimate, TrainingPresets, TrainingProgress, TrainingRequest, TrainingSettings,
} from '../../preload/contract'

type Handler = (arg: unknown) => unknown

const state = await vi.hoisted(async () => {
  const { fakeApiEvents } = await import('../helpers/fakeApiEvents')
  return {
    events: fakeApiEvents(),
    handlers: new Map<string, Handler>(),
    calls: [] as { channel: string; arg: unknown }[],
  }
})

vi.mock('../../renderer/src/api', () => {
  class ApiError extends Error {
    code: string
    details?: unknown
    constructor(info: { code: string; message: string; details?: unknown }) {
      super(info.message)
      this.code = info.code
      this.details = info.details
    }
  }
  const api = new Proxy(
    {},
    {
      get(_t, prop: string) {
        if (prop === 'on') return state.events.on
        return async (arg: unknown) => {
          state.calls.push({ channel: prop, arg })
          const h = state.handlers.get(prop)
          if (!h) throw new Error(`no fake for ${prop}`)
          return h(arg)
        }
      },
    },
  )
  return { api, ApiError, transport: 'browser' }
})

const { ApiError } = await import('../../renderer/src/api')
const { useTrainingStore, ESTIMATE_DELAY_MS } = await import('../../renderer/src/stores/training')
const { useRunsStore, STALE_MS } = await import('../../renderer/src/stores/runs')
const TrainingAdvancedPanel = (await import('../../renderer/src/components/TrainingAdvancedPanel.vue')).default
const { i18n } = await import('../../renderer/src/i18n')

const emit = state.events.emit
const callsOf = (channel: string) => state.calls.filter((c) => c.channel === channel)
const flush = () => new Promise((r) => setTimeout(r, 0))

const BASE = { lr: 2e-4, epochs: 8, batchRows: 4, batching: 'rows', loraTargets: ['q_proj', 'v_proj'] } as unknown as TrainingSettings
const PRESETS: TrainingPresets = {
  presets: (['tutorial', 'small', 'demo'] as PresetId[]).map((id) => ({
    id, name: { 'zh-TW': id, en: id }, description: { 'zh-TW': '', en: '' }, notes: [], rows: null, device: id === 'demo' ? 'cpu' : 'gpu',
    settings: { ...BASE, lr: id === 'demo' ? 3e-3 : 2e-4 },
  })),
  fields: [],
  groups: [],
}

function estimateFor(req: TrainingRequest, problems: SettingProblem[] = [], suggested: PresetId = 'demo'): TrainingEstimate {
  return {
    projectId: req.projectId, model: { id: 1, name: 'demo' }, device: null, settings: { ...BASE, ...req.settings },
    data: { enabledRows: 50, usableRows: 50, skippedRows: 0, truncatedRows: 0, trainRows: 45, validationRows: 5, meanTokens: 100, maxTokens: 130, trainTokens: 4500 },
    steps: { perEpoch: 12, total: 96, warmup: 6 }, memory: { estimate: null, availableBytes: null, fit: 'unknown' },
    time: { seconds: 20, tokensPerSecond: 2000, basis: 'assumed', note: { 'zh-TW': '', en: '' } },
    problems, canStart: !problems.some((p) => p.severity === 'error'), suggestedPreset: suggested,
  }
}

function run(over: Partial<Run>): Run {
  return {
    id: 1, projectId: 1, modelId: 1, modelName: 'demo', snapshotId: null, name: 'run', status: 'completed', preset: 'demo', device: 'cpu', settings: BASE,
    outputDir: '/runs/1', error: null, step: 0, totalSteps: 96, stepsPerEpoch: 12, epoch: 0, bestValLoss: null, lastTrainLoss: null,
    summary: {
      stopReason: null, verdict: null, adapterDir: null, adapterFrom: null, adapterStep: null, bestStep: null, data: null, trainSeconds: 0,
      meanTokensPerSecond: null, peakMemoryBytes: null, resumeOffered: false, resumes: 0,
    },
    active: false, resumable: false, resumeFromStep: null, createdAt: '2026-01-01T00:00:00Z', startedAt: null, endedAt: null,
    ...over,
  }
}

const mp = (step: number, loss = 1): MetricPoint => ({ step, epoch: step / 12, loss, lr: 1e-3, gradNorm: 1, tokensPerSecond: 100, memoryBytes: 1000 })

function progress(runId: number, step: number, points: MetricPoint[], over: Partial<TrainingProgress> = {}): TrainingProgress {
  return {
    runId, projectId: 1, status: 'training', stage: { key: 'training', fraction: null }, step, totalSteps: 96, epoch: step / 12, totalEpochs: 8,
    stepsPerEpoch: 12, loss: points.at(-1)?.loss ?? null, lr: 1e-3, gradNorm: 1, tokensPerSecond: 100, memoryBytes: 1000, deviceTotalBytes: 8000,
    valLoss: null, bestValLoss: null, elapsedSeconds: 1, etaSeconds: 10, points, evalPoints: [], ...over,
  }
}

beforeEach(() => {
  setActivePinia(createPinia())
  state.events.clear()
  state.handlers.clear()
  state.calls.length = 0
  vi.useRealTimers()
  state.handlers.set('training:presets', () => PRESETS)
})

describe('training store', () => {
  it('takes the suggested preset on the first estimate, then re-estimates (debounced) as settings change', async () => {
    state.handlers.set('training:estimate', (req) => estimateFor(req as TrainingRequest, [], 'small'))
    const store = useTrainingStore()
    await store.setup(1)
    expect(store.presetId).toBe('small')
    expect(callsOf('training:estimate').map((c) => (c.arg as TrainingRequest).preset)).toEqual(['demo', 'small'])

    vi.useFakeTimers()
    store.setSetting('lr', 1e-4)
    store.setSetting('epochs', 3)
    expect(store.changes).toEqual({ lr: 1e-4, epochs: 3 })
    expect(callsOf('training:estimate')).toHaveLength(2)
    await vi.advanceTimersByTimeAsync(ESTIMATE_DELAY_MS + 10)
    expect(callsOf('training:estimate')).toHaveLength(3)
    expect((callsOf('training:estimate')[2].arg as TrainingRequest).settings).toEqual({ lr: 1e-4, epochs: 3 })
    // Back to the preset's value: no longer a change.
    store.setSetting('lr', 2e-4)
    expect(store.changes).toEqual({ epochs: 3 })
    // Picking a preset drops the changes and sticks (no suggestion replaces it).
    store.setPreset('tutorial')
    expect(store.changes).toEqual({})
    await vi.advanceTimersByTimeAsync(ESTIMATE_DELAY_MS + 10)
    expect(store.presetId).toBe('tutorial')
  })

  it('keeps only the newest estimate when answers come back out of order', async () => {
    const waiting: ((v: TrainingEstimate) => void)[] = []
    state.handlers.set('training:estimate', (req) => new Promise<TrainingEstimate>((resolve) => waiting.push(() => resolve(estimateFor(req as TrainingRequest)))))
    const store = useTrainingStore()
    store.presetChosen = true
    await store.loadPresets()
    store.projectId = 1
    const first = store.refreshEstimate()
    store.changes = { epochs: 2 }
    const second = store.refreshEstimate()
    waiting[1](undefined as never)
    await second
    waiting[0](undefined as never)
    await first
    expect(store.estimate?.settings.epochs).toBe(2)
    expect(store.estimating).toBe(false)
  })

  it('a refused start keeps main\'s problems, tied to their fields, until the settings change', async () => {
    const lrZero: SettingProblem = { code: 'lrZero', severity: 'error', field: 'lr', message: { 'zh-TW': '學習率是 0', en: 'The learning rate is 0' } }
    const empty: SettingProblem = { code: 'emptyDataset', severity: 'error', message: { 'zh-TW': '沒有資料', en: 'No rows' } }
    state.handlers.set('training:estimate', (req) => estimateFor(req as TrainingRequest))
    state.handlers.set('training:start', () => {
      throw new ApiError({ code: 'INVALID_ARGUMENT', message: 'The learning rate is 0', details: { problems: [lrZero, empty] } })
    })
    const store = useTrainingStore()
    await store.setup(1)
    store.setSetting('lr', 0)
    expect(await store.start()).toBeNull()
    expect((callsOf('training:start')[0].arg as TrainingRequest).settings).toEqual({ lr: 0 })
    expect(store.startProblems).toHaveLength(2)
    expect(store.fieldProblems.lr?.[0].code).toBe('lrZero')
    expect(store.generalProblems.map((p) => p.code)).toEqual(['emptyDataset'])
    expect(store.errors).toHaveLength(2)
    store.setSetting('lr', 1e-4)
    expect(store.startProblems).toBeNull()
  })

  it('a start that fails for another reason shows its message; a good one returns the run', async () => {
    state.handlers.set('training:estimate', (req) => estimateFor(req as TrainingRequest))
    state.handlers.set('training:start', () => {
      throw new ApiError({ code: 'BUSY', message: 'Run #3 is still active.' })
    })
    const store = useTrainingStore()
    await store.setup(1)
    await store.start()
    expect(store.startError).toBe('Run #3 is still active.')
    state.handlers.set('training:start', () => run({ id: 9, status: 'queued', active: true }))
    expect((await store.start())?.id).toBe(9)
    expect(store.startError).toBeNull()
  })

  it('follows engine:status events', async () => {
    state.handlers.set('engine:status', () => ({ host: { state: 'stopped', pid: null, restarts: 0, lastExit: null }, backends: ['cpu'], devices: [], holder: null, model: null }))
    const store = useTrainingStore()
    await store.loadEngine()
    expect(store.engine?.host.state).toBe('stopped')
    emit('engine:status', { host: { state: 'ready', pid: 42, restarts: 1, lastExit: null }, backends: ['cpu'], devices: [], holder: { kind: 'training', runId: 3 }, model: null })
    expect(store.engine?.host.pid).toBe(42)
    expect(store.engine?.holder).toEqual({ kind: 'training', runId: 3 })
  })
})

describe('runs store', () => {
  it('opens the active run and applies progress that arrives while its metrics load', async () => {
    let releaseMetrics: (m: RunMetrics) => void = () => {}
    state.handlers.set('runs:list', () => [run({ id: 2, status: 'training', active: true, step: 3 }), run({ id: 1 })])
    state.handlers.set('runs:get', (a) => ({ ...run({ id: (a as { id: number }).id, status: 'training', active: true }), checkpoints: [] }))
    state.handlers.set('runs:metrics', () => new Promise<RunMetrics>((r) => (releaseMetrics = r)))
    const store = useRunsStore()
    const loading = store.load(1)
    await flush()
    expect(store.selectedId).toBe(2)
    // Progress during the fetch: held, then applied after the stored points.
    emit('training:progress', progress(2, 5, [mp(4, 0.9), mp(5, 0.8)]))
    releaseMetrics({ runId: 2, train: [mp(1, 2), mp(2, 1.5), mp(3, 1.2)], eval: [], totalTrainPoints: 3, downsampled: false, lastStep: 3 })
    await loading
    expect(store.series?.loss.map((p) => p.x)).toEqual([1, 2, 3, 4, 5])
    const rev = store.revision
    emit('training:progress', progress(2, 6, [mp(6, 0.7)], { evalPoints: [{ step: 6, epoch: 0.5, loss: 0.95 }], bestValLoss: 0.95 }))
    expect(store.series?.loss).toHaveLength(6)
    expect(store.series?.valLoss).toEqual([{ x: 6, y: 0.95 }])
    expect(store.revision).toBe(rev + 1)
    // The list row follows the progress.
    const row = store.runs.find((r) => r.id === 2)!
    expect(row.step).toBe(6)
    expect(row.bestValLoss).toBe(0.95)
    expect(store.live[2].etaSeconds).toBe(10)
    // Another run's progress does not touch the open run's curves.
    emit('training:progress', progress(1, 9, [mp(9)]))
    expect(store.series?.loss).toHaveLength(6)
  })

  it('a stop is marked until the run ends; resume continues it; delete removes it', async () => {
    let listed = [run({ id: 4, status: 'training', active: true })]
    state.handlers.set('runs:list', () => listed)
    state.handlers.set('runs:get', (a) => ({ ...listed.find((r) => r.id === (a as { id: number }).id)!, checkpoints: [] }))
    state.handlers.set('runs:metrics', () => ({ runId: 4, train: [], eval: [], totalTrainPoints: 0, downsampled: false, lastStep: 0 }))
    state.handlers.set('training:stop', () => listed[0])
    const store = useRunsStore()
    await store.load(1)
    await store.stop(4)
    expect(store.stopping[4]).toBe(true)
    emit('training:progress', progress(4, 10, [], { status: 'stopped' }))
    expect(store.stopping[4]).toBeUndefined()

    listed = [run({ id: 4, status: 'stopped', resumable: true, resumeFromStep: 10 })]
    state.handlers.set('runs:resume', () => run({ id: 4, status: 'queued', active: true }))
    expect((await store.resume(4))?.status).toBe('queued')
    expect(callsOf('runs:resume')[0].arg).toEqual({ id: 4 })

    listed = [run({ id: 4, status: 'completed' })]
    state.handlers.set('runs:delete', () => undefined)
    expect(await store.remove(4)).toBe(true)
    expect(store.runs).toHaveLength(0)
    expect(store.selectedId).toBeNull()
  })

  it('an action main refuses shows its message and changes nothing', async () => {
    state.handlers.set('runs:list', () => [run({ id: 5, status: 'training', active: true })])
    state.handlers.set('runs:get', () => ({ ...run({ id: 5, status: 'training', active: true }), checkpoints: [] }))
    state.handlers.set('runs:metrics', () => ({ runId: 5, train: [], eval: [], totalTrainPoints: 0, downsampled: false, lastStep: 0 }))
    state.handlers.set('runs:delete', () => {
      throw new ApiError({ code: 'CONFLICT', message: 'Run #5 is active. Stop it before deleting it.' })
    })
    const store = useRunsStore()
    await store.load(1)
    expect(await store.remove(5)).toBe(false)
    expect(store.actionError).toContain('Stop it')
    expect(store.runs).toHaveLength(1)
  })

  it('compares two or more runs with their curves', async () => {
    state.handlers.set('runs:list', () => [run({ id: 1 }), run({ id: 2 })])
    state.handlers.set('runs:compare', (a) => {
      const ids = (a as { ids: number[] }).ids
      return {
        runs: ids.map((id) => ({ ...run({ id }), checkpoints: [] })),
        settingsDiff: [{ key: 'lr', values: [2e-4, 1e-4] }],
        curves: ids.map((id) => ({ runId: id, train: [mp(1), mp(2)], eval: [{ step: 2, epoch: 1, loss: 1 }], totalTrainPoints: 2, downsampled: false, lastStep: 2 })),
      }
    })
    const store = useRunsStore()
    await store.load(1)
    store.toggleCompare(1)
    await store.compare()
    expect(callsOf('runs:compare')).toHaveLength(0)
    store.toggleCompare(2)
    await store.compare()
    expect(callsOf('runs:compare')[0].arg).toMatchObject({ ids: [1, 2] })
    expect(store.comparison?.settingsDiff[0].key).toBe('lr')
    expect(store.compareSeries.map((s) => s.loss.length)).toEqual([2, 2])
    store.toggleCompare(1)
    expect(store.compareIds).toEqual([2])
  })

  it('offers interrupted runs of any project, and forgets an offer when asked', async () => {
    const offered = run({ id: 8, projectId: 3, status: 'interrupted', resumable: true, resumeFromStep: 24, summary: { ...run({}).summary, resumeOffered: true } })
    state.handlers.set('runs:list', (a) => ((a as { projectId?: number }).projectId === undefined ? [offered, run({ id: 9, status: 'interrupted', resumable: true })] : []))
    state.handlers.set('runs:dismissResume', () => ({ ...offered, summary: { ...offered.summary, resumeOffered: false } }))
    const store = useRunsStore()
    await store.loadOffers()
    expect(store.offers.map((r) => r.id)).toEqual([8])
    await store.dismissOffer(8)
    expect(store.offers).toHaveLength(0)
    expect(callsOf('runs:dismissResume')[0].arg).toEqual({ id: 8 })
  })

  it('an open active run that goes quiet is re-read: interrupted meanwhile -> curves reloaded and the offer shown; unreachable -> says so', async () => {
    vi.useFakeTimers()
    let status: Run['status'] = 'training'
    state.handlers.set('runs:list', (a) => ((a as { projectId?: number }).projectId === undefined
      ? [run({ id: 3, status, resumable: status === 'interrupted', summary: { ...run({}).summary, resumeOffered: status === 'interrupted' } })]
      : [run({ id: 3, status, active: status === 'training' })]))
    state.handlers.set('runs:get', () => ({ ...run({ id: 3, status, active: status === 'training', resumable: status === 'interrupted' }), checkpoints: [] }))
    state.handlers.set('runs:metrics', () => ({ runId: 3, train: [mp(1), mp(2)], eval: [], totalTrainPoints: 2, downsampled: false, lastStep: 2 }))
    const store = useRunsStore()
    await store.load(1)
    expect(store.selectedId).toBe(3)
    const gets = callsOf('runs:get').length
    // Progress keeps it fresh: no re-read.
    for (let i = 0; i < 4; i++) {
      await vi.advanceTimersByTimeAsync(STALE_MS / 3)
      emit('training:progress', progress(3, 3 + i, [mp(3 + i)]))
    }
    expect(callsOf('runs:get')).toHaveLength(gets)
    // Quiet: re-read; it was interrupted (the engine or the server died), so the curves and offers are reloaded.
    status = 'interrupted'
    await vi.advanceTimersByTimeAsync(STALE_MS + 5_000)
    expect(callsOf('runs:get').length).toBeGreaterThan(gets)
    await vi.waitFor(() => expect(store.detail?.status).toBe('interrupted'))
    await vi.waitFor(() => expect(store.offers.map((r) => r.id)).toEqual([3]))
    expect(store.connectionLost).toBe(false)

    // Unreachable main while a run shows as active: the page says the connection is lost.
    status = 'training'
    await store.open(3)
    state.handlers.set('runs:get', () => {
      throw new ApiError({ code: 'NETWORK', message: 'Cannot reach the QA Tuner server.' })
    })
    await vi.advanceTimersByTimeAsync(STALE_MS + 5_000)
    expect(store.connectionLost).toBe(true)
    emit('training:progress', progress(3, 9, [mp(9)]))
    expect(store.connectionLost).toBe(false)
    vi.useRealTimers()
  })

  it('a deleted run (runs:changed with status null) leaves the list and closes', async () => {
    state.handlers.set('runs:list', () => [run({ id: 1 })])
    state.handlers.set('runs:get', () => ({ ...run({ id: 1 }), checkpoints: [] }))
    state.handlers.set('runs:metrics', () => ({ runId: 1, train: [], eval: [], totalTrainPoints: 0, downsampled: false, lastStep: 0 }))
    const store = useRunsStore()
    await store.load(1)
    await store.open(1)
    emit('runs:changed', { runId: 1, projectId: 1, status: null, reason: 'deleted' })
    expect(store.runs).toHaveLength(0)
    expect(store.selectedId).toBeNull()
  })
})

describe('advanced panel', () => {
  const fields: TrainingPresets['fields'] = [
    { key: 'lr', group: 'optimizer', kind: 'number', min: 0, max: 1, scale: 'log', label: { 'zh-TW': '學習率', en: 'Learning rate' }, explain: { 'zh-TW': '每一步改變多少', en: 'How much each step changes' } },
    { key: 'batching', group: 'batching', kind: 'choice', options: [{ value: 'rows', label: { 'zh-TW': '固定筆數', en: 'Rows' } }, { value: 'tokens', label: { 'zh-TW': 'token 預算', en: 'Tokens' } }], label: { 'zh-TW': '分批方式', en: 'Batching' }, explain: { 'zh-TW': '分批', en: 'Batching' } },
    { key: 'batchRows', group: 'batching', kind: 'integer', min: 1, max: 1024, when: { key: 'batching', equals: 'rows' }, label: { 'zh-TW': '每批筆數', en: 'Rows per batch' }, explain: { 'zh-TW': '每一步同時看幾筆', en: 'Rows per step' } },
    { key: 'tokenBudget', group: 'batching', kind: 'integer', min: 64, max: 1 << 20, when: { key: 'batching', equals: 'tokens' }, label: { 'zh-TW': '每批 token 預算', en: 'Tokens per batch' }, explain: { 'zh-TW': 'token', en: 'tokens' } },
  ]
  const groups: TrainingPresets['groups'] = [
    { id: 'optimizer', label: { 'zh-TW': '最佳化', en: 'Optimizer' } },
    { id: 'batching', label: { 'zh-TW': '分批', en: 'Batching' } },
  ]

  it('shows each setting with its explanation, main\'s problem next to the field it concerns, and refuses out-of-range input', async () => {
    state.handlers.set('training:presets', () => ({ ...PRESETS, fields, groups }))
    state.handlers.set('training:estimate', (req) => estimateFor(req as TrainingRequest))
    const store = useTrainingStore()
    await store.setup(1)
    const wontFit: SettingProblem = {
      code: 'wontFit', severity: 'error', field: 'batchRows',
      message: { 'zh-TW': '預估需要 14.2 GB，GPU 只有 8.0 GB 可用。請把每批筆數調到 2 以下。', en: 'Lower the rows per batch to 2 or fewer.' },
    }
    store.startProblems = [wontFit]
    const wrapper = mount(TrainingAdvancedPanel, { global: { plugins: [i18n] } })
    expect(wrapper.find('[data-testid="field-lr"]').text()).toContain('每一步改變多少')
    // Only the setting that matters for the chosen batching is shown.
    expect(wrapper.find('[data-testid="field-batchRows"]').exists()).toBe(true)
    expect(wrapper.find('[data-testid="field-tokenBudget"]').exists()).toBe(false)
    expect(wrapper.find('[data-testid="field-problem-batchRows"]').text()).toContain('請把每批筆數調到 2 以下')
    expect(wrapper.find('[data-testid="field-batchRows"]').classes()).toContain('bad')

    vi.useFakeTimers()
    const rows = wrapper.find<HTMLInputElement>('[data-testid="setting-batchRows"]')
    await rows.setValue('5000')
    await rows.trigger('change')
    expect(store.changes.batchRows).toBeUndefined()
    expect(wrapper.find('[data-testid="field-batchRows"]').text()).toContain('1 到 1024')
    await rows.setValue('2')
    await rows.trigger('change')
    expect(store.changes.batchRows).toBe(2)
    // Changing a setting clears the refused start's problems (the estimate re-checks).
    expect(store.startProblems).toBeNull()
    const lr = wrapper.find<HTMLInputElement>('[data-testid="setting-lr"]')
    expect(lr.element.value).toBe('3e-3')
    await lr.setValue('2e-4')
    await lr.trigger('change')
    expect(store.changes.lr).toBe(2e-4)
    await wrapper.find('[data-testid="setting-batching"]').setValue('tokens')
    expect(store.changes.batching).toBe('tokens')
    await wrapper.vm.$nextTick()
    expect(wrapper.find('[data-testid="field-tokenBudget"]').exists()).toBe(true)
    vi.useRealTimers()
  })
})
