// Trains one LoRA adapter of a model on a training-set file: step(k) with per-step metrics (each exactly once,
// in order, before the Promise resolves), evaluation, exact checkpoints (resume == not stopping) and PEFT export.
// Cancel (signal or cancel()) stops between steps: step(k) then resolves with the steps done and cancelled = true.
import { Adapter } from './Adapter'
import type { Model } from './Model'
import { nativeSync, Operations, type NativeTrainer } from './native'
import { EngineError, type OperationOptions, type PeftMeta, type StepMetrics, type StepOutcome } from './types'
import { checkFolder } from './validate'

export class Trainer {
  /** Optimizer steps per pass over the training set. */
  readonly stepsPerEpoch: number
  /** The schedule's length and warmup in optimizer steps (resolved from epochs when given so). */
  readonly totalSteps: number
  readonly warmupSteps: number
  private readonly ops = new Operations()
  private adapterObj: Adapter | undefined

  /** @internal Use model.createTrainer(). */
  constructor(private readonly handle: NativeTrainer, readonly model: Model, schedule: { totalSteps: number; warmupSteps: number }) {
    this.stepsPerEpoch = handle.stepsPerEpoch()
    this.totalSteps = schedule.totalSteps
    this.warmupSteps = schedule.warmupSteps
  }

  /** Optimizer steps taken so far (after loadCheckpoint: the checkpoint's). */
  get stepCount(): number {
    return this.handle.stepCount()
  }

  get disposed(): boolean {
    return this.handle.disposed
  }

  get busy(): boolean {
    return this.handle.busy
  }

  /** The adapter being trained (the same object every time; usable for generation between steps). */
  get adapter(): Adapter {
    if (!this.adapterObj) this.adapterObj = new Adapter(nativeSync(() => this.handle.adapter()), this.model)
    return this.adapterObj
  }

  /** Runs k optimizer steps. onMetrics gets each step's metrics once, in order; if it throws, training stops
   *  and the Promise rejects with that error. */
  async step(k: number, onMetrics?: (m: StepMetrics) => void, options: OperationOptions = {}): Promise<StepOutcome> {
    if (!Number.isInteger(k) || k < 1) throw new EngineError('INVALID_ARGUMENT', `The number of steps must be a whole number of at least 1 (got ${String(k)}).`)
    if (onMetrics !== undefined && typeof onMetrics !== 'function') throw new EngineError('INVALID_ARGUMENT', 'onMetrics must be a function.')
    return this.ops.run(options.signal, (token) => this.handle.step(k, onMetrics, token), this.model.ops)
  }

  /** Mean loss over all target tokens of a training-set file (no dropout, no NEFTune). */
  async evaluate(setPath: string, options: OperationOptions = {}): Promise<number> {
    const path = checkFolder('Evaluation set file', setPath)
    return this.ops.run(options.signal, (token) => this.handle.evaluate(path, token), this.model.ops)
  }

  /** Everything needed to continue exactly (LoRA weights, AdamW moments, step, RNG, data order); atomic. */
  async saveCheckpoint(dir: string): Promise<void> {
    const folder = checkFolder('Checkpoint folder', dir)
    await this.ops.run(undefined, () => this.handle.saveCheckpoint(folder), this.model.ops)
  }

  /** Restores a checkpoint written by a trainer with the same model and settings. */
  async loadCheckpoint(dir: string): Promise<void> {
    const folder = checkFolder('Checkpoint folder', dir)
    await this.ops.run(undefined, () => this.handle.loadCheckpoint(folder), this.model.ops)
  }

  /** Writes the trained adapter as a PEFT directory. */
  exportAdapter(dir: string, meta: PeftMeta = {}): Promise<void> {
    return this.adapter.save(dir, meta)
  }

  /** Cancels the running step(k)/evaluate between steps. */
  cancel(): void {
    this.ops.cancelAll()
  }

  /** Frees the optimizer state and activations now; the adapter lives on if trainer.adapter was taken.
   *  Throws BUSY while an operation runs (use close()). */
  dispose(): void {
    nativeSync(() => this.handle.dispose())
  }

  async close(): Promise<void> {
    await this.ops.cancelAndSettle()
    this.dispose()
  }
}
