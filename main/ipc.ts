// The Electron transport and the only ipcMain user. Checks that each request comes from our own
// renderer (the main frame of one of our windows, loaded from our files or the dev server), hands it to
// the shared dispatcher (which validates arguments and never throws), and forwards push events.
import { BrowserWindow, ipcMain, type IpcMainInvokeEvent } from 'electron'
import { CHANNELS, type Result } from '../preload/contract'
import type { Dispatch } from './dispatch'
import type { EventBus } from './events'

export function isTrustedUrl(url: string, devServerUrl: string | undefined): boolean {
  if (devServerUrl && url.startsWith(devServerUrl)) return true
  return url.startsWith('file://') && /[\\/]out[\\/]renderer[\\/]index\.html(?:[?#].*)?$/.test(decodeURIComponent(url))
}

export function registerIpc(dispatch: Dispatch, events: EventBus, devServerUrl: string | undefined): () => void {
  const forbidden: Result<never> = { ok: false, error: { code: 'FORBIDDEN', message: 'Request from an untrusted page.' } }
  for (const channel of CHANNELS) {
    ipcMain.handle(channel, (e: IpcMainInvokeEvent, arg: unknown) => {
      const frame = e.senderFrame
      if (!frame || frame.parent !== null || !isTrustedUrl(frame.url, devServerUrl)) return forbidden
      return dispatch(channel, arg)
    })
  }
  const off = events.onAny((event, payload) => {
    for (const win of BrowserWindow.getAllWindows()) {
      if (!win.isDestroyed()) win.webContents.send(event, payload)
    }
  })
  return () => {
    off()
    for (const channel of CHANNELS) ipcMain.removeHandler(channel)
  }
}
