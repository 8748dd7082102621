// Where the app's own files are, the same way from source (vitest/tsx), from out/main (built) and from
// inside an Electron asar: walk up from this module to the folder holding our package.json.
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

let cachedRoot: string | undefined

export function appRoot(): string {
  if (cachedRoot) return cachedRoot
  if (process.env.QT_APP_ROOT) return (cachedRoot = process.env.QT_APP_ROOT)
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const pkg = join(dir, 'package.json')
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'qa-tuner') return (cachedRoot = dir)
      } catch {
        /* keep walking */
      }
    }
    const up = dirname(dir)
    if (up === dir) throw new Error('Cannot locate the application folder (package.json of qa-tuner)')
    dir = up
  }
}

/** resources/ (sample data, demo model, icons). */
export function resourcesDir(): string {
  return join(appRoot(), 'resources')
}

/** A path inside the app that may be unpacked from the asar archive (native addons). */
export function unpackedPath(p: string): string {
  return p.replace(/app\.asar([\\/])/, 'app.asar.unpacked$1')
}

export function appVersion(): string {
  return (JSON.parse(readFileSync(join(appRoot(), 'package.json'), 'utf8')) as { version: string }).version
}
