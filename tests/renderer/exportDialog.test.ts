// The export dialog against a fake of the contract: it estimates what the chosen formats need (size against free space,
// template, stop tokens), refuses to start when the disk is too full, starts with the chosen request, follows
// export:progress to a progress bar, and shows the self-test table (both answers, stopped, pass/fail) at the end.
import { flushPromises, mount } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import type { ExportEstimate, ExportJob, ExportRequest } from '../../preload/contract'

const state = await vi.hoisted(async () => {
  const { fakeApiEvents } = await import('../helpers/fakeApiEvents')
  return {
    events: fakeApiEvents(),
    estimates: [] as unknown[],
    started: [] as unknown[],
    cancelled: [] as string[],
    free: 50_000_000_000,
  }
})

vi.mock('../../renderer/src/api', () => ({
  transport: 'browser',
  ApiError: class extends Error {},
  api: {
    on: state.events.on,
    'export:estimate': async (req: ExportRequest): Promise<ExportEstimate> => {
      state.estimates.push(req)
      const total = (req.outputs.adapter ? 100_000_000 : 0) + (req.outputs.merged ? 16_000_000_000 : 0) + (req.outputs.gguf ? 8_500_000_000 : 0)
      return {
        name: req.name ?? 'HR - run 1 - 2026-11-28', destDir: req.destDir ?? '/data/exports', folder: '/data/exports/x', exists: false,
        files: [], totalBytes: total, freeBytes: state.free, enough: state.free > total + 64e6, baseModel: 'meta-llama/Meta-Llama-3-8B-Instruct',
        adapterDir: '/runs/1/adapter', template: "the model's own (tokenizer_config.json)",
        stopTokens: [{ id: 128009, text: '<|eot_id|>' }, { id: 128001, text: '<|end_of_text|>' }], systemPrompt: '你是一個zh-tw版本的聊天機器人',
        unavailable: { merged: null, gguf: null }, warnings: [],
      }
    },
    'export:start': async (req: ExportRequest): Promise<ExportJob> => {
      state.started.push(req)
      return job({ state: 'running' })
    },
    'export:cancel': async ({ jobId }: { jobId: string }) => {
      state.cancelled.push(jobId)
      return job({ state: 'cancelled', error: { code: 'CANCELLED', message: 'Export cancelled: nothing was kept.' } })
    },
    'export:jobs': async () => [],
    'models:pickFolder': async () => ({ supported: false, path: null }),
  },
}))

const ExportDialog = (await import('../../renderer/src/components/ExportDialog.vue')).default
const { i18n } = await import('../../renderer/src/i18n')

function job(over: Partial<ExportJob>): ExportJob {
  return {
    id: '6f1c2a8e-0000-4000-8000-000000000001', projectId: 1, runId: 1, name: 'HR - run 1 - 2026-11-28', folder: '/data/exports/HR - run 1 - 2026-11-28',
    state: 'running', stage: 'checking', fraction: 0, bytesDone: 0, bytesTotal: 8_600_000_000, detail: '', startedAt: '2026-11-28T06:00:00Z', endedAt: null,
    error: null, result: null, ...over,
  }
}

const emit = state.events.emit

async function settle(): Promise<void> {
  await new Promise((r) => setTimeout(r, 300)) // the dialog waits 250 ms before estimating
  await flushPromises()
}

beforeEach(() => {
  setActivePinia(createPinia())
  state.events.clear()
  state.estimates = []
  state.started = []
  state.cancelled = []
  state.free = 50_000_000_000
  i18n.global.locale.value = 'zh-TW'
})

