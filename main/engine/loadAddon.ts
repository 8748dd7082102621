// Loads the native engine addon (native/build/Release/qatuner.node; unpacked from the asar when packaged).
// N-API, so the same file loads in Node (browser mode, CLI, tests) and in Electron.
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { appRoot, unpackedPath } from '../paths'

const nodeRequire = createRequire(import.meta.url)

export function addonPath(): string {
  return process.env.QT_ADDON_PATH || unpackedPath(join(appRoot(), 'native', 'build', 'Release', 'qatuner.node'))
}

let cached: unknown
let loadError: Error | undefined

/** The raw addon module, or throws a plain explanation when it was not built. */
export function loadAddon<T = Record<string, unknown>>(): T {
  if (cached) return cached as T
  if (loadError) throw loadError
  const p = addonPath()
  if (!existsSync(p)) {
    loadError = new Error(`The native engine is not built (${p} is missing). Run "npm install" (or "npm run build:native").`)
    throw loadError
  }
  try {
    cached = nodeRequire(p)
  } catch (err) {
    loadError = new Error(`The native engine failed to load: ${(err as Error).message}`)
    throw loadError
  }
  return cached as T
}

/** Backends compiled into the addon ('cpu', 'cuda'); empty when it cannot be loaded. */
export function engineBackends(): string[] {
  try {
    const a = loadAddon<{ backends?: () => string[] }>()
    return typeof a.backends === 'function' ? a.backends() : ['cpu']
  } catch {
    return []
  }
}
