// The tokenizer of a Hugging Face folder as GGUF metadata, the way llama.cpp's convert_hf_to_gguf.py writes a
// byte-level BPE ("gpt2") vocabulary: every id's token string (ids the tokenizer lacks become "[PAD<id>]", UNUSED),
// token types (NORMAL 1, CONTROL 3 for special added tokens and <|...|> look-alikes, USER_DEFINED 4 for other added
// tokens, UNUSED 5), the merges ("a b", spaces inside a part written as U+0120), the pre-tokenizer name llama.cpp
// knows the splitting regex by, the special-token ids, add_bos/add_eos, and the chat template byte for byte.
// The pre-tokenizer is recognised from tokenizer.json's Split regex (convert_hf_to_gguf.py hashes token ids of a
// test string instead; the regex is what that hash stands for).
import { AppError } from '../../errors'
import { kv, type GgufMetadata } from './ggufFormat'

/** llama.cpp token types (gguf TokenType). */
export const TokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const

type Json = Record<string, unknown>

const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)

// Split regexes of tokenizer.json and the llama.cpp pre-tokenizer that implements them (llama-vocab.cpp).
const KNOWN_SPLITS: { pattern: string; pre: string }[] = [
  // Llama 3 (and 3.1/3.2): numbers in groups of up to 3 digits
  { pattern: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", pre: 'llama-bpe' },
  // Qwen2 / Qwen2.5: one digit per token
  { pattern: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", pre: 'qwen2' },
]

function collect(node: unknown, type: string, out: Json[] = []): Json[] {
  if (Array.isArray(node)) for (const n of node) collect(n, type, out)
  else if (isObj(node)) {
    if (node.type === type) out.push(node)
    for (const v of Object.values(node)) if (typeof v === 'object') collect(v, type, out)
  }
  return out
}

/** The llama.cpp pre-tokenizer name for a tokenizer.json, or a plain error naming what is unsupported. */
export function detectPreTokenizer(tokenizerJson: Json): string {
  const pre = tokenizerJson.pre_tokenizer
  const splits = collect(pre, 'Split')
  const byteLevel = collect(pre, 'ByteLevel')
  if (splits.length === 1 && byteLevel.length >= 1) {
    const p = splits[0].pattern
    const regex = isObj(p) && typeof p.Regex === 'string' ? p.Regex : null
    const known = KNOWN_SPLITS.find((k) => k.pattern === regex)
    if (known) return known.pre
  }
  if (splits.length === 0 && byteLevel.length === 1 && byteLevel[0].use_regex !== false) return 'gpt-2'
  throw new AppError(
    'UNSUPPORTED',
    'GGUF export supports the Llama 3 and Qwen2/Qwen2.5 tokenizers (byte-level BPE); this model\'s tokenizer splits text differently, so llama.cpp would tokenize it wrongly. Export the merged Hugging Face folder instead and convert it with llama.cpp\'s convert_hf_to_gguf.py.',
    { problem: 'tokenizer' },
  )
}

function looksSpecial(text: string): boolean {
  return (text.startsWith('<|') && text.endsWith('|>')) || (text.startsWith('<｜') && text.endsWith('｜>')) || text === '<pad>' || text === '<mask>'
}

function tokenText(v: unknown): string | null {
  if (typeof v === 'string') return v
  if (isObj(v) && typeof v.content === 'string') return v.content
  return null
}

export interface GgufTokenizerInput {
  tokenizerJson: Json
  tokenizerConfig: Json
  /** config.json vocab_size: the embedding's rows (may exceed the tokenizer's ids). */
  vocabSize: number
  /** The chat template used in training, written byte for byte. */
  chatTemplate: string
  /** The token that ends an assistant turn (<|eot_id|>, <|im_end|>). */
  endOfTurnId: number
  /** Whether the bos token starts every prompt, as the training template renders it (null: from the tokenizer files). */
  addBos: boolean | null
}

export interface GgufTokenizerSummary {
  pre: string
  tokens: number
  merges: number
  bosId: number | null
  eosId: number | null
  eotId: number
  padId: number | null
  addBos: boolean
}

/** Adds the tokenizer.* keys to `md` and returns what was written (for the README and the report). */
export function addTokenizerMetadata(md: GgufMetadata, input: GgufTokenizerInput): GgufTokenizerSummary {
  const tj = input.tokenizerJson
  const model = isObj(tj.model) ? tj.model : null
  if (!model || model.type !== 'BPE' || !isObj(model.vocab)) {
    throw new AppError('UNSUPPORTED', 'GGUF export needs a byte-level BPE tokenizer (tokenizer.json model type "BPE"). Export the merged Hugging Face folder instead.', { problem: 'tokenizer' })
  }
  if (model.byte_fallback === true) {
    throw new AppError('UNSUPPORTED', 'This model uses a SentencePiece-style tokenizer (byte fallback), which this GGUF writer does not support yet. Export the merged Hugging Face folder instead and convert it with llama.cpp\'s convert_hf_to_gguf.py.', { problem: 'tokenizer' })
  }
  const pre = detectPreTokenizer(tj)

  const byId = new Map<number, { text: string; type: number }>()
  for (const [text, id] of Object.entries(model.vocab as Record<string, number>)) {
    if (Number.isInteger(id)) byId.set(id, { text, type: TokenType.NORMAL })
  }
  const added = Array.isArray(tj.added_tokens) ? (tj.added_tokens as Json[]) : []
  const textToId = new Map<string, number>()
  for (const [id, t] of byId) textToId.set(t.text, id)
  for (const a of added) {
    if (typeof a.id !== 'number' || typeof a.content !== 'string') continue
    const special = a.special === true || looksSpecial(a.content)
    byId.set(a.id, { text: a.content, type: special ? TokenType.CONTROL : TokenType.USER_DEFINED })
    textToId.set(a.content, a.id)
  }
  let maxId = -1
  for (const id of byId.keys()) if (id > maxId) maxId = id
  if (maxId >= input.vocabSize) {
    throw new AppError('INVALID_ARGUMENT', `The tokenizer has token id ${maxId}, but the model's vocab_size is ${input.vocabSize}. The model folder is inconsistent.`)
  }
  const tokens: string[] = new Array(input.vocabSize)
  const types: number[] = new Array(input.vocabSize)
  for (let i = 0; i < input.vocabSize; i++) {
    const t = byId.get(i)
    tokens[i] = t ? t.text : `[PAD${i}]`
    types[i] = t ? t.type : TokenType.UNUSED
  }

  const rawMerges = Array.isArray(model.merges) ? (model.merges as unknown[]) : []
  const merges = rawMerges.map((m) => {
    if (typeof m === 'string') return m
    if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') {
      return m.map((part: string) => part.replace(/ /g, '\u0120')).join(' ')
    }
    throw new AppError('INVALID_ARGUMENT', 'tokenizer.json has merges in an unknown format. Download the model again.')
  })
  if (merges.length === 0) throw new AppError('UNSUPPORTED', 'tokenizer.json has no BPE merges; llama.cpp cannot use it.', { problem: 'tokenizer' })

  const cfg = input.tokenizerConfig
  const idOf = (key: string): number | null => {
    const text = tokenText(cfg[key])
    if (text === null) return null
    const id = textToId.get(text)
    return id === undefined ? null : id
  }
  const bosId = idOf('bos_token')
  const eosId = idOf('eos_token')
  const padId = idOf('pad_token')
  // add_bos: what training did (the template writes the bos token first: Llama 3), else the config's flag, else
  // whether the post-processor puts the bos token first. Ollama's TEMPLATE and llama.cpp rely on it for the bos.
  let addBos = false
  if (input.addBos !== null) addBos = input.addBos && bosId !== null
  else if (typeof cfg.add_bos_token === 'boolean') addBos = cfg.add_bos_token
  else if (bosId !== null) {
    for (const tp of collect(tj.post_processor, 'TemplateProcessing')) {
      const single = Array.isArray(tp.single) ? (tp.single as Json[]) : []
      const first = single[0]
      const sid = isObj(first) && isObj(first.SpecialToken) ? first.SpecialToken.id : null
      if (single.length > 1 && sid === tokens[bosId]) addBos = true
    }
  }
  const addEos = typeof cfg.add_eos_token === 'boolean' ? cfg.add_eos_token : false

  md.set('tokenizer.ggml.model', kv.str('gpt2'))
  md.set('tokenizer.ggml.pre', kv.str(pre))
  md.set('tokenizer.ggml.tokens', kv.strings(tokens))
  md.set('tokenizer.ggml.token_type', kv.i32s(types))
  md.set('tokenizer.ggml.merges', kv.strings(merges))
  if (bosId !== null) md.set('tokenizer.ggml.bos_token_id', kv.u32(bosId))
  if (eosId !== null) md.set('tokenizer.ggml.eos_token_id', kv.u32(eosId))
  md.set('tokenizer.ggml.eot_token_id', kv.u32(input.endOfTurnId))
  if (padId !== null) md.set('tokenizer.ggml.padding_token_id', kv.u32(padId))
  md.set('tokenizer.ggml.add_bos_token', kv.bool(addBos))
  md.set('tokenizer.ggml.add_eos_token', kv.bool(addEos))
  md.set('tokenizer.chat_template', kv.str(input.chatTemplate))
  return { pre, tokens: tokens.length, merges: merges.length, bosId, eosId, eotId: input.endOfTurnId, padId, addBos }
}