describe('ExportDialog', () => {
  it('estimates the chosen formats and shows size, free space, template, stop tokens and system prompt', async () => {
    const w = mount(ExportDialog, { props: { open: true, projectId: 1, runId: 1 }, global: { plugins: [i18n] }, attachTo: document.body })
    await settle()
    expect(state.estimates.at(-1)).toMatchObject({ projectId: 1, source: { runId: 1 }, outputs: { adapter: true, merged: false, gguf: 'Q8_0' }, selfTest: { enabled: true, questions: 5 } })
    const summary = document.querySelector('[data-testid="export-summary"]')!.textContent!
    expect(summary).toContain('meta-llama/Meta-Llama-3-8B-Instruct')
    expect(summary).toContain('<|eot_id|>')
    expect(summary).toContain('<|end_of_text|>')
    expect(summary).toContain('你是一個zh-tw版本的聊天機器人')
    expect(document.querySelector('[data-testid="export-size"]')!.textContent).toBe('8.6 GB')
    // Adding the merged model re-estimates.
    const merged = document.querySelector<HTMLInputElement>('[data-testid="export-merged"]')!
    merged.click()
    await settle()
    expect(state.estimates.at(-1)).toMatchObject({ outputs: { adapter: true, merged: true, gguf: 'Q8_0' } })
    expect(document.querySelector('[data-testid="export-size"]')!.textContent).toBe('24.6 GB')
    w.unmount()
  })

  it('refuses to start when the disk is too full, and says so', async () => {
    state.free = 5_000_000_000
    const w = mount(ExportDialog, { props: { open: true, projectId: 1, runId: 1 }, global: { plugins: [i18n] }, attachTo: document.body })
    await settle()
    expect(document.querySelector('[data-testid="export-no-space"]')!.textContent).toContain('磁碟空間不足：需要 8.6 GB，只剩 5.0 GB')
    expect(document.querySelector<HTMLButtonElement>('[data-testid="export-start"]')!.disabled).toBe(true)
    w.unmount()
  })

  it('starts, follows the progress events, and shows the self-test table at the end', async () => {
    const w = mount(ExportDialog, { props: { open: true, projectId: 1, runId: 1 }, global: { plugins: [i18n] }, attachTo: document.body })
    await settle()
    document.querySelector<HTMLButtonElement>('[data-testid="export-start"]')!.click()
    await flushPromises()
    expect(state.started).toHaveLength(1)
    emit('export:progress', job({ stage: 'gguf', fraction: 0.42, bytesDone: 3_600_000_000, detail: 'gguf/HR-Q8_0.gguf blk.3.attn_q.weight' }))
    await flushPromises()
    const progress = document.querySelector('[data-testid="export-progress"]')!.textContent!
    expect(progress).toContain('寫入 GGUF')
    expect(progress).toContain('42%')
    expect(progress).toContain('3.6 GB / 8.6 GB')
    emit('export:progress', job({
      state: 'done', stage: 'finishing', fraction: 1,
      result: {
        folder: '/data/exports/HR - run 1 - 2026-11-28', seconds: 300,
        files: [{ path: 'gguf/HR-Q8_0.gguf', bytes: 8_500_000_000 }, { path: 'gguf/Modelfile', bytes: 900 }],
        selfTest: {
          state: 'failed', reason: '1 answer(s) did not stop at the end token', runtime: 'llama.cpp v0.5.0 via node-llama-cpp 3.22.1 (CPU)', ggufFile: 'gguf/HR-Q8_0.gguf',
          templateMatches: true, endTokenIsEog: true, seconds: 40,
          questions: [
            { question: '年假有幾天？', reference: '七天。', engineAnswer: '到職滿一年有七天年假。', ggufAnswer: '到職滿一年有七天年假。', engineTokens: [1, 2], ggufTokens: [1, 2], matchedTokens: 2, requiredTokens: 2, stopped: true, tokenizerMatches: true, passed: true },
            { question: '薪水幾號發？', reference: '五日。', engineAnswer: '每月五日發放。', ggufAnswer: '每月五日發放發放發放', engineTokens: [3, 4], ggufTokens: [3, 5], matchedTokens: 1, requiredTokens: 2, stopped: false, tokenizerMatches: true, passed: false },
          ],
        },
      },
    }))
    await flushPromises()
    expect(document.querySelector('[data-testid="export-folder"]')!.textContent).toBe('/data/exports/HR - run 1 - 2026-11-28')
    expect(document.querySelector('[data-testid="export-selftest-verdict"]')!.textContent).toContain('未通過：1 answer(s) did not stop at the end token')
    const row0 = document.querySelector('[data-testid="export-selftest-row-0"]')!.textContent!
    const row1 = document.querySelector('[data-testid="export-selftest-row-1"]')!.textContent!
    expect(row0).toContain('年假有幾天？')
    expect(row0).toContain('通過')
    expect(row1).toContain('每月五日發放發放發放')
    expect(row1).toContain('否')
    expect(row1).toContain('失敗')
    w.unmount()
  })

  it('cancels a running export', async () => {
    const w = mount(ExportDialog, { props: { open: true, projectId: 1, adapterDir: '/a', modelId: 2 }, global: { plugins: [i18n] }, attachTo: document.body })
    await settle()
    expect(state.estimates.at(-1)).toMatchObject({ source: { adapterDir: '/a', modelId: 2 } })
    document.querySelector<HTMLButtonElement>('[data-testid="export-start"]')!.click()
    await flushPromises()
    document.querySelector<HTMLButtonElement>('[data-testid="export-cancel"]')!.click()
    await flushPromises()
    expect(state.cancelled).toEqual(['6f1c2a8e-0000-4000-8000-000000000001'])
    expect(document.querySelector('[data-testid="export-cancelled"]')!.textContent).toContain('已取消匯出')
    w.unmount()
  })
})
