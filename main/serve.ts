// `npm run serve`: browser mode. The same app (database, settings, engine) served over HTTP from plain
// Node; prints the URL with its one-time token. Options: --host (default 127.0.0.1), --port (default 5517,
// 0 = any free port), --data-dir (default: the desktop app's data folder, so both modes share data).
import { join } from 'node:path'
import { createAppContext } from './context'
import { defaultDataDir } from './dataDir'
import { createDispatcher } from './dispatch'
import { engineBackends } from './engine/loadAddon'
import { createHandlers } from './handlers'
import { appRoot } from './paths'
import { startServer } from './server'
import { trainingServiceOf } from './training/trainingHandlers'
import { createConfSettings } from './settings/confSettings'

export interface ServeArgs {
  host: string
  port: number
  dataDir: string
}

export function parseServeArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): ServeArgs {
  const get = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`)
    if (i >= 0) return argv[i + 1]
    const eq = argv.find((a) => a.startsWith(`--${name}=`))
    return eq?.slice(name.length + 3)
  }
  const port = Number(get('port') ?? env.QT_PORT ?? 5517)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be 0..65535, got ${get('port')}`)
  return { host: get('host') ?? env.QT_HOST ?? '127.0.0.1', port, dataDir: get('data-dir') ?? env.QT_DATA_DIR ?? defaultDataDir() }
}

export async function serve(args: ServeArgs): Promise<{ url: string; close: () => Promise<void> }> {
  const ctx = createAppContext({ mode: 'browser', dataDir: args.dataDir, settings: createConfSettings(args.dataDir) })
  const dispatch = createDispatcher(createHandlers(ctx, { engineBackends }))
  const interrupted = ctx.status.state === 'ready' ? trainingServiceOf(ctx).recovered : []
  if (interrupted.length > 0) {
    console.log(`Training run${interrupted.length > 1 ? 's' : ''} ${interrupted.map((id) => `#${id}`).join(', ')} stopped when the app last quit; the Training page offers to resume.`)
  }
  const server = await startServer({ dispatch, events: ctx.events, staticDir: join(appRoot(), 'out', 'renderer'), host: args.host, port: args.port })
  ctx.onClose(() => server.close())
  return { url: server.url, close: () => ctx.close() }
}

async function main(): Promise<void> {
  let args: ServeArgs
  try {
    args = parseServeArgs(process.argv.slice(2))
  } catch (err) {
    console.error((err as Error).message)
    process.exit(2)
  }
  const running = await serve(args).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'EADDRINUSE') console.error(`Port ${args.port} is in use. Start with --port <another> (or --port 0 for any free port).`)
    else console.error(err)
    process.exit(1)
  })
  console.log(`QA Tuner (browser mode), data in ${args.dataDir}`)
  console.log(`Open: ${running.url}`)
  let stopping = false
  const stop = () => {
    if (stopping) return
    stopping = true
    void running.close().finally(() => process.exit(0))
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
}

if (process.argv[1] && /serve\.(js|ts)$/.test(process.argv[1])) void main()
