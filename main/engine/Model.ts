// A loaded base model (frozen weights on one device): full-forward logits, KV-cached generation with streamed
// tokens, LoRA adapters and trainers. One operation runs at a time per model (its adapters and trainers
// included); a second concurrent call rejects with BUSY. dispose() frees the weights now, and every adapter and
// trainer made from this model with them.
import { Adapter } from './Adapter'
import { native, nativeSync, Operations, type NativeModel } from './native'
import { Trainer } from './Trainer'
import {
  EngineError, type GenerateResult, type LoraOptions, type MemoryReport, type ModelConfig, type OperationOptions, type SamplingConfig,
  type TrainConfig,
} from './types'
import { checkFolder, checkIds, checkLora, checkSampling, checkTrainConfig } from './validate'

export interface GenerateOptions extends OperationOptions {
  /** A LoRA adapter of this model applied unmerged; none = the base model. */
  adapter?: Adapter
  /** Called with each new token id, in order, exactly once, before the Promise resolves. */
  onToken?: (id: number) => void
}

export class Model {
  readonly config: ModelConfig
  /** 'cpu' or 'cuda:<n>' */
  readonly device: string
  /** @internal Operations of this model and of its adapters and trainers. */
  readonly ops = new Operations()

  /** @internal Use loadModel() (main/engine/Engine.ts). */
  constructor(readonly handle: NativeModel) {
    this.config = handle.config()
    this.device = handle.device()
  }

  get disposed(): boolean {
    return this.handle.disposed
  }

  /** True while an operation (of the model, its adapters or trainers) is running. */
  get busy(): boolean {
    return this.handle.busy
  }

  /** Memory in use now (may be read while an operation runs). */
  memory(): MemoryReport {
    return nativeSync(() => this.handle.memory())
  }

  /** A base linear weight [out, in] dequantized to fp32 (HF tensor name, e.g. model.layers.0.self_attn.q_proj.weight). */
  weightFp32(name: string): Promise<Float32Array> {
    return native(this.handle.weightFp32(name))
  }

  /** Logits of a full forward pass without cache: a Float32Array [ids.length * vocabSize], row per position. */
  async forwardLogits(ids: ArrayLike<number>, options: { adapter?: Adapter } = {}): Promise<Float32Array> {
    const input = checkIds('ids', ids, this.config)
    const adapter = this.ownAdapter(options.adapter)
    return this.ops.run(undefined, () => this.handle.forwardLogits(input, adapter))
  }

  /** KV-cached generation. Aborting (options.signal) or cancel() resolves with the tokens so far and
   *  finish 'cancelled'. Streamed tokens (onToken) equal the returned tokens. */
  async generate(promptIds: ArrayLike<number>, sampling: SamplingConfig = {}, options: GenerateOptions = {}): Promise<GenerateResult> {
    const prompt = checkIds('promptIds', promptIds, this.config)
    const s = checkSampling(sampling, this.config)
    const adapter = this.ownAdapter(options.adapter)
    if (options.onToken !== undefined && typeof options.onToken !== 'function') throw new EngineError('INVALID_ARGUMENT', 'onToken must be a function.')
    return this.ops.run(options.signal, (token) => this.handle.generate(prompt, s, adapter, options.onToken, token))
  }

  /** A fresh LoRA adapter (PEFT initialisation: A kaiming-uniform, B zeros). */
  async createAdapter(lora: LoraOptions = {}): Promise<Adapter> {
    const cfg = checkLora(lora)
    const h = await this.ops.run(undefined, () => this.handle.createAdapter(cfg))
    return new Adapter(h, this)
  }

  /** Loads a PEFT adapter directory (adapter_config.json + adapter_model.safetensors) made for this model. */
  async loadAdapter(folder: string): Promise<Adapter> {
    const dir = checkFolder('Adapter folder', folder)
    const h = await this.ops.run(undefined, () => this.handle.loadAdapter(dir))
    return new Adapter(h, this)
  }

  /** A trainer of a new LoRA adapter on a training-set file (*.qtds). With `epochs` (instead of totalSteps)
   *  the length is converted with the trainer's steps per epoch (a first trainer is created to learn it). */
  async createTrainer(config: TrainConfig, trainSetPath: string): Promise<Trainer> {
    checkTrainConfig(config) // every setting checked before any work
    const path = checkFolder('Training-set file', trainSetPath)
    let spe: number | undefined
    if (config.totalSteps === undefined || (config.warmupSteps === undefined && config.warmupEpochs !== undefined)) {
      const probeCfg = checkTrainConfig({ ...config, epochs: undefined, warmupEpochs: undefined, warmupSteps: 0, totalSteps: 1 }).native
      const probe = await this.ops.run(undefined, () => this.handle.createTrainer(probeCfg, path))
      spe = probe.stepsPerEpoch()
      probe.dispose()
    }
    const { native: cfg, totalSteps, warmupSteps } = checkTrainConfig(config, spe)
    const h = await this.ops.run(undefined, () => this.handle.createTrainer(cfg, path))
    return new Trainer(h, this, { totalSteps, warmupSteps })
  }

  /** Cancels whatever runs on this model (generation returns its partial tokens; a step(k) stops between steps). */
  cancel(): void {
    this.ops.cancelAll()
  }

  /** Frees the weights now (and every adapter and trainer of this model). Throws BUSY while an operation runs:
   *  use close() to cancel and wait first. */
  dispose(): void {
    nativeSync(() => this.handle.dispose())
  }

  /** Cancels running operations, waits for them to settle, then disposes. */
  async close(): Promise<void> {
    await this.ops.cancelAndSettle()
    this.dispose()
  }

  private ownAdapter(a: Adapter | undefined): ReturnType<Adapter['nativeHandle']> | null {
    if (a === undefined || a === null) return null
    if (!(a instanceof Adapter)) throw new EngineError('INVALID_ARGUMENT', 'adapter must be an Adapter.')
    if (a.model !== this) throw new EngineError('INVALID_ARGUMENT', 'The adapter belongs to a different model.')
    return a.nativeHandle()
  }
}

