// The chat's side of the engine host (main/engine/host): one job at a time (chat answers, compare answers and
// "Did it learn?" checks queue behind each other), each job holding the GPU lease while it runs so a training run
// cannot start under it (and the chat refuses while a run trains).
//
// The base model stays resident in the host between jobs. Adapters are attached to it by 'adapter.load' and kept
// (a few, least recently used dropped), so switching between the base model and any adapter, or answering with
// both in compare mode, never reloads the base weights. Load settings: when the same model folder is already
// resident on the wanted device it is used as it is (whatever precision it was loaded with); otherwise the run's
// own settings (precision, device) when an adapter of a run is asked for, else NF4 on a GPU and fp32 on the CPU
// (NF4 there too for models over 2B parameters).
import { statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import type { AppErrorInfo } from '../../preload/contract'
import type { AppContext } from '../context'
import type { EngineSupervisor } from '../engine/host/EngineSupervisor'
import { HostExitedError, type ModelLoadParams } from '../engine/host/protocol'
import { EngineError, type GenerateResult, type ModelConfig, type SamplingConfig } from '../engine/types'
import { AppError } from '../errors'
import type { ModelForUse } from '../models/modelRegistry'
import { pickDevice } from '../training/estimate'
import { ACTIVE_STATUSES } from '../training/runView'
import type { ResolvedAdapter } from './adapters'

/** Adapters kept attached to the resident model. */
const MAX_ADAPTERS = 6

export interface LoadedModel {
  device: string
  config: ModelConfig
  /** False when this call loaded the weights (the first time, or another model was resident). */
  reused: boolean
}

export interface EngineJob {
  /** Loads (or keeps) the model; `hint`: the adapter that will be used, for its run's load settings. */
  load(model: ModelForUse, hint: ResolvedAdapter | null, onFraction?: (f: number) => void): Promise<LoadedModel>
  /** The adapter's id in the host (attached once, then reused). */
  adapter(dir: string): Promise<number>
  /** Streams each token to onToken; resolves with all of them. */
  generate(promptIds: number[], sampling: SamplingConfig, adapterId: number | null, onToken: (id: number) => void): Promise<GenerateResult>
  readonly signal: AbortSignal
}

/** An engine failure in plain words, with a stable code (for answers and checks). */
export function engineErrorInfo(err: unknown): AppErrorInfo {
  if (err instanceof AppError) return { code: err.code, message: err.message, ...(err.details === undefined ? {} : { details: err.details }) }
  if (err instanceof HostExitedError) return { code: 'ENGINE_ERROR', message: `${err.message}. Send the question again to restart the engine.` }
  if (err instanceof EngineError) {
    if (err.code === 'OUT_OF_MEMORY') return { code: 'OUT_OF_MEMORY', message: `${err.message}. Close other programs using the GPU, lower "max new tokens", or pick a smaller model.` }
    if (err.code === 'CANCELLED') return { code: 'CANCELLED', message: err.message }
    if (err.code === 'ENGINE_UNAVAILABLE') return { code: 'ENGINE_ERROR', message: `${err.message} Run \`npm run build:native\` (or reinstall) and restart the app.` }
    return { code: 'ENGINE_ERROR', message: err.message }
  }
  return { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) }
}

function fileStamp(dir: string): string {
  try {
    const s = statSync(join(dir, 'adapter_model.safetensors'))
    return `${s.size}:${s.mtimeMs}`
  } catch {
    return 'missing'
  }
}

export class ChatEngine {
  private tail: Promise<unknown> = Promise.resolve()
  private queued = 0
  /** adapter folder + file stamp -> host adapter id, most recently used last. */
  private readonly adapters = new Map<string, number>()

  constructor(
    private readonly ctx: AppContext,
    private readonly engine: EngineSupervisor,
  ) {
    engine.onExit(() => this.adapters.clear())
  }

  /** Jobs waiting or running. */
  get busy(): boolean {
    return this.queued > 0
  }

  /** Refuses (BUSY, saying which run) while a training run is active or holds the engine. */
  checkAvailable(): void {
    const active = this.ctx.repos().runs.listByStatus(ACTIVE_STATUSES)
    const holder = this.engine.holder
    const runId = active[0]?.id ?? (holder?.kind === 'training' ? holder.runId : null)
    if (runId !== null) {
      const name = active[0]?.name
      throw new AppError(
        'BUSY',
        `Training run #${runId}${name ? ` "${name}"` : ''} is using the engine (GPU). The chat can answer as soon as it has finished, or stop it on the Training page.`,
        { holder: { kind: 'training', runId } },
      )
    }
  }

