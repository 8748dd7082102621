// Writes a tiny but REAL Hugging Face tokenizer folder: tokenizer.json (byte-level BPE whose merges are trained here
// on a corpus, Llama-3-style pre-tokenizer), tokenizer_config.json (special tokens, chat template) and
// generation_config.json. Two flavours:
//   llama3  <|begin_of_text|> <|end_of_text|> <|start_header_id|> <|end_header_id|> <|eot_id|>, the Llama 3 template
//   chatml  Qwen2.5-style <|endoftext|> <|im_start|> <|im_end|>, Qwen2.5's template (default system prompt)
// Control tokens take the last ids, so `tinyTokenizerSpec` knows every id without training (the tiny model generator,
// main/models/tiny, uses it to match). Byte-level BPE over all 256 bytes: any text round-trips losslessly.
import { readFileSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { Tokenizer } from '@huggingface/tokenizers'
import { writeFileAtomic } from '../../datasets/compiler/writeFileAtomic'
import { resourcesDir } from '../../paths'
import { LLAMA3_TEMPLATE, QWEN25_TEMPLATE } from '../builtinTemplates'
import { trainByteLevelBpe } from './trainByteLevelBpe'

export type TinyTokenizerFlavour = 'llama3' | 'chatml'

export interface TinyTokenizerOptions {
  flavour?: TinyTokenizerFlavour // default 'llama3'
  /** Total ids including the control tokens (default 1024; at least 256 + control tokens + 1). */
  vocabSize?: number
  /** Training text (default: the zh-TW sample project resources/sample/hr-handbook.zh-TW.csv plus chat-role words). */
  corpus?: string
  /** Add an NFC normalizer, as Qwen2.5's tokenizer has (default false: exactly lossless for any text). */
  nfc?: boolean
}

export interface TinyTokenizerSpec {
  flavour: TinyTokenizerFlavour
  vocabSize: number
  /** Control token text → id. */
  specialTokens: Record<string, number>
  bosTokenId: number | null
  /** As written to generation_config.json. */
  eosTokenId: number[]
  padTokenId: number | null
  /** The token that ends an assistant turn (<|eot_id|> / <|im_end|>). */
  endOfTurnId: number
}

export interface TinyTokenizerFiles {
  tokenizerJson: Record<string, unknown>
  tokenizerConfig: Record<string, unknown>
  generationConfig: Record<string, unknown>
  spec: TinyTokenizerSpec
}

export const TINY_TOKENIZER_DEFAULT_VOCAB = 1024

const SPECIALS: Record<TinyTokenizerFlavour, string[]> = {
  llama3: ['<|begin_of_text|>', '<|end_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>'],
  chatml: ['<|endoftext|>', '<|im_start|>', '<|im_end|>'],
}

// Llama 3's and Qwen2's pre-tokenizer patterns (Qwen2 splits digits one by one).
const LLAMA3_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
const QWEN2_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/** Every id of the tiny tokenizer of a flavour and size (no training needed). */
export function tinyTokenizerSpec(flavour: TinyTokenizerFlavour = 'llama3', vocabSize = TINY_TOKENIZER_DEFAULT_VOCAB): TinyTokenizerSpec {
  const names = SPECIALS[flavour]
  if (!names) throw new Error(`Unknown tiny tokenizer flavour ${String(flavour)}`)
  if (!Number.isInteger(vocabSize) || vocabSize < 256 + names.length + 1) {
    throw new Error(`The tiny tokenizer needs a vocabulary of at least ${256 + names.length + 1} ids, not ${vocabSize}`)
  }
  const first = vocabSize - names.length
  const specialTokens = Object.fromEntries(names.map((n, i) => [n, first + i]))
  if (flavour === 'llama3') {
    return {
      flavour,
      vocabSize,
      specialTokens,
      bosTokenId: specialTokens['<|begin_of_text|>'],
      eosTokenId: [specialTokens['<|end_of_text|>'], specialTokens['<|eot_id|>']],
      padTokenId: null,
      endOfTurnId: specialTokens['<|eot_id|>'],
    }
  }
  return {
    flavour,
    vocabSize,
    specialTokens,
    bosTokenId: specialTokens['<|endoftext|>'],
    eosTokenId: [specialTokens['<|im_end|>'], specialTokens['<|endoftext|>']],
    padTokenId: specialTokens['<|endoftext|>'],
    endOfTurnId: specialTokens['<|im_end|>'],
  }
}

function defaultCorpus(): string {
  let csv = ''
  try {
    csv = readFileSync(join(resourcesDir(), 'sample', 'hr-handbook.zh-TW.csv'), 'utf8')
  } catch {
    /* packaged without samples: the role words below still train a usable (if poor) tokenizer */
  }
  return `${csv}\nsystem\n\nuser\n\nassistant\n\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n你是一個zh-tw版本的聊天機器人\n`
}

function preTokenizerJson(flavour: TinyTokenizerFlavour): Record<string, unknown> {
  return {
    type: 'Sequence',
    pretokenizers: [
      { type: 'Split', pattern: { Regex: flavour === 'llama3' ? LLAMA3_PATTERN : QWEN2_PATTERN }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: flavour === 'llama3', use_regex: false },
    ],
  }
}

const trained = new Map<string, TinyTokenizerFiles>()

/** The three files' contents (trained deterministically; cached per options in this process). */
export function buildTinyTokenizer(options: TinyTokenizerOptions = {}): TinyTokenizerFiles {
  const flavour = options.flavour ?? 'llama3'
  const spec = tinyTokenizerSpec(flavour, options.vocabSize ?? TINY_TOKENIZER_DEFAULT_VOCAB)
  const corpus = options.corpus ?? defaultCorpus()
  const nfc = options.nfc ?? false
  const key = `${flavour}|${spec.vocabSize}|${nfc}|${corpus}`
  const hit = trained.get(key)
  if (hit) return structuredClone(hit)

  // Pre-tokenize the corpus with the very pre-tokenizer the file will declare (tokenizers.js), count words.
  const preOnly = new Tokenizer(
    {
      normalizer: nfc ? { type: 'NFC' } : null,
      pre_tokenizer: preTokenizerJson(flavour),
      post_processor: null,
      decoder: null,
      added_tokens: [],
      model: { type: 'BPE', vocab: { a: 0 }, merges: [] },
    },
    {},
  )
  const words = new Map<string, number>()
  const text = nfc ? corpus.normalize('NFC') : corpus
  for (const w of preOnly.pre_tokenizer!(text, { section_index: 0 })) words.set(w, (words.get(w) ?? 0) + 1)

  const names = SPECIALS[flavour]
  const baseSize = spec.vocabSize - names.length
  const { vocab, merges } = trainByteLevelBpe(words, baseSize)
  if (vocab.size !== baseSize) {
    throw new Error(`The corpus is too small to train ${baseSize} tokens (got ${vocab.size}); give a longer corpus or a smaller vocabSize.`)
  }
  const addedTokens = names.map((content) => ({
    id: spec.specialTokens[content],
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }))
  const bos = names[0]
  const postProcessor =
    flavour === 'llama3'
      ? {
          type: 'Sequence',
          processors: [
            { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
            {
              type: 'TemplateProcessing',
              single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
              pair: [
                { SpecialToken: { id: bos, type_id: 0 } },
                { Sequence: { id: 'A', type_id: 0 } },
                { SpecialToken: { id: bos, type_id: 1 } },
                { Sequence: { id: 'B', type_id: 1 } },
              ],
              special_tokens: { [bos]: { id: bos, ids: [spec.specialTokens[bos]], tokens: [bos] } },
            },
          ],
        }
      : { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false }

  const tokenizerJson: Record<string, unknown> = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: nfc ? { type: 'NFC' } : null,
    pre_tokenizer: preTokenizerJson(flavour),
    post_processor: postProcessor,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: flavour === 'llama3',
      vocab: Object.fromEntries(vocab),
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  }
  const addedTokensDecoder = Object.fromEntries(addedTokens.map(({ id, ...rest }) => [String(id), rest]))
  const tokenizerConfig: Record<string, unknown> =
    flavour === 'llama3'
      ? {
          added_tokens_decoder: addedTokensDecoder,
          bos_token: '<|begin_of_text|>',
          chat_template: LLAMA3_TEMPLATE,
          clean_up_tokenization_spaces: true,
          eos_token: '<|eot_id|>',
          model_input_names: ['input_ids', 'attention_mask'],
          model_max_length: 8192,
          tokenizer_class: 'PreTrainedTokenizerFast',
        }
      : {
          add_prefix_space: false,
          added_tokens_decoder: addedTokensDecoder,
          additional_special_tokens: ['<|im_start|>', '<|im_end|>'],
          bos_token: null,
          chat_template: QWEN25_TEMPLATE,
          clean_up_tokenization_spaces: false,
          eos_token: '<|im_end|>',
          errors: 'replace',
          model_max_length: 32768,
          pad_token: '<|endoftext|>',
          split_special_tokens: false,
          tokenizer_class: 'PreTrainedTokenizerFast',
          unk_token: null,
        }
  const generationConfig: Record<string, unknown> =
    flavour === 'llama3'
      ? { bos_token_id: spec.bosTokenId, eos_token_id: spec.eosTokenId, do_sample: true, temperature: 0.6, top_p: 0.9, transformers_version: '4.44.0' }
      : {
          bos_token_id: spec.bosTokenId,
          pad_token_id: spec.padTokenId,
          eos_token_id: spec.eosTokenId,
          do_sample: true,
          repetition_penalty: 1.05,
          temperature: 0.7,
          top_p: 0.8,
          top_k: 20,
          transformers_version: '4.44.0',
        }
  const files: TinyTokenizerFiles = { tokenizerJson, tokenizerConfig, generationConfig, spec }
  trained.set(key, structuredClone(files))
  return files
}

/**
 * Writes tokenizer.json, tokenizer_config.json and generation_config.json into `dir` (created when missing; each
 * file atomically). When the tiny model generator writes generation_config.json too, pass it the same ids (spec).
 */
export async function writeTinyTokenizer(dir: string, options: TinyTokenizerOptions = {}): Promise<TinyTokenizerSpec & { files: string[] }> {
  const { tokenizerJson, tokenizerConfig, generationConfig, spec } = buildTinyTokenizer(options)
  await mkdir(dir, { recursive: true })
  const out: Array<[string, unknown]> = [
    ['tokenizer.json', tokenizerJson],
    ['tokenizer_config.json', tokenizerConfig],
    ['generation_config.json', generationConfig],
  ]
  for (const [name, value] of out) await writeFileAtomic(join(dir, name), [`${JSON.stringify(value, null, 2)}\n`])
  return { ...spec, files: out.map(([name]) => name) }
}
