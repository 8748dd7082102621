// GPU memory estimates for a model config, before anything is loaded: QLoRA training and chat.
//
// The formulas mirror what the engine allocates (native/engine/memory.cpp, loader.cpp):
//   weights      decoder-layer linears (q,k,v,o,gate,up,down) in NF4 + double quantization: 4.127 bits/weight
//                (4-bit codes + an 8-bit absmax per 64 weights + an fp32 scale per 256 absmax, ENGINE_FACTS §4);
//                embed_tokens and lm_head (once when tied), RMSNorm gains and q/k/v biases in 16 bits.
//   lora         LoRA r on the targets (tutorial: r 32 on q,k,v,o): A [r, in] + B [out, r] per target per layer,
//                fp32 parameters + gradients + AdamW m and v = 16 bytes per LoRA parameter.
//   activations  alloc_activations(TrainCheckpointed, N = token budget): the residual stream saved at every layer
//                boundary (fp32 (L+1) N C; on a GPU computing in 16 bits 2 fp32 buffers + L bf16 ones), ONE layer's
//                recomputed activations (gradient checkpointing; a GPU computing in bf16 keeps the MLP's gate/up/h in
//                bf16 when gate/up/down have no LoRA), one layer's backward buffers, the lm_head in chunks of ~32M
//                logits, LoRA scratch. Chat: the inference layout (2 residual buffers, one layer) for a prompt chunk.
//   kvCache      chat only: fp32 K and V for every layer, 2 L ctx (NKV HS) 4 bytes.
//   overhead     the engine's workspace (native/engine/cuda: one buffer, the largest request of any op, grown in 64 MiB
//                steps) + 512 MiB CUDA context/cuBLAS. Training on a GPU computing in 16 bits: the larger of the GEMMs'
//                (the largest linear dequantized to 16 bits + the 16-bit copy of its input) and the attention
//                backward's (16-bit copies of q, dout, k, v; dS tiles stored for rows of up to 1024 tokens, at most
//                NH * 1088 bytes per token; per-head dk/dv partials when the batch is small). Otherwise the dequantized
//                linear alone.
// For Meta-Llama-3-8B the weights come to 3.60 GB (NF4) + 2.10 GB (bf16 embeddings) = 5.70 GB, as bitsandbytes.
import type { MemoryEstimate } from '../../preload/contract'

export interface ArchitectureNumbers {
  vocabSize: number
  hiddenSize: number
  intermediateSize: number
  numLayers: number
  numHeads: number
  numKvHeads: number
  headDim: number
  tieEmbeddings: boolean
  attentionBias: boolean
}

/** Bits per NF4 + double-quant weight: 4 + 8/64 (absmax codes) + 32/(64*256) (their fp32 scales). */
export const NF4_DQ_BITS = 4 + 8 / 64 + 32 / (64 * 256)
/** The engine's default token budget per micro-batch (TrainConfig.tokenBudget). */
export const DEFAULT_TOKEN_BUDGET = 4096
/** The tutorial's LoRA rank and targets. */
export const DEFAULT_LORA_RANK = 32
export const DEFAULT_LORA_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj'] as const
/** Context length the chat estimate is made for. */
export const DEFAULT_CHAT_CONTEXT = 4096
/** Prompt tokens processed at once when a chat starts (activation buffers of the inference layout). */
export const CHAT_PREFILL_CHUNK = 512
const RUNTIME_BYTES = 512 * 1024 * 1024
const LOGIT_CHUNK_ELEMENTS = 32 * 1024 * 1024
const NUM_LORA_SLOTS = 7 // the engine keeps a LoRA scratch per possible target (q,k,v,o,gate,up,down)

type Target = 'q_proj' | 'k_proj' | 'v_proj' | 'o_proj' | 'gate_proj' | 'up_proj' | 'down_proj'

function dims(a: ArchitectureNumbers) {
  const C = a.hiddenSize
  const FF = a.intermediateSize
  const QD = a.numHeads * a.headDim
  const KD = a.numKvHeads * a.headDim
  const inOut: Record<Target, [number, number]> = {
    q_proj: [C, QD],
    k_proj: [C, KD],
    v_proj: [C, KD],
    o_proj: [QD, C],
    gate_proj: [C, FF],
    up_proj: [C, FF],
    down_proj: [FF, C],
  }
  return { C, FF, QD, KD, V: a.vocabSize, L: a.numLayers, NH: a.numHeads, inOut }
}

/** Parameters of the decoder-layer linears (the NF4-quantized part). */
export function linearParameters(a: ArchitectureNumbers): number {
  const { L, inOut } = dims(a)
  let per = 0
  for (const [i, o] of Object.values(inOut)) per += i * o
  return L * per
}

/** Bytes of the frozen base on the GPU: NF4+DQ linears, 16-bit embeddings/lm_head/norms/biases. */
export function baseWeightBytes(a: ArchitectureNumbers): { linears: number; embeddings: number } {
  const { C, QD, KD, V, L } = dims(a)
  const linears = Math.ceil((linearParameters(a) * NF4_DQ_BITS) / 8)
  const norms = (2 * L + 1) * C
  const biases = a.attentionBias ? L * (QD + 2 * KD) : 0
  const embeddings = (V * C * (a.tieEmbeddings ? 1 : 2) + norms + biases) * 2
  return { linears, embeddings }
}

