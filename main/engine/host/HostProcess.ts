// Starting the engine host process. main/engine/host/EngineSupervisor.ts talks to a HostProcess; where it comes
// from is a HostSpawner: forkHost (a Node child process: browser mode, the CLI, tests) or utilityHost.ts (an
// Electron utility process: the desktop app; only main/index.ts imports it).
import { fork } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { appRoot } from '../../paths'
import type { FromHost, ToHost } from './protocol'

export interface HostProcess {
  readonly pid: number | undefined
  send(msg: ToHost): void
  onMessage(listener: (msg: FromHost) => void): void
  /** Called once when the process has exited (code and/or signal). */
  onExit(listener: (code: number | null, signal: string | null) => void): void
  kill(signal?: NodeJS.Signals): void
}

export type HostSpawner = () => HostProcess

/** The host's entry file: the built out/main/engineHost.js, or the TypeScript source when main itself runs from
 *  source (vitest, tsx), which then needs `--import tsx`. */
export function hostEntry(): { file: string; execArgv: string[] } {
  const fromSource = import.meta.url.endsWith('.ts')
  const root = appRoot()
  if (fromSource) return { file: join(root, 'main', 'engine', 'host', 'engineHostMain.ts'), execArgv: ['--import', 'tsx'] }
  const built = join(root, 'out', 'main', 'engineHost.js')
  if (!existsSync(built) && existsSync(join(root, 'main', 'engine', 'host', 'engineHostMain.ts'))) {
    return { file: join(root, 'main', 'engine', 'host', 'engineHostMain.ts'), execArgv: ['--import', 'tsx'] }
  }
  return { file: built, execArgv: [] }
}

/** A Node child process with an IPC channel (JSON messages). */
export function forkHost(options: { env?: NodeJS.ProcessEnv } = {}): HostSpawner {
  return () => {
    const { file, execArgv } = hostEntry()
    const child = fork(file, [], {
      cwd: appRoot(),
      execArgv,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'json',
    })
    return {
      get pid() {
        return child.pid
      },
      send: (msg) => {
        if (child.connected) child.send(msg)
      },
      onMessage: (listener) => child.on('message', (m) => listener(m as FromHost)),
      onExit: (listener) => child.once('exit', (code, signal) => listener(code, signal)),
      kill: (signal = 'SIGTERM') => {
        child.kill(signal)
      },
    }
  }
}
