// config.json of a Hugging Face causal LM: which architectures the engine supports and the numbers it needs
// (ENGINE_FACTS §3). Parsing is strict about what the engine uses and tolerant of everything else.
import type { ModelDetails } from '../../preload/contract'
import type { ArchitectureNumbers } from './memoryEstimate'
import { modelProblem } from './modelProblem'

export const SUPPORTED_ARCHITECTURES = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  Qwen2ForCausalLM: 'qwen2',
} as const satisfies Record<string, ModelDetails['family']>

export type SupportedArchitecture = keyof typeof SUPPORTED_ARCHITECTURES

const BY_MODEL_TYPE: Record<string, SupportedArchitecture> = { llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM' }

export interface ParsedConfig extends ArchitectureNumbers {
  architecture: SupportedArchitecture
  family: ModelDetails['family']
  maxPosition: number
  ropeScaling: string | null
  torchDtype: string | null
  bosTokenId: number | null
  eosTokenIds: number[]
  nameOrPath: string | null
}

const SUPPORTED_LIST = `${Object.keys(SUPPORTED_ARCHITECTURES).join(', ')} (Llama 3/3.1/3.2, Mistral, Breeze, Taiwan-LLM, Qwen2/2.5)`

function ids(v: unknown): number[] {
  if (typeof v === 'number' && Number.isInteger(v)) return [v]
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number' && Number.isInteger(x))
  return []
}

/** Checks config.json (already parsed) and returns the numbers the app and the engine use. */
export function parseModelConfig(raw: unknown, dir: string): ParsedConfig {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    throw modelProblem('INVALID_ARGUMENT', 'badConfig', `config.json in ${dir} is not a JSON object. Download the model again.`, { dir })
  }
  const c = raw as Record<string, unknown>
  const declared = Array.isArray(c.architectures) ? c.architectures.filter((a): a is string => typeof a === 'string') : []
  let architecture: SupportedArchitecture | undefined = declared.find((a): a is SupportedArchitecture => a in SUPPORTED_ARCHITECTURES)
  if (!architecture && declared.length === 0 && typeof c.model_type === 'string') architecture = BY_MODEL_TYPE[c.model_type]
  if (!architecture) {
    const named = declared[0] ?? (typeof c.model_type === 'string' ? `model_type "${c.model_type}"` : 'no architecture at all')
    throw modelProblem(
      'UNSUPPORTED',
      'unsupportedArchitecture',
      `This model's architecture is ${named}, which QA Tuner cannot train. Supported: ${SUPPORTED_LIST}. Pick a model of one of these families.`,
      { architecture: named, supported: Object.keys(SUPPORTED_ARCHITECTURES) },
    )
  }
  const q = c.quantization_config as Record<string, unknown> | undefined
  if (q && typeof q === 'object') {
    const method = typeof q.quant_method === 'string' ? q.quant_method : 'quantized'
    throw modelProblem(
      'UNSUPPORTED',
      'quantized',
      `This folder holds an already-quantized model (${method}). QA Tuner quantizes the original weights itself: import the original 16-bit model (BF16/F16 safetensors) instead, e.g. the repo this one was made from.`,
      { method },
    )
  }
  const int = (key: string, fallback?: number): number => {
    const v = c[key] ?? fallback
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
      throw modelProblem('INVALID_ARGUMENT', 'badConfig', `config.json in ${dir} has no valid "${key}" (got ${JSON.stringify(c[key])}). The file is damaged or not a ${architecture} config: download the model again.`, { dir, key })
    }
    return v
  }
  const hiddenSize = int('hidden_size')
  const numHeads = int('num_attention_heads')
  const numKvHeads = int('num_key_value_heads', numHeads)
  const headDim = typeof c.head_dim === 'number' && Number.isInteger(c.head_dim) && c.head_dim > 0 ? c.head_dim : hiddenSize / numHeads
  if (!Number.isInteger(headDim) || numHeads % numKvHeads !== 0) {
    throw modelProblem('INVALID_ARGUMENT', 'badConfig', `config.json in ${dir}: ${numHeads} attention heads, ${numKvHeads} key/value heads and hidden size ${hiddenSize} do not fit together.`, { dir })
  }
  const family = SUPPORTED_ARCHITECTURES[architecture]
  const rs = c.rope_scaling as Record<string, unknown> | null | undefined
  const ropeType = rs && typeof rs === 'object' ? String(rs.rope_type ?? rs.type ?? 'unknown') : null
  return {
    architecture,
    family,
    vocabSize: int('vocab_size'),
    hiddenSize,
    intermediateSize: int('intermediate_size'),
    numLayers: int('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    maxPosition: int('max_position_embeddings', 2048),
    tieEmbeddings: c.tie_word_embeddings === true,
    attentionBias: family === 'qwen2',
    ropeScaling: ropeType === 'default' ? null : ropeType,
    torchDtype: typeof c.torch_dtype === 'string' ? c.torch_dtype : typeof c.dtype === 'string' ? c.dtype : null,
    bosTokenId: ids(c.bos_token_id)[0] ?? null,
    eosTokenIds: ids(c.eos_token_id),
    nameOrPath: typeof c._name_or_path === 'string' ? c._name_or_path : null,
  }
}

/** Tensor name -> expected shape for this config (what the engine loads). */
export function expectedTensors(cfg: ParsedConfig): Map<string, number[]> {
  const { hiddenSize: C, intermediateSize: FF, vocabSize: V } = cfg
  const QD = cfg.numHeads * cfg.headDim
  const KD = cfg.numKvHeads * cfg.headDim
  const m = new Map<string, number[]>()
  m.set('model.embed_tokens.weight', [V, C])
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `model.layers.${l}`
    m.set(`${p}.input_layernorm.weight`, [C])
    m.set(`${p}.post_attention_layernorm.weight`, [C])
    m.set(`${p}.self_attn.q_proj.weight`, [QD, C])
    m.set(`${p}.self_attn.k_proj.weight`, [KD, C])
    m.set(`${p}.self_attn.v_proj.weight`, [KD, C])
    m.set(`${p}.self_attn.o_proj.weight`, [C, QD])
    if (cfg.attentionBias) {
      m.set(`${p}.self_attn.q_proj.bias`, [QD])
      m.set(`${p}.self_attn.k_proj.bias`, [KD])
      m.set(`${p}.self_attn.v_proj.bias`, [KD])
    }
    m.set(`${p}.mlp.gate_proj.weight`, [FF, C])
    m.set(`${p}.mlp.up_proj.weight`, [FF, C])
    m.set(`${p}.mlp.down_proj.weight`, [C, FF])
  }
  m.set('model.norm.weight', [C])
  if (!cfg.tieEmbeddings) m.set('lm_head.weight', [V, C])
  return m
}
