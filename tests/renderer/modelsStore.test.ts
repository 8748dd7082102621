// The models store and list against a fake of the contract: download progress push events update the row's bar,
// bytes, speed and ETA; the end of a download refreshes the list; formatting of sizes, counts and durations.
import { mount } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import type { DownloadProgress, ModelEntry } from '../../preload/contract'

const state = await vi.hoisted(async () => {
  const { fakeApiEvents } = await import('../helpers/fakeApiEvents')
  return {
    events: fakeApiEvents(),
    models: [] as unknown[],
    listCalls: 0,
    /** Holds models:list until resolved: a reload still on its way. */
    listGate: null as null | Promise<void>,
  }
})

vi.mock('../../renderer/src/api', () => ({
  transport: 'browser',
  ApiError: class extends Error {},
  api: {
    on: state.events.on,
    'models:list': async () => {
      state.listCalls++
      const snapshot = state.models // what main has when the request arrives
      if (state.listGate) await state.listGate
      return snapshot
    },
  },
}))

const { useModelsStore, formatBytes, formatCount, formatDuration } = await import('../../renderer/src/stores/models')
const ModelList = (await import('../../renderer/src/components/ModelList.vue')).default
const { i18n } = await import('../../renderer/src/i18n')

function entry(over: Partial<ModelEntry>): ModelEntry {
  return {
    id: 1, name: 'acme/Tiny', source: 'hub', path: '/m', repoId: 'acme/Tiny', revision: null, architecture: '', sizeBytes: 0, status: 'downloading',
    addedAt: '2026-01-01T00:00:00Z', details: null, download: null, error: null, paused: false, missing: false, deleteRemovesFiles: true, usedByProjects: 0,
    ...over,
  }
}

const emit = state.events.emit

beforeEach(() => {
  setActivePinia(createPinia())
  state.events.clear()
  state.listCalls = 0
  state.listGate = null
})

describe('reloading the list', () => {
  it('a change announced while a reload is in flight is reloaded after it, not lost', async () => {
    const store = useModelsStore()
    state.models = [entry({ status: 'downloading' })]
    let answer!: () => void
    state.listGate = new Promise<void>((r) => (answer = r))
    const first = store.refresh()
    // the download fails at once: main marks the row and says so while the first reload is still out
    state.models = [entry({ status: 'failed' })]
    emit('models:changed', { modelId: 1 })
    answer()
    state.listGate = null
    await first
    expect(state.listCalls).toBe(2)
    expect(store.models[0].status).toBe('failed')
  })
})

describe('formatting', () => {
  it('sizes, parameter counts and durations', () => {
    expect(formatBytes(16_070_000_000)).toBe('16.1 GB')
    expect(formatBytes(980_000_000)).toBe('980 MB')
    expect(formatBytes(0)).toBe('0 B')
    expect(formatCount(8_030_261_248)).toBe('8.03B')
    expect(formatCount(494_032_768)).toBe('494M')
    expect(formatCount(988_288)).toBe('988K')
    expect(formatDuration(3909)).toBe('1:05:09')
    expect(formatDuration(247)).toBe('4:07')
  })
})

describe('download progress', () => {
  it('push events move the bar and show bytes, speed and ETA; the end refreshes the list', async () => {
    state.models = [entry({})]
    const store = useModelsStore()
    await store.refresh()
    const wrapper = mount(ModelList, { props: { models: store.models, selectedId: null, projectModelId: null }, global: { plugins: [i18n] } })
    expect(wrapper.find('[role="progressbar"]').exists()).toBe(false)

    const p: DownloadProgress = {
      modelId: 1, repoId: 'acme/Tiny', state: 'downloading', totalBytes: 16_000_000_000, doneBytes: 4_000_000_000, bytesPerSecond: 50_000_000, etaSeconds: 240,
      file: 'model-00001-of-00004.safetensors', filesDone: 3, filesTotal: 8,
    }
    emit('models:downloadProgress', p)
    await wrapper.vm.$nextTick()
    const bar = wrapper.find('[role="progressbar"]')
    expect(bar.attributes('aria-valuenow')).toBe('25')
    expect(bar.find('span').attributes('style')).toContain('width: 25%')
    expect(wrapper.text()).toContain('4.0 GB / 16.0 GB')
    expect(wrapper.text()).toContain('50.0 MB/秒')
    expect(wrapper.text()).toContain('剩餘 4:00')
    expect(wrapper.find('[data-testid="model-status"]').text()).toBe('下載中')

    const calls = state.listCalls
    state.models = [entry({ status: 'ready', architecture: 'LlamaForCausalLM', sizeBytes: 16_000_000_000 })]
    emit('models:downloadProgress', { ...p, state: 'done', doneBytes: p.totalBytes, etaSeconds: 0 })
    await vi.waitFor(() => expect(state.listCalls).toBe(calls + 1))
    expect(store.models[0].status).toBe('ready')
  })

  it('a paused download reads as paused', async () => {
    state.models = [entry({ status: 'failed', paused: true })]
    const store = useModelsStore()
    await store.refresh()
    const wrapper = mount(ModelList, { props: { models: store.models, selectedId: 1, projectModelId: null }, global: { plugins: [i18n] } })
    expect(wrapper.find('[data-testid="model-status"]').text()).toBe('已暫停')
  })
})
