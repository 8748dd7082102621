// What runs inside the engine host process: the native engine facade behind the message protocol (protocol.ts).
// Holds the one resident model and its trainers/adapters by handle; runs requests concurrently as the facade
// allows (a second operation on the busy model rejects with BUSY); cancel aborts a request's AbortSignal.
import { devices, loadModel } from '../Engine'
import type { Adapter } from '../Adapter'
import type { Model } from '../Model'
import type { Trainer } from '../Trainer'
import { EngineError } from '../types'
import type { FromHost, HostMethod, HostMethods, HostParams, HostResult, ModelLoadParams, ResidentModel, ToHost, WireError } from './protocol'
import { HOST_METHODS } from './protocol'

type Impl = { [M in HostMethod]: (params: HostParams<M>, ctx: { signal: AbortSignal; emit: (data: HostMethods[M]['event']) => void }) => Promise<HostResult<M>> }

function toWire(err: unknown): WireError {
  if (err instanceof EngineError) return { code: err.code, message: err.message, ...(err.file ? { file: err.file, line: err.line } : {}) }
  const e = err as { code?: unknown; message?: unknown }
  if (e && typeof e.code === 'string' && typeof e.message === 'string') {
    const code = ['ENOSPC', 'EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'EEXIST', 'EISDIR'].includes(e.code) ? 'IO' : 'INTERNAL'
    return { code, message: e.message }
  }
  return { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) }
}

export class HostRuntime {
  private model: Model | null = null
  private modelInfo: Required<ModelLoadParams> | null = null
  private readonly trainers = new Map<number, Trainer>()
  private readonly adapters = new Map<number, Adapter>()
  private readonly running = new Map<number, AbortController>()
  private nextHandle = 1

  constructor(private readonly send: (msg: FromHost) => void) {}

  handle(msg: ToHost): void {
    if (msg.t === 'cancel') {
      this.running.get(msg.id)?.abort()
      return
    }
    if (msg.t !== 'req') return
    const { id, method } = msg
    if (!(HOST_METHODS as readonly string[]).includes(method)) {
      this.send({ t: 'res', id, ok: false, error: { code: 'UNKNOWN_METHOD', message: `Unknown engine host method: ${method}` } })
      return
    }
    const ac = new AbortController()
    this.running.set(id, ac)
    const impl = this.impl[method as HostMethod] as (p: unknown, c: { signal: AbortSignal; emit: (d: unknown) => void }) => Promise<unknown>
    const emit = (data: unknown) => this.send({ t: 'event', id, data })
    Promise.resolve()
      .then(() => impl(msg.params, { signal: ac.signal, emit }))
      .then(
        (value) => this.send({ t: 'res', id, ok: true, value: value === undefined ? null : value }),
        (err: unknown) => this.send({ t: 'res', id, ok: false, error: toWire(err) }),
      )
      .finally(() => this.running.delete(id))
  }

  private needModel(): Model {
    if (!this.model || this.model.disposed) throw new EngineError('INVALID_ARGUMENT', 'No model is loaded in the engine. Load one first.')
    return this.model
  }

  private trainer(id: number): Trainer {
    const t = this.trainers.get(id)
    if (!t || t.disposed) throw new EngineError('DISPOSED', `Trainer ${id} does not exist any more (the model was replaced or the trainer freed).`)
    return t
  }

  private adapter(id: number): Adapter {
    const a = this.adapters.get(id)
    if (!a || a.disposed) throw new EngineError('DISPOSED', `Adapter ${id} does not exist any more (the model was replaced or the adapter freed).`)
    return a
  }

  private resident(): ResidentModel | null {
    if (!this.model || this.model.disposed || !this.modelInfo) return null
    return { ...this.modelInfo, config: this.model.config, memory: this.model.memory() }
  }

  private async unload(): Promise<void> {
    const m = this.model
    this.model = null
    this.modelInfo = null
    this.trainers.clear()
    this.adapters.clear()
    if (m && !m.disposed) await m.close()
  }

  private readonly impl: Impl = {
    devices: () => devices(),
    'model.load': async (p, { signal, emit }) => {
      const want: Required<ModelLoadParams> = {
        folder: p.folder, device: p.device, quant: p.quant ?? 'nf4', doubleQuant: p.doubleQuant ?? true, computeDtype: p.computeDtype ?? 'auto',
      }
      const cur = this.modelInfo
      if (cur && this.model && !this.model.disposed && JSON.stringify(cur) === JSON.stringify(want)) return { ...this.resident()!, reused: true }
      await this.unload()
      const model = await loadModel({ ...want, signal, onProgress: (pr) => emit(pr) })
      this.model = model
      this.modelInfo = want
      return { ...this.resident()!, reused: false }
    },
    'model.unload': () => this.unload(),
    'model.status': async () => this.resident(),
    'adapter.load': async (p) => {
      const a = await this.needModel().loadAdapter(p.dir)
      const adapterId = this.nextHandle++
      this.adapters.set(adapterId, a)
      return { adapterId, config: a.config }
    },
    'adapter.dispose': async (p) => {
      const a = this.adapters.get(p.adapterId)
      this.adapters.delete(p.adapterId)
      if (a && !a.disposed) a.dispose()
    },
    generate: async (p, { signal, emit }) => {
      const adapter = p.adapterId == null ? undefined : this.adapter(p.adapterId)
      return this.needModel().generate(p.promptIds, p.sampling ?? {}, { adapter, signal, onToken: (token) => emit({ token }) })
    },
    'trainer.create': async (p) => {
      const trainer = await this.needModel().createTrainer(p.config, p.trainSet)
      const trainerId = this.nextHandle++
      const adapterId = this.nextHandle++
      this.trainers.set(trainerId, trainer)
      this.adapters.set(adapterId, trainer.adapter)
      return { trainerId, adapterId, stepsPerEpoch: trainer.stepsPerEpoch, totalSteps: trainer.totalSteps, warmupSteps: trainer.warmupSteps, stepCount: trainer.stepCount }
    },
    'trainer.step': async (p, { signal, emit }) => {
      const t = this.trainer(p.trainerId)
      const model = t.model
      const out = await t.step(p.k, (m) => {
        const mem = model.memory()
        emit({ ...m, memoryBytes: mem.weightsBytes + mem.loraBytes + mem.activationsBytes, deviceTotalBytes: mem.deviceTotalBytes })
      }, { signal })
      return { steps: out.metrics.length, cancelled: out.cancelled, stepCount: t.stepCount }
    },
    'trainer.evaluate': async (p, { signal }) => ({ loss: await this.trainer(p.trainerId).evaluate(p.set, { signal }) }),
    'trainer.saveCheckpoint': (p) => this.trainer(p.trainerId).saveCheckpoint(p.dir),
    'trainer.loadCheckpoint': async (p) => {
      const t = this.trainer(p.trainerId)
      await t.loadCheckpoint(p.dir)
      return { stepCount: t.stepCount }
    },
    'trainer.exportAdapter': (p) => this.trainer(p.trainerId).exportAdapter(p.dir, p.meta ?? {}),
    'trainer.dispose': async (p) => {
      const t = this.trainers.get(p.trainerId)
      this.trainers.delete(p.trainerId)
      if (t && !t.disposed) await t.close()
    },
  }
}
