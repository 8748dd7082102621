// `npm start`: launch the desktop app after `electron-vite build`.
//
// 1. The Electron binary is downloaded lazily by the electron package; where its host is blocked the
//    binary is missing. Then we say so, explain ELECTRON_MIRROR, and start browser mode instead.
// 2. better-sqlite3 is not an N-API module: the copy built for Node (tests, browser mode) does not load
//    in Electron. Once per Electron version we build a second copy against Electron's headers into
//    node_modules/.qt-electron/<version>/ (main/index.ts passes it to better-sqlite3 as nativeBinding).
import { spawn, spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, copyFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { appRoot } from './paths'
import { parseServeArgs, serve } from './serve'

const root = appRoot()
const electronPkg = join(root, 'node_modules', 'electron')

function electronBinary(): string | null {
  const pathFile = join(electronPkg, 'path.txt')
  if (!existsSync(pathFile)) return null
  const bin = join(electronPkg, 'dist', readFileSync(pathFile, 'utf8').trim())
  return existsSync(bin) ? bin : null
}

function tryDownloadElectron(): boolean {
  console.log('[start] The Electron binary is missing; trying to download it ...')
  const r = spawnSync(process.execPath, [join(electronPkg, 'install.js')], { stdio: 'inherit', timeout: 180_000 })
  return r.status === 0 && electronBinary() !== null
}

function ensureElectronSqlite(electronVersion: string): boolean {
  const target = join(root, 'node_modules', '.qt-electron', electronVersion, 'better_sqlite3.node')
  if (existsSync(target)) return true
  console.log(`[start] Building better-sqlite3 for Electron ${electronVersion} (once; needs Electron's headers from the network) ...`)
  const work = mkdtempSync(join(tmpdir(), 'qt-sqlite-'))
  try {
    cpSync(join(root, 'node_modules', 'better-sqlite3'), work, { recursive: true, filter: (p) => !p.includes(`${join('better-sqlite3', 'build')}`) })
    const env = { ...process.env }
    // npm exports npm_config_nodedir (e.g. nodedir=/usr in ~/.npmrc), which silently builds for Node instead.
    for (const k of Object.keys(env)) if (k.toLowerCase().startsWith('npm_config_')) delete env[k]
    const gyp = join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')
    const r = spawnSync(
      process.execPath,
      [gyp, 'rebuild', '--release', `--target=${electronVersion}`, '--runtime=electron', '--dist-url=https://electronjs.org/headers'],
      { cwd: work, stdio: 'inherit', env },
    )
    const built = join(work, 'build', 'Release', 'better_sqlite3.node')
    if (r.status !== 0 || !existsSync(built)) return false
    mkdirSync(join(target, '..'), { recursive: true })
    copyFileSync(built, target)
    return true
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

async function fallbackToBrowser(reason: string): Promise<void> {
  console.log(`\n[start] ${reason}`)
  console.log('[start] Starting browser mode instead (the same app in your web browser).\n')
  const running = await serve(parseServeArgs(process.argv.slice(2)))
  console.log(`Open: ${running.url}`)
  const stop = () => void running.close().finally(() => process.exit(0))
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
}

async function main(): Promise<void> {
  let bin = electronBinary()
  if (!bin && process.env.QT_NO_ELECTRON_DOWNLOAD !== '1') bin = tryDownloadElectron() ? electronBinary() : null
  if (!bin) {
    return fallbackToBrowser(
      'The Electron binary is not installed: its download (from github.com) was blocked or skipped.\n' +
        '  Behind a firewall or proxy, point ELECTRON_MIRROR at a mirror you can reach and reinstall, e.g.\n' +
        '    ELECTRON_MIRROR=https://npmmirror.com/mirrors/electron/ node node_modules/electron/install.js\n' +
        '  then run `npm start` again.',
    )
  }
  const version = (JSON.parse(readFileSync(join(electronPkg, 'package.json'), 'utf8')) as { version: string }).version
  if (!ensureElectronSqlite(version)) {
    return fallbackToBrowser(
      `Could not build better-sqlite3 for Electron ${version} (it needs Electron's headers from electronjs.org and a C++ compiler).`,
    )
  }
  const child = spawn(bin, [root, ...process.argv.slice(2)], { stdio: 'inherit' })
  child.on('exit', (code) => process.exit(code ?? 0))
}

void main()