/** LoRA parameters for rank r on the given targets. */
export function loraParameters(a: ArchitectureNumbers, rank = DEFAULT_LORA_RANK, targets: readonly Target[] = DEFAULT_LORA_TARGETS): number {
  const { L, inOut } = dims(a)
  let per = 0
  for (const t of targets) per += rank * (inOut[t][0] + inOut[t][1])
  return L * per
}

/** How the engine lays out training activations on a device (native/engine/memory.cpp alloc_activations). */
export interface ActivationLayout {
  /** TrainCheckpointed on a GPU computing in bf16/fp16: layer inputs kept in bf16 (2 fp32 residual buffers + L bf16). */
  ckptBf16?: boolean
  /** A GPU computing in bf16 with no LoRA on gate/up/down: gate, up, h and their gradients in half-size buffers. */
  mlpBf16?: boolean
  /** The largest in-features among the LoRA targets (sizes the LoRA scratch); default: that of any target. */
  loraMaxIn?: number
  /** A GPU computing in bf16/fp16: the tensor-core attention and the GEMMs' 16-bit input copies size the workspace. */
  gpu16?: boolean
}

/** The layout the engine takes for a device and these settings (memory.cpp want_bf16_checkpoints, want_mlp_bf16,
 *  lora_on_mlp; loader.cpp resolve_compute: the CPU computes in fp32, a GPU in bf16 where it has bf16 math). */
export function activationLayout(
  a: ArchitectureNumbers,
  o: { backend: 'cpu' | 'cuda'; bf16Capable: boolean; computeDtype?: 'auto' | 'bf16' | 'fp16' | 'fp32'; gradCheckpointing: boolean; loraTargets: readonly string[] },
): ActivationLayout {
  const cd = o.computeDtype ?? 'auto'
  const compute = o.backend === 'cpu' || cd === 'fp32' ? 'fp32' : cd === 'fp16' || (cd === 'auto' && !o.bf16Capable) ? 'fp16' : 'bf16'
  const { inOut } = dims(a)
  let loraMaxIn = 0
  for (const t of o.loraTargets) if (t in inOut) loraMaxIn = Math.max(loraMaxIn, inOut[t as Target][0])
  const mlpLora = o.loraTargets.some((t) => t === 'gate_proj' || t === 'up_proj' || t === 'down_proj')
  const gpu16 = o.backend === 'cuda' && compute !== 'fp32'
  return { ckptBf16: o.gradCheckpointing && compute !== 'fp32', mlpBf16: compute === 'bf16' && !mlpLora, loraMaxIn, gpu16 }
}

/** fp32-element equivalents (bytes / 4) of the engine's activation buffer (native/engine/memory.cpp
 *  alloc_activations; its 64-byte rounding of each slice aside). train: every layer's activations kept (no gradient
 *  checkpointing); trainCheckpointed: one layer's, recomputed in backward; inference: chat. */
export function activationElements(a: ArchitectureNumbers, mode: 'train' | 'trainCheckpointed' | 'inference', N: number, rank: number, layout: ActivationLayout = {}): number {
  const { C, FF, QD, KD, V, L, NH } = dims(a)
  const train = mode !== 'inference'
  const ckpt = mode === 'trainCheckpointed' && layout.ckptBf16 === true
  const FFA = train && layout.mlpBf16 ? Math.ceil(FF / 2) : FF // bf16 intermediates in fp32-sized slots
  const LIN = layout.loraMaxIn && layout.loraMaxIn > 0 ? layout.loraMaxIn : Math.max(C, FF, QD)
  let chunk = Math.max(1, Math.floor(LOGIT_CHUNK_ELEMENTS / V))
  if (chunk >= 64) chunk = Math.floor(chunk / 64) * 64 // whole 64-row GEMM tiles, as memory.cpp
  const logitRows = Math.min(N, chunk)
  let e = (train && !ckpt ? L + 1 : 2) * N * C // residual stream (fp32)
  if (ckpt) e += Math.ceil((L * N * C) / 2) // bf16 layer inputs
  // A layer's forward activations: every layer's in train mode, one recomputed layer's otherwise.
  const layer = N * (C + 1 + QD + 2 * KD + QD + NH + C + C + 1 + 3 * FFA + (rank > 0 ? NUM_LORA_SLOTS * rank : 0))
  e += (mode === 'train' ? L : 1) * layer
  if (mode === 'train') e += N * C // xf (otherwise it shares the layer's xn1)
  e += N + logitRows * V + N + (rank > 0 ? N * (LIN + rank) : 1) // rstdf, logits, losses, LoRA scratch
  if (train) e += 2 * N * C + N * Math.max(FFA, 2 * QD) + N * Math.max(FFA, 2 * KD) // dx, dxn, dh (+ datt, dq), dup (+ dk, dv)
  e += 3 * N // ids, targets, lengths (int32)
  return e
}

