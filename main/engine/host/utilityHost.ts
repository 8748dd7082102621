// The desktop app's engine host: an Electron utility process (its own V8 and address space, killed with the app).
// Only main/index.ts imports this file (it is allowed to import 'electron').
import { utilityProcess } from 'electron'
import { hostEntry, type HostSpawner } from './HostProcess'
import type { FromHost } from './protocol'

export function utilityHost(): HostSpawner {
  return () => {
    const { file, execArgv } = hostEntry()
    const child = utilityProcess.fork(file, [], { serviceName: 'QA Tuner engine', stdio: 'inherit', execArgv })
    let exited = false
    return {
      get pid() {
        return child.pid
      },
      send: (msg) => {
        if (!exited) child.postMessage(msg)
      },
      onMessage: (listener) => child.on('message', (m: unknown) => listener(m as FromHost)),
      onExit: (listener) =>
        child.once('exit', (code: number) => {
          exited = true
          // Electron reports only a code; a crash (signal) shows as a non-zero code.
          listener(code, null)
        }),
      kill: () => {
        child.kill()
      },
    }
  }
}
