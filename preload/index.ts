// The preload bridge: one method per contract channel on `window.api`, plus `on(event, listener)`.
// ipcRenderer itself is never exposed. Built as CommonJS so the renderer can run sandboxed.
import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron'
import { CHANNELS, EVENTS, type EventName } from './contract'

const events = new Set<string>(EVENTS)

export function buildBridge(invoke: (channel: string, arg: unknown) => Promise<unknown>, subscribe: typeof ipcRenderer.on, unsubscribe: typeof ipcRenderer.removeListener): Record<string, unknown> {
  const api: Record<string, unknown> = {}
  for (const channel of CHANNELS) {
    api[channel] = (arg: unknown) => invoke(channel, arg)
  }
  api.on = (event: EventName, listener: (payload: unknown) => void) => {
    if (!events.has(event)) throw new Error(`Unknown event: ${String(event)}`)
    if (typeof listener !== 'function') throw new Error('listener must be a function')
    const wrapped = (_e: IpcRendererEvent, payload: unknown) => listener(payload)
    subscribe.call(ipcRenderer, event, wrapped)
    return () => void unsubscribe.call(ipcRenderer, event, wrapped)
  }
  return api
}

// `process.contextIsolated` is false only when imported outside Electron's preload (unit tests).
if (typeof process !== 'undefined' && process.contextIsolated) {
  contextBridge.exposeInMainWorld(
    'api',
    buildBridge((c, a) => ipcRenderer.invoke(c, a), ipcRenderer.on, ipcRenderer.removeListener),
  )
}