  /**
   * Runs `fn` after every earlier job, holding the engine lease for it. `onStart` is called when it starts (after
   * waiting, if it had to). An aborted signal before the start skips the job (rejects CANCELLED).
   */
  run<T>(label: string, signal: AbortSignal, fn: (job: EngineJob) => Promise<T>, onStart?: () => void): Promise<T> {
    this.queued++
    const job = this.tail.then(async () => {
      if (signal.aborted) throw new EngineError('CANCELLED', 'Stopped before it started.')
      this.checkAvailable()
      const lease = this.engine.acquire({ kind: 'chat', sessionId: 'chat', label })
      try {
        onStart?.()
        return await fn(this.job(signal))
      } finally {
        lease.release()
      }
    })
    const settle = () => {
      this.queued--
    }
    this.tail = job.then(settle, settle)
    return job
  }

  private job(signal: AbortSignal): EngineJob {
    return {
      signal,
      load: (model, hint, onFraction) => this.load(model, hint, signal, onFraction),
      adapter: (dir) => this.adapter(dir),
      generate: (promptIds, sampling, adapterId, onToken) =>
        this.engine.call('generate', { promptIds, sampling, adapterId }, { signal, onEvent: (e) => onToken(e.token) }),
    }
  }

  private async load(model: ModelForUse, hint: ResolvedAdapter | null, signal: AbortSignal, onFraction?: (f: number) => void): Promise<LoadedModel> {
    const devices = await this.engine.devices()
    const known = (d: string | null | undefined): d is string =>
      !!d && (d === 'cpu' || devices.some((x) => x.backend === 'cuda' && `cuda:${x.index}` === d))
    const device = known(hint?.device) ? hint!.device! : pickDevice(undefined, model.source === 'demo' ? 'cpu' : 'any', this.ctx.settings.get().device, devices)
    if (!known(device)) {
      throw new AppError('UNSUPPORTED', `The device ${device} chosen in Settings is not available (the engine sees: ${devices.map((d) => (d.backend === 'cpu' ? 'cpu' : `cuda:${d.index}`)).join(', ')}). Choose another device in Settings.`)
    }
    const resident = await this.engine.call('model.status', undefined)
    let params: ModelLoadParams
    if (resident && resolve(resident.folder) === resolve(model.path) && resident.device === device) {
      params = { folder: resident.folder, device, quant: resident.quant, doubleQuant: resident.doubleQuant, computeDtype: resident.computeDtype }
    } else if (hint?.settings) {
      params = { folder: model.path, device, quant: hint.settings.quant, doubleQuant: hint.settings.doubleQuant, computeDtype: hint.settings.computeDtype }
    } else {
      const big = model.details.parameters > 2e9
      params = { folder: model.path, device, quant: device === 'cpu' && !big ? 'none' : 'nf4', doubleQuant: true, computeDtype: 'auto' }
    }
    const r = await this.engine.call('model.load', params, { signal, onEvent: (p) => onFraction?.(p.fraction) })
    if (!r.reused) this.adapters.clear()
    return { device: r.device, config: r.config, reused: r.reused }
  }

  private async adapter(dir: string): Promise<number> {
    const key = `${resolve(dir)}|${fileStamp(dir)}`
    const hit = this.adapters.get(key)
    if (hit !== undefined) {
      this.adapters.delete(key)
      this.adapters.set(key, hit)
      return hit
    }
    const { adapterId } = await this.engine.call('adapter.load', { dir })
    this.adapters.set(key, adapterId)
    while (this.adapters.size > MAX_ADAPTERS) {
      const [oldKey, oldId] = this.adapters.entries().next().value as [string, number]
      this.adapters.delete(oldKey)
      await this.engine.call('adapter.dispose', { adapterId: oldId }).catch(() => undefined)
    }
    return adapterId
  }

  /** Forgets attached adapters (after a DISPOSED answer: the host freed them). */
  forgetAdapters(): void {
    this.adapters.clear()
  }
}
