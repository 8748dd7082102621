// The raw addon surface (native/addon) as TS types, error conversion and cancel plumbing. Only the facade
// (Engine.ts, Model.ts, Adapter.ts, Trainer.ts) uses this file.
import { loadAddon } from './loadAddon'
import {
  ENGINE_ERROR_CODES, EngineError, type DatasetInfo, type DeviceInfo, type GenerateResult, type LoadProgress, type LoraConfig,
  type MemoryReport, type ModelConfig, type ModelInspection, type StepMetrics, type StepOutcome,
} from './types'

export interface NativeCancelToken {
  cancel(): void
  readonly cancelled: boolean
}

export interface NativeAdapter {
  config(): LoraConfig
  save(folder: string, meta: { baseModelNameOrPath?: string }): Promise<void>
  dispose(): void
  readonly disposed: boolean
  readonly fromTrainer: boolean
}

export interface NativeTrainer {
  adapter(): NativeAdapter
  stepsPerEpoch(): number
  stepCount(): number
  step(k: number, onMetrics: ((m: StepMetrics) => void) | undefined, cancel: NativeCancelToken): Promise<StepOutcome>
  evaluate(setPath: string, cancel: NativeCancelToken): Promise<number>
  saveCheckpoint(folder: string): Promise<void>
  loadCheckpoint(folder: string): Promise<void>
  dispose(): void
  readonly disposed: boolean
  readonly busy: boolean
}

export interface NativeModel {
  config(): ModelConfig
  device(): string
  memory(): MemoryReport
  weightFp32(name: string): Promise<Float32Array>
  forwardLogits(ids: Int32Array, adapter: NativeAdapter | null): Promise<Float32Array>
  generate(prompt: Int32Array, sampling: object, adapter: NativeAdapter | null, onToken: ((id: number) => void) | undefined,
    cancel: NativeCancelToken): Promise<GenerateResult>
  createAdapter(lora: object): Promise<NativeAdapter>
  loadAdapter(folder: string): Promise<NativeAdapter>
  createTrainer(config: object, trainSetPath: string): Promise<NativeTrainer>
  dispose(): void
  readonly disposed: boolean
  readonly busy: boolean
}

export interface NativeAddon {
  version: string
  backends(): string[]
  devices(): Promise<DeviceInfo[]>
  inspectModel(folder: string): Promise<ModelInspection>
  inspectDataset(path: string): Promise<DatasetInfo>
  loadModel(options: object, onProgress: ((p: LoadProgress) => void) | undefined, cancel: NativeCancelToken): Promise<NativeModel>
  CancelToken: new () => NativeCancelToken
}

/** The addon, or an EngineError ENGINE_UNAVAILABLE with loadAddon's plain explanation. */
export function addon(): NativeAddon {
  try {
    return loadAddon<NativeAddon>()
  } catch (err) {
    throw new EngineError('ENGINE_UNAVAILABLE', (err as Error).message)
  }
}

/** Native errors (with a string .code) become EngineError; anything else (a user callback's error) passes through. */
export function toEngineError(err: unknown): unknown {
  if (err instanceof EngineError) return err
  if (err instanceof Error && typeof (err as { code?: unknown }).code === 'string') {
    const e = err as Error & { code: string; file?: string; line?: number }
    if ((ENGINE_ERROR_CODES as readonly string[]).includes(e.code)) {
      return new EngineError(e.code as EngineError['code'], e.message, { file: e.file, line: e.line })
    }
  }
  return err
}

/** Awaits a native Promise, converting its rejection. */
export async function native<T>(p: Promise<T>): Promise<T> {
  try {
    return await p
  } catch (err) {
    throw toEngineError(err)
  }
}

/** Runs a synchronous native call, converting a thrown error. */
export function nativeSync<T>(f: () => T): T {
  try {
    return f()
  } catch (err) {
    throw toEngineError(err)
  }
}

/** Operations in flight on one facade object: cancel them all, or wait until none runs. */
export class Operations {
  private readonly running = new Set<{ token: NativeCancelToken; done: Promise<unknown> }>()

  /** Starts an operation with a fresh cancel token linked to signal; the token is cancelled at once if signal
   *  already fired. Extra trackers (the owning model's) see the operation too. */
  run<T>(signal: AbortSignal | undefined, start: (token: NativeCancelToken) => Promise<T>, ...also: Operations[]): Promise<T> {
    const token = new (addon().CancelToken)()
    const onAbort = (): void => token.cancel()
    if (signal?.aborted) token.cancel()
    else signal?.addEventListener('abort', onAbort, { once: true })
    const entry = { token, done: Promise.resolve() as Promise<unknown> }
    const trackers = [this, ...also]
    const done = native(start(token)).finally(() => {
      signal?.removeEventListener('abort', onAbort)
      for (const t of trackers) t.running.delete(entry)
    })
    entry.done = done.catch(() => undefined)
    for (const t of trackers) t.running.add(entry)
    return done
  }

  cancelAll(): void {
    for (const op of this.running) op.token.cancel()
  }

  /** Resolves when every operation started so far has settled. */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running].map((op) => op.done))
  }

  /** Cancels every operation and resolves when all have settled (before disposing the object they run on). */
  async cancelAndSettle(): Promise<void> {
    this.cancelAll()
    await this.idle()
  }
}
