// Entry of the engine host process (built to out/main/engineHost.js; run from source with `--import tsx`).
// Started by main as an Electron utility process (process.parentPort) or a Node child process (process.send).
// It exits when its parent goes away, so a killed app never leaves an orphan holding the GPU.
import { addon } from '../native'
import type { FromHost, ToHost } from './protocol'
import { HostRuntime } from './hostRuntime'

interface ParentPort {
  on(event: 'message', listener: (e: { data: unknown }) => void): void
  postMessage(msg: unknown): void
}

const parentPort = (process as unknown as { parentPort?: ParentPort }).parentPort

function send(msg: FromHost): void {
  if (parentPort) parentPort.postMessage(msg)
  else if (process.send && process.connected) process.send(msg)
}

const runtime = new HostRuntime(send)
const onMessage = (msg: unknown) => {
  if (msg && typeof msg === 'object' && 't' in msg) runtime.handle(msg as ToHost)
}

// Ctrl+C in a terminal reaches the whole process group: main decides (a graceful stop), not the host.
process.on('SIGINT', () => undefined)

if (parentPort) {
  parentPort.on('message', (e) => onMessage(e.data))
} else if (process.send) {
  process.on('message', onMessage)
  process.on('disconnect', () => process.exit(0))
} else {
  console.error('The engine host must be started by QA Tuner (no parent channel).')
  process.exit(2)
}

let engineVersion = ''
let backends: string[] = []
try {
  engineVersion = addon().version
  backends = addon().backends()
} catch (err) {
  // Requests will report ENGINE_UNAVAILABLE with loadAddon's explanation.
  console.error(`[engine host] ${(err as Error).message}`)
}
send({ t: 'ready', pid: process.pid, engineVersion, backends })