const WORKSPACE_STEP = 64 * 1024 * 1024
/** Bytes per token of stored dS at the longest rows that store it (kAttnDsMaxT = 1024): 136 64 x 64 bf16 tiles per head
 *  for 1024 tokens. */
const DS_BYTES_PER_TOKEN_HEAD = (136 * 64 * 64 * 2) / 1024
/** The dk/dv pass splits per query head while its per-KV-head grid is under 2 blocks per SM (attention.cu split_dkv);
 *  taken for a 144-SM card, so that smaller cards (which split less) are not under-estimated. */
const SPLIT_BLOCKS = 2 * 144

/** The engine's scratch workspace for an op of N tokens (the largest request of any op, in 64 MiB steps). */
export function workspaceBytes(a: ArchitectureNumbers, N: number, layout: ActivationLayout = {}): number {
  const { C, FF, QD, NH } = dims(a)
  const dequantized = Math.max(FF * C, QD * C) * 2
  if (!layout.gpu16) return dequantized
  const NKV = a.numKvHeads
  const HSP = a.headDim <= 32 ? 32 : a.headDim <= 64 ? 64 : 128 // heads padded for the tensor-core kernels
  // the GEMMs: the dequantized weight + the 16-bit copy of the input (down_proj's input is bf16 already with mlpBf16)
  const gemm = dequantized + N * (layout.mlpBf16 ? Math.max(C, QD) : Math.max(C, QD, FF)) * 2
  // the attention backward: D, the 16-bit copies of q, dout (NH heads) and k, v (NKV heads), stored dS, dk/dv partials
  const split = NH > NKV && Math.ceil(N / 64) * NKV < SPLIT_BLOCKS ? 2 * N * NH * a.headDim * 4 : 0
  const attention = N * NH * 4 + 2 * N * NH * HSP * 2 + 2 * N * NKV * HSP * 2 + N * NH * DS_BYTES_PER_TOKEN_HEAD + split
  return Math.ceil(Math.max(gemm, attention) / WORKSPACE_STEP) * WORKSPACE_STEP
}

function overheadBytes(a: ArchitectureNumbers, N = 0, layout: ActivationLayout = {}): number {
  return workspaceBytes(a, N, layout) + RUNTIME_BYTES
}

export interface TrainingEstimateOptions {
  tokenBudget?: number
  loraRank?: number
  loraTargets?: readonly Target[]
  /** Default: a GPU with bf16 math, gradient checkpointing, the targets' layout (activationLayout). */
  layout?: ActivationLayout
  /** Default trainCheckpointed. */
  mode?: 'train' | 'trainCheckpointed'
}

/** GPU memory for QLoRA training with gradient checkpointing (the tutorial recipe by default). */
export function estimateTrainingMemory(a: ArchitectureNumbers, o: TrainingEstimateOptions = {}): MemoryEstimate {
  const tokens = o.tokenBudget ?? DEFAULT_TOKEN_BUDGET
  const rank = o.loraRank ?? DEFAULT_LORA_RANK
  const targets = o.loraTargets ?? DEFAULT_LORA_TARGETS
  const layout = o.layout ?? activationLayout(a, { backend: 'cuda', bf16Capable: true, gradCheckpointing: true, loraTargets: targets })
  const w = baseWeightBytes(a)
  const parts: MemoryEstimate['parts'] = [
    { key: 'weights', bytes: w.linears },
    { key: 'embeddings', bytes: w.embeddings },
    { key: 'lora', bytes: loraParameters(a, rank, targets) * 16 },
    { key: 'activations', bytes: activationElements(a, o.mode ?? 'trainCheckpointed', tokens, rank, layout) * 4 },
    { key: 'overhead', bytes: overheadBytes(a, tokens, layout) },
  ]
  return { totalBytes: parts.reduce((s, p) => s + p.bytes, 0), parts, tokens }
}

/** GPU memory for chatting with the NF4 base (plus a LoRA adapter of the default rank) at a context length. */
export function estimateChatMemory(a: ArchitectureNumbers, contextTokens = DEFAULT_CHAT_CONTEXT): MemoryEstimate {
  const { KD, L } = dims(a)
  const w = baseWeightBytes(a)
  const rank = DEFAULT_LORA_RANK
  const parts: MemoryEstimate['parts'] = [
    { key: 'weights', bytes: w.linears },
    { key: 'embeddings', bytes: w.embeddings },
    { key: 'lora', bytes: loraParameters(a, rank) * 4 },
    { key: 'kvCache', bytes: 2 * L * contextTokens * KD * 4 },
    { key: 'activations', bytes: activationElements(a, 'inference', Math.min(contextTokens, CHAT_PREFILL_CHUNK), rank) * 4 },
    { key: 'overhead', bytes: overheadBytes(a) },
  ]
  return { totalBytes: parts.reduce((s, p) => s + p.bytes, 0), parts, tokens: contextTokens }
}
