// Types of the engine facade: camelCase mirrors of native/engine/engine.h (hidden_size -> hiddenSize).
// Options are all optional except where noted; a missing field takes the engine.h default (listed here).

/** Engine error codes (engine.h error_code_name) plus the addon's and the facade's own. */
export type EngineErrorCode =
  | 'INVALID_ARGUMENT' // a setting or argument out of range
  | 'NOT_FOUND' // a file or tensor that should exist does not
  | 'BAD_FILE' // corrupt / truncated / malformed file
  | 'UNSUPPORTED' // architecture, dtype or feature not supported
  | 'SHAPE_MISMATCH' // tensors whose shapes disagree with the config or each other
  | 'OUT_OF_MEMORY'
  | 'CANCELLED'
  | 'IO'
  | 'DEVICE'
  | 'INTERNAL'
  | 'BUSY' // another operation is running on the same model/trainer (one at a time)
  | 'DISPOSED' // the object was disposed
  | 'ENGINE_UNAVAILABLE' // the native addon is not built or failed to load

export const ENGINE_ERROR_CODES: readonly EngineErrorCode[] = ['INVALID_ARGUMENT', 'NOT_FOUND', 'BAD_FILE', 'UNSUPPORTED', 'SHAPE_MISMATCH',
  'OUT_OF_MEMORY', 'CANCELLED', 'IO', 'DEVICE', 'INTERNAL', 'BUSY', 'DISPOSED', 'ENGINE_UNAVAILABLE']

/** Every engine failure: a stable code, a plain message, and for engine errors the C++ file/line. */
export class EngineError extends Error {
  readonly code: EngineErrorCode
  readonly file?: string
  readonly line?: number

  constructor(code: EngineErrorCode, message: string, where?: { file?: string; line?: number }) {
    super(message)
    this.name = 'EngineError'
    this.code = code
    if (where?.file) this.file = where.file
    if (where?.line !== undefined && where.file) this.line = where.line
  }
}

export interface DeviceInfo {
  backend: 'cpu' | 'cuda'
  index: number // CUDA ordinal; 0 for the CPU
  name: string
  totalBytes: number // device memory (host RAM for the CPU)
  freeBytes: number
  ccMajor: number
  ccMinor: number
  bf16: boolean // native bf16 math (sm_80+)
}

export interface RopeScaling {
  type: 'none' | 'llama3' | 'linear'
  factor: number
  lowFreqFactor: number
  highFreqFactor: number
  originalMaxPosition: number
}

export interface ModelConfig {
  architecture: string // "LlamaForCausalLM" | "MistralForCausalLM" | "Qwen2ForCausalLM"
  family: string // "llama" | "mistral" | "qwen2"
  vocabSize: number
  hiddenSize: number
  intermediateSize: number
  numLayers: number
  numHeads: number
  numKvHeads: number
  headDim: number
  maxPosition: number
  ropeTheta: number
  rmsNormEps: number
  tieEmbeddings: boolean
  attentionBias: boolean
  ropeScaling: RopeScaling
  torchDtype: string
}

export interface TensorInfo {
  name: string
  dtype: string // "BF16" | "F16" | "F32"
  shape: number[]
  file: string // shard file name
}

export interface ModelInspection {
  config: ModelConfig
  tensors: TensorInfo[]
  parameterCount: number
  weightBytes: number
}

export interface DatasetInfo {
  numSamples: number
  numTokens: number
  numTargetTokens: number // tokens with loss mask 1
  maxLength: number
}

export type Quant = 'nf4' | 'none'
export type ComputeDtype = 'auto' | 'bf16' | 'fp16' | 'fp32'

export interface LoadProgress {
  fraction: number // 0..1
  stage: string
}

export interface LoadOptions {
  folder: string // required: a Hugging Face model folder
  device?: string // 'cpu' (default) | 'cuda:<n>'
  quant?: Quant // default 'nf4' (decoder-layer linears; embeddings, norms, lm_head stay 16-bit)
  doubleQuant?: boolean // default true
  computeDtype?: ComputeDtype // default 'auto' (the CPU always computes in fp32)
  onProgress?: (p: LoadProgress) => void
  signal?: AbortSignal
}

export interface MemoryReport {
  weightsBytes: number
  loraBytes: number
  activationsBytes: number
  deviceFreeBytes: number
  deviceTotalBytes: number
  peakBytes: number
}

export const LORA_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const
export type LoraTarget = (typeof LORA_TARGETS)[number]

/** A resolved LoRA config (adapter.config). */
export interface LoraConfig {
  r: number
  alpha: number // scaling = alpha / r
  dropout: number
  targets: LoraTarget[]
  seed: number
}

/** LoRA options: defaults r 32, alpha 8 (PEFT's default), dropout 0.1, targets q/k/v/o, seed 42. */
export type LoraOptions = Partial<LoraConfig>

export type Schedule = 'cosine_with_restarts' | 'cosine' | 'linear' | 'constant'

export interface TrainConfig {
  lora?: LoraOptions
  lr?: number // default 5e-5
  beta1?: number // 0.9
  beta2?: number // 0.999
  eps?: number // 1e-8
  weightDecay?: number // 0
  maxGradNorm?: number // 1.0; <= 0 disables clipping
  gradAccum?: number // 1 micro-batch per optimizer step
  schedule?: Schedule // 'cosine_with_restarts'
  /** Length of training in optimizer steps; or give `epochs` instead (one of the two is required). */
  totalSteps?: number
  epochs?: number // converted with the trainer's stepsPerEpoch: round(epochs * stepsPerEpoch)
  warmupSteps?: number // default 0; or `warmupEpochs` (floor(warmupEpochs * stepsPerEpoch); the tutorial: 0.2)
  warmupEpochs?: number
  numCycles?: number // 1
  tokenBudgetBatching?: boolean // false: fixed rows per batch
  batchRows?: number // 4
  tokenBudget?: number // 4096 (rows * padded length <= budget)
  groupByLength?: boolean // true
  shuffle?: boolean // true
  maxLength?: number // 0 = the dataset's own; longer samples are truncated
  neftuneAlpha?: number // 5; 0 disables
  gradCheckpointing?: boolean // true
  seed?: number // 42: data order, dropout, NEFTune
}

export interface StepMetrics {
  step: number // optimizer steps completed after this one
  epoch: number // fractional epochs completed
  loss: number // mean over counted tokens of this optimizer step
  lr: number // learning rate used for this step
  gradNorm: number // global L2 norm before clipping
  tokens: number // real (unpadded) tokens
  paddedTokens: number
  samples: number
  seconds: number
}

/** What trainer.step(k) resolves to: the steps done (k unless cancelled) and whether it was cancelled. */
export interface StepOutcome {
  metrics: StepMetrics[]
  cancelled: boolean
}

export interface SamplingConfig {
  maxNewTokens?: number // 256
  temperature?: number // 0 = greedy
  topK?: number // 0 = off
  topP?: number // 1 = off
  repetitionPenalty?: number // 1 = off (HF semantics over prompt + generated ids)
  stopIds?: number[] // generation ends after emitting one of these (it is included)
  seed?: number // 0
}

export type FinishReason = 'stop' | 'length' | 'cancelled'

export interface GenerateResult {
  tokens: number[] // generated ids (the stop id included when finish is 'stop')
  finish: FinishReason
  promptSeconds: number
  decodeSeconds: number
}

export interface PeftMeta {
  baseModelNameOrPath?: string
}

export interface OperationOptions {
  signal?: AbortSignal
}
