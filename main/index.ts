// Electron main process entry: one instance, the app context (database, settings), the IPC gatekeeper
// and the window. Everything that is not Electron-specific lives in plain-Node modules shared with
// browser mode (main/serve.ts).
import { app, BrowserWindow, dialog, safeStorage } from 'electron'
import ElectronStore from 'electron-store'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createAppContext } from './context'
import { createDispatcher } from './dispatch'
import { attachEngine } from './engine/host/engineForContext'
import { utilityHost } from './engine/host/utilityHost'
import { engineBackends } from './engine/loadAddon'
import { createHandlers } from './handlers'
import { registerIpc } from './ipc'
import { createSafeStorageSecretStore } from './models/secrets/safeStorageSecretStore'
import { createSettingsStore } from './settings/settingsStore'
import { createMainWindow, hardenSession } from './window'

const outDir = join(dirname(fileURLToPath(import.meta.url)), '..')
const devServerUrl = !app.isPackaged ? process.env.ELECTRON_RENDERER_URL : undefined

function dataDirFromArgs(): string | undefined {
  const i = process.argv.indexOf('--data-dir')
  return i > 0 ? process.argv[i + 1] : process.env.QT_DATA_DIR
}

if (!app.requestSingleInstanceLock()) {
  app.quit()
} else {
  const customDir = dataDirFromArgs()
  if (customDir) app.setPath('userData', customDir)

  void app.whenReady().then(() => {
    hardenSession()
    const dataDir = app.getPath('userData')
    const settings = createSettingsStore(new ElectronStore<Record<string, unknown>>({ name: 'settings' }))
    // better-sqlite3 is not N-API: `npm start` builds an Electron copy beside the Node one (main/start.ts).
    const electronSqlite = join(outDir, '..', 'node_modules', '.qt-electron', process.versions.electron, 'better_sqlite3.node')
    const ctx = createAppContext({ mode: 'electron', dataDir, settings, sqliteBinding: existsSync(electronSqlite) ? electronSqlite : undefined })
    const pickFolder = async (): Promise<string | null> => {
      const owner = BrowserWindow.getFocusedWindow() ?? BrowserWindow.getAllWindows()[0]
      const opts = { title: 'Model folder', properties: ['openDirectory' as const] }
      const r = owner ? await dialog.showOpenDialog(owner, opts) : await dialog.showOpenDialog(opts)
      return r.canceled || r.filePaths.length === 0 ? null : r.filePaths[0]
    }
    // The native engine runs in a supervised utility process (a crash there never takes the app down); the
    // training service (created with the handlers) marks runs this app left active as interrupted.
    attachEngine(ctx, utilityHost())
    const secrets = createSafeStorageSecretStore(safeStorage, dataDir)
    const dispatch = createDispatcher(createHandlers(ctx, { engineBackends, secrets, pickFolder }))
    const unregister = registerIpc(dispatch, ctx.events, devServerUrl)

    let win = createMainWindow(outDir, devServerUrl)
    app.on('second-instance', () => {
      if (win.isMinimized()) win.restore()
      win.focus()
    })
    app.on('activate', () => {
      if (BrowserWindow.getAllWindows().length === 0) win = createMainWindow(outDir, devServerUrl)
    })
    let closing = false
    app.on('before-quit', (e) => {
      if (closing) return
      closing = true
      e.preventDefault()
      unregister()
      void ctx.close().finally(() => app.exit(0))
    })
  }).catch((err: unknown) => {
    dialog.showErrorBox('QA Tuner could not start', err instanceof Error ? err.message : String(err))
    app.exit(1)
  })

  app.on('window-all-closed', () => {
    if (process.platform !== 'darwin') app.quit()
  })
}
