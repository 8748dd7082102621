// main's side of the engine host: starts the process on first use, sends typed requests and routes their events
// and responses, notices when the process dies (exit code/signal, out of memory, driver fault), rejects what was
// running with a HostExitedError that says so, and starts a fresh process on the next call. It never throws
// synchronously and a dead host never takes main down.
//
// GPU sharing: the host keeps one model resident and one user holds it at a time — a training run or a chat.
// acquire() hands out that hold (BUSY naming the holder otherwise); status() tells everyone who holds it.
import type { EngineStatus, GpuHolder } from '../../../preload/contract'
import { AppError } from '../../errors'
import type { DeviceInfo } from '../types'
import { EngineError } from '../types'
import type { HostProcess, HostSpawner } from './HostProcess'
import {
  describeExit, HostExitedError, type FromHost, type HostEvent, type HostExit, type HostMethod, type HostParams, type HostResult, type ResidentModel,
} from './protocol'

interface Pending {
  method: string
  onEvent?: (data: unknown) => void
  resolve: (v: unknown) => void
  reject: (e: unknown) => void
  cleanup: () => void
}

export interface CallOptions<M extends HostMethod> {
  onEvent?: (data: HostEvent<M>) => void
  signal?: AbortSignal
}

export interface GpuLease {
  readonly holder: NonNullable<GpuHolder>
  release(): void
}

export interface SupervisorOptions {
  /** Called whenever the status changes (state, holder, resident model, devices). */
  onStatus?: (s: EngineStatus) => void
  log?: (msg: string) => void
  /** How long a start may take before it counts as failed (default 60 s). */
  startTimeoutMs?: number
}

export class EngineSupervisor {
  private proc: HostProcess | null = null
  private starting: Promise<HostProcess> | null = null
  private state: EngineStatus['host']['state'] = 'stopped'
  private readonly pending = new Map<number, Pending>()
  private nextId = 1
  private restarts = 0
  private started = 0
  private lastExit: HostExit | null = null
  private backends: string[] = []
  private devicesCache: { at: number; list: DeviceInfo[] } | null = null
  private resident: { folder: string; device: string } | null = null
  private holderValue: NonNullable<GpuHolder> | null = null
  private closed = false
  /** Set while stop() waits for the process to exit (an exit then is not a crash). */
  private stopping: (() => void) | null = null
  private readonly exitListeners = new Set<(exit: HostExit) => void>()

  constructor(private readonly spawn: HostSpawner, private readonly options: SupervisorOptions = {}) {}

  /** Sends one request; starts the host first when it is not running. Rejects with EngineError (engine failures)
   *  or HostExitedError (the process died meanwhile). Aborting `signal` asks the host to cancel it. */
  async call<M extends HostMethod>(method: M, params: HostParams<M>, options: CallOptions<M> = {}): Promise<HostResult<M>> {
    if (this.closed) throw new EngineError('DISPOSED', 'The engine is shut down (the app is closing).')
    const proc = await this.ensure()
    const id = this.nextId++
    return new Promise<HostResult<M>>((resolve, reject) => {
      const onAbort = () => proc.send({ t: 'cancel', id })
      const cleanup = () => options.signal?.removeEventListener('abort', onAbort)
      this.pending.set(id, { method, onEvent: options.onEvent as ((d: unknown) => void) | undefined, resolve: resolve as (v: unknown) => void, reject, cleanup })
      proc.send({ t: 'req', id, method, params })
      if (options.signal?.aborted) onAbort()
      else options.signal?.addEventListener('abort', onAbort, { once: true })
    }).then((value) => {
      this.track(method, value)
      return value
    })
  }

  /** The devices the engine sees (cached for a few seconds; starts the host). */
  async devices(maxAgeMs = 10_000): Promise<DeviceInfo[]> {
    if (this.devicesCache && Date.now() - this.devicesCache.at < maxAgeMs) return this.devicesCache.list
    const list = await this.call('devices', undefined)
    this.devicesCache = { at: Date.now(), list }
    this.emitStatus()
    return list
  }

  /** Takes the GPU for a training run or a chat; BUSY (with who holds it) when someone else has it. */
  acquire(holder: NonNullable<GpuHolder>): GpuLease {
    const cur = this.holderValue
    if (cur && JSON.stringify(cur) !== JSON.stringify(holder)) {
      const who = cur.kind === 'training' ? `training run #${cur.runId}` : `the chat "${cur.label}"`
      throw new AppError('BUSY', `The engine is in use by ${who}. Wait until it finishes or stop it first.`, { holder: cur })
    }
    this.holderValue = holder
    this.emitStatus()
    let released = false
    return {
      holder,
      release: () => {
        if (released) return
        released = true
        if (JSON.stringify(this.holderValue) === JSON.stringify(holder)) {
          this.holderValue = null
          this.emitStatus()
        }
      },
    }
  }

  get holder(): GpuHolder {
    return this.holderValue
  }

  /** The running host's process id (null when none runs). */
  get pid(): number | null {
    return this.proc?.pid ?? null
  }

  /** Called with every unexpected exit (after pending requests were rejected). */
  onExit(listener: (exit: HostExit) => void): () => void {
    this.exitListeners.add(listener)
    return () => this.exitListeners.delete(listener)
  }

