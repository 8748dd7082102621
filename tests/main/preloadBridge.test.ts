// The preload bridge exposes exactly one method per contract channel plus `on`, and never ipcRenderer.
import { describe, expect, it, vi } from 'vitest'
import { CHANNELS, EVENTS } from '../../preload/contract'

const exposed: Record<string, unknown> = {}
const invoke = vi.fn(async (channel: string, arg: unknown) => ({ ok: true, value: [channel, arg] }))
const on = vi.fn()
const removeListener = vi.fn()

vi.mock('electron', () => ({
  contextBridge: { exposeInMainWorld: (key: string, value: unknown) => (exposed[key] = value) },
  ipcRenderer: { invoke, on, removeListener },
}))

describe('preload bridge', () => {
  it('exposes one function per channel and nothing of ipcRenderer', async () => {
    vi.stubGlobal('process', { ...process, contextIsolated: true })
    await import('../../preload/index')
    vi.unstubAllGlobals()
    const api = exposed.api as Record<string, unknown>
    expect(Object.keys(api).sort()).toEqual([...CHANNELS, 'on'].sort())
    for (const channel of CHANNELS) expect(typeof api[channel], channel).toBe('function')
    expect(Object.values(api)).not.toContain(invoke)
    for (const raw of ['ipcRenderer', 'send', 'sendSync', 'invoke', 'postMessage', 'removeListener']) expect(api).not.toHaveProperty(raw)

    await expect((api['projects:get'] as (a: unknown) => Promise<unknown>)({ id: 3 })).resolves.toEqual({ ok: true, value: ['projects:get', { id: 3 }] })

    const listener = vi.fn()
    const off = (api.on as (e: string, l: unknown) => () => void)(EVENTS[0]!, listener)
    expect(on).toHaveBeenCalledWith(EVENTS[0], expect.any(Function))
    const wrapped = on.mock.calls[0]![1] as (e: unknown, p: unknown) => void
    wrapped({ sender: 'secret' }, { projectId: 1 })
    expect(listener).toHaveBeenCalledWith({ projectId: 1 }) // the IPC event object is not leaked
    off()
    expect(removeListener).toHaveBeenCalled()
    expect(() => (api.on as (e: string, l: unknown) => void)('not:an-event', listener)).toThrow(/Unknown event/)
  })
})
