// A LoRA adapter of one model (fp32 master weights): used unmerged in generation, exported in PEFT format.
// A trainer's adapter (trainer.adapter) is trained in place between steps and outlives the trainer.
import type { Model } from './Model'
import { nativeSync, type NativeAdapter } from './native'
import type { LoraConfig, PeftMeta } from './types'
import { checkFolder } from './validate'

export class Adapter {
  readonly config: LoraConfig

  /** @internal Use model.createAdapter(), model.loadAdapter() or trainer.adapter. */
  constructor(private readonly handle: NativeAdapter, readonly model: Model) {
    this.config = handle.config()
  }

  get disposed(): boolean {
    return this.handle.disposed
  }

  /** True for the adapter a trainer trains. */
  get fromTrainer(): boolean {
    return this.handle.fromTrainer
  }

  /** Writes a PEFT directory (adapter_config.json + adapter_model.safetensors) that peft can load; written to a
   *  temporary folder and renamed, so a failure never leaves a half-written adapter. */
  async save(folder: string, meta: PeftMeta = {}): Promise<void> {
    const dir = checkFolder('Adapter folder', folder)
    await this.model.ops.run(undefined, () => this.handle.save(dir, { baseModelNameOrPath: meta.baseModelNameOrPath ?? '' }))
  }

  /** Frees the LoRA weights now (a trainer's adapter: the trainer keeps its own until it is disposed). */
  dispose(): void {
    nativeSync(() => this.handle.dispose())
  }

  /** @internal */
  nativeHandle(): NativeAdapter {
    return this.handle
  }
}
