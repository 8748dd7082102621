// A tiny random chat model folder: the weights of writeTinyModel plus the tiny tokenizer of main/tokenizer
// (writeTinyTokenizer), with the model's vocab size and special-token ids taken from that tokenizer so both agree.
// 'llama3' gives a LlamaForCausalLM with the Llama 3 template, 'chatml' a Qwen2ForCausalLM with Qwen2.5's.
// For the bundled demo model and for end-to-end tests (compile → train → chat) without downloads.
import { tinyTokenizerSpec, writeTinyTokenizer, type TinyTokenizerFlavour, type TinyTokenizerSpec } from '../../tokenizer/tiny/writeTinyTokenizer'
import { writeTinyModel, type TinyModelInfo, type TinyModelOptions } from './writeTinyModel'

export interface TinyChatModelOptions extends Omit<TinyModelOptions, 'vocabSize' | 'bosTokenId' | 'eosTokenId' | 'padTokenId'> {
  flavour?: TinyTokenizerFlavour // default 'llama3'
  vocabSize?: number // default 1024 (the tiny tokenizer's default)
  /** Tokenizer training text (default: the tokenizer generator's own corpus). */
  corpus?: string
}

export interface TinyChatModelInfo extends TinyModelInfo {
  tokenizer: TinyTokenizerSpec
}

export async function writeTinyChatModel(dir: string, opts: TinyChatModelOptions = {}): Promise<TinyChatModelInfo> {
  const { flavour = 'llama3', vocabSize, corpus, ...modelOpts } = opts
  const spec = tinyTokenizerSpec(flavour, vocabSize)
  const info = await writeTinyModel(dir, {
    architecture: flavour === 'chatml' ? 'qwen2' : 'llama',
    ...modelOpts,
    vocabSize: spec.vocabSize,
    bosTokenId: spec.bosTokenId ?? undefined,
    eosTokenId: spec.eosTokenId.length === 1 ? spec.eosTokenId[0] : spec.eosTokenId,
    padTokenId: spec.padTokenId,
  })
  // The tokenizer writer also writes generation_config.json, with the same ids.
  const tokenizer = await writeTinyTokenizer(dir, { flavour, vocabSize: spec.vocabSize, corpus })
  return { ...info, tokenizer }
}