  status(): EngineStatus {
    return {
      host: { state: this.state, pid: this.proc?.pid ?? null, restarts: this.restarts, lastExit: this.lastExit },
      backends: this.backends,
      devices: (this.devicesCache?.list ?? []).map((d) => ({ backend: d.backend, index: d.index, name: d.name, totalBytes: d.totalBytes, freeBytes: d.freeBytes })),
      holder: this.holderValue,
      model: this.resident,
    }
  }

  /** Stops the host (a graceful exit; pending requests reject). Later calls start a new one unless closed. */
  async stop(): Promise<void> {
    const proc = this.proc ?? (this.starting ? await this.starting.catch(() => null) : null)
    if (!proc) return
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000)
      this.stopping = () => {
        clearTimeout(timer)
        resolve()
      }
      proc.kill('SIGTERM')
    })
  }

  async close(): Promise<void> {
    this.closed = true
    await this.stop()
  }

  private ensure(): Promise<HostProcess> {
    if (this.proc) return Promise.resolve(this.proc)
    if (!this.starting) {
      this.starting = this.start().finally(() => {
        this.starting = null
      })
    }
    return this.starting
  }

  private start(): Promise<HostProcess> {
    if (this.started > 0) this.restarts++
    this.started++
    this.state = 'starting'
    this.emitStatus()
    return new Promise<HostProcess>((resolve, reject) => {
      let proc: HostProcess
      try {
        proc = this.spawn()
      } catch (err) {
        this.state = 'crashed'
        this.emitStatus()
        reject(new EngineError('ENGINE_UNAVAILABLE', `The engine process could not be started: ${(err as Error).message}`))
        return
      }
      let ready = false
      const timer = setTimeout(() => {
        if (ready) return
        proc.kill('SIGKILL')
        reject(new EngineError('ENGINE_UNAVAILABLE', 'The engine process did not start in time.'))
      }, this.options.startTimeoutMs ?? 60_000)
      proc.onMessage((msg) => {
        if (msg.t === 'ready') {
          ready = true
          clearTimeout(timer)
          this.proc = proc
          this.backends = msg.backends
          this.state = 'ready'
          this.emitStatus()
          resolve(proc)
          return
        }
        this.onMessage(msg)
      })
      proc.onExit((code, signal) => {
        clearTimeout(timer)
        this.onProcessExit(proc, code, signal)
        if (!ready) reject(new EngineError('ENGINE_UNAVAILABLE', `The engine process stopped while starting: ${describeExit(code, signal)}.`))
      })
    })
  }

  private onMessage(msg: FromHost): void {
    if (msg.t === 'event') {
      const p = this.pending.get(msg.id)
      try {
        p?.onEvent?.(msg.data)
      } catch (err) {
        this.options.log?.(`[engine] event listener failed: ${(err as Error).message}`)
      }
      return
    }
    if (msg.t !== 'res') return
    const p = this.pending.get(msg.id)
    if (!p) return
    this.pending.delete(msg.id)
    p.cleanup()
    if (msg.ok) p.resolve(msg.value)
    else {
      const e = msg.error
      const code = e.code === 'HOST_EXITED' || e.code === 'UNKNOWN_METHOD' ? 'INTERNAL' : e.code
      p.reject(new EngineError(code, e.message, { file: e.file, line: e.line }))
    }
  }

  private onProcessExit(proc: HostProcess, code: number | null, signal: string | null): void {
    const wasCurrent = this.proc === proc
    if (wasCurrent) this.proc = null
    this.resident = null
    this.devicesCache = null
    const intended = this.stopping !== null || this.closed
    const during = [...new Set([...this.pending.values()].map((p) => p.method))].join(', ') || null
    const exit: HostExit = { code, signal, reason: describeExit(code, signal), during, at: new Date().toISOString() }
    if (!intended) this.lastExit = exit
    this.state = intended ? 'stopped' : 'crashed'
    const pending = [...this.pending.values()]
    this.pending.clear()
    for (const p of pending) {
      p.cleanup()
      p.reject(intended ? new EngineError('CANCELLED', 'The engine was shut down.') : new HostExitedError(exit))
    }
    const stopped = this.stopping
    this.stopping = null
    stopped?.()
    if (!intended) {
      this.options.log?.(`[engine] the engine process stopped unexpectedly: ${exit.reason}${during ? ` (during ${during})` : ''}`)
      for (const l of this.exitListeners) {
        try {
          l(exit)
        } catch (err) {
          this.options.log?.(`[engine] exit listener failed: ${(err as Error).message}`)
        }
      }
    }
    this.emitStatus()
  }

  /** Keeps the status's resident model in step with what the host reports. */
  private track(method: string, value: unknown): void {
    if (method === 'model.load') {
      const r = value as ResidentModel
      this.resident = { folder: r.folder, device: r.device }
      this.emitStatus()
    } else if (method === 'model.unload') {
      this.resident = null
      this.emitStatus()
    }
  }

  private emitStatus(): void {
    try {
      this.options.onStatus?.(this.status())
    } catch (err) {
      this.options.log?.(`[engine] status listener failed: ${(err as Error).message}`)
    }
  }
}
