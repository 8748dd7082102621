// TrainingSettings -> what the compiler, the model loader and the engine trainer take.
import type { TrainingSettings } from '../../preload/contract'
import type { CompileOptions } from '../datasets/compiler/compileDataset'
import type { ModelLoadParams } from '../engine/host/protocol'
import type { TrainConfig } from '../engine/types'

export function compileOptions(s: TrainingSettings): Pick<CompileOptions, 'trainOn' | 'maxLength' | 'truncation' | 'validationFraction' | 'seed'> {
  return { trainOn: s.trainOn, maxLength: s.maxLength, truncation: s.truncation, validationFraction: s.validationFraction, seed: s.splitSeed }
}

export function loadParams(s: TrainingSettings, folder: string, device: string): ModelLoadParams {
  return { folder, device, quant: s.quant, doubleQuant: s.doubleQuant, computeDtype: s.computeDtype }
}

export function trainConfig(s: TrainingSettings): TrainConfig {
  return {
    lora: { r: s.loraR, alpha: s.loraAlpha, dropout: s.loraDropout, targets: [...s.loraTargets], seed: s.seed },
    lr: s.lr,
    beta1: s.beta1,
    beta2: s.beta2,
    eps: s.eps,
    weightDecay: s.weightDecay,
    maxGradNorm: s.maxGradNorm,
    gradAccum: s.gradAccum,
    schedule: s.schedule,
    epochs: s.epochs,
    warmupEpochs: s.warmupEpochs,
    numCycles: s.numCycles,
    tokenBudgetBatching: s.batching === 'tokens',
    batchRows: s.batchRows,
    tokenBudget: s.tokenBudget,
    groupByLength: s.groupByLength,
    shuffle: s.shuffle,
    maxLength: s.maxLength,
    neftuneAlpha: s.neftuneAlpha,
    gradCheckpointing: s.gradCheckpointing,
    seed: s.seed,
  }
}
