// ModelTokenizer: a model folder's tokenizer (tokenizer.json + tokenizer_config.json + generation_config.json)
// on top of @huggingface/tokenizers, with the two encodings the app needs:
//   encode(text)       the model's own tokenization: control-token strings ("<|eot_id|>") become control tokens.
//                      Only for trusted text (chat-template literals).
//   encodePlain(text)  user text: the same normalizer, pre-tokenizer and BPE model, but added/special tokens are
//                      never matched, so "<|eot_id|>" typed by a user is encoded as ordinary text tokens.
// For ordinary text the two agree exactly (tests/main/tokenizer checks it on the real Llama 3 tokenizer).
import { Tokenizer } from '@huggingface/tokenizers'
import { AppError } from '../errors'

/** A token the config names (bos, eos, pad, unk) with its id. */
export interface NamedToken {
  text: string
  id: number
}

/** An added token from tokenizer.json (control tokens are `special: true`). */
export interface AddedTokenInfo {
  text: string
  id: number
  special: boolean
  lstrip: boolean
  rstrip: boolean
}

export interface NamedChatTemplate {
  name: string
  template: string
}

/** Where the model's chat template(s) came from. */
export type TemplateFile = 'tokenizer_config.json' | 'chat_template.jinja' | 'chat_template.json'

export interface TokenizerFiles {
  /** Parsed tokenizer.json. */
  tokenizerJson: unknown
  /** Parsed tokenizer_config.json. */
  tokenizerConfig: unknown
  /** Parsed generation_config.json, or null when the folder has none. */
  generationConfig?: unknown
  /** A chat template found in a separate file (chat_template.jinja / chat_template.json), when the config has none. */
  separateTemplate?: { file: TemplateFile; templates: NamedChatTemplate[] } | null
}

/** How a token's source text length can be recovered from its vocabulary string. */
type TokenTextKind = 'byteLevel' | 'metaspace' | 'plain'

const UTF8 = new TextEncoder()

// byte -> byte-level character (GPT-2 order), for the fast byte-level pre-tokenizer below.
const BYTE_TO_CHAR: string[] = (() => {
  const out = new Array<string>(256)
  let n = 0
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)
    out[b] = String.fromCharCode(printable ? b : 256 + n++)
  }
  return out
})()

// GPT-2's byte-to-unicode alphabet used by byte-level BPE (printable bytes map to themselves, the rest to 256+n).
const BYTE_LEVEL_CHARS = new Set(BYTE_TO_CHAR)

/** UTF-8 bytes of `s` written as byte-level characters; the same as tokenizers.js's ByteLevel, about 5x faster. */
export function byteLevelChars(s: string): string {
  const B = BYTE_TO_CHAR
  let out = ''
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i)
    if (c < 0x80) {
      out += B[c]
      continue
    }
    if (c < 0x800) {
      out += B[0xc0 | (c >> 6)] + B[0x80 | (c & 63)]
      continue
    }
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1)
      if (d >= 0xdc00 && d <= 0xdfff) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00)
        out += B[0xf0 | (cp >> 18)] + B[0x80 | ((cp >> 12) & 63)] + B[0x80 | ((cp >> 6) & 63)] + B[0x80 | (cp & 63)]
        i++
        continue
      }
    }
    if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd // lone surrogate: TextEncoder writes U+FFFD
    out += B[0xe0 | (c >> 12)] + B[0x80 | ((c >> 6) & 63)] + B[0x80 | (c & 63)]
  }
  return out
}

type JsonObject = Record<string, unknown>

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Token text from a config field that is a string or an AddedToken dict ({ content: "..." }). */
function tokenText(v: unknown): string | null {
  if (typeof v === 'string') return v
  if (isObject(v) && typeof v.content === 'string') return v.content
  return null
}

function idList(v: unknown): number[] {
  if (typeof v === 'number' && Number.isInteger(v)) return [v]
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number' && Number.isInteger(x))
  return []
}

function mentionsType(node: unknown, type: string): boolean {
  if (Array.isArray(node)) return node.some((n) => mentionsType(n, type))
  if (!isObject(node)) return false
  if (node.type === type) return true
  return Object.values(node).some((v) => typeof v === 'object' && mentionsType(v, type))
}

/** Parses `chat_template` from tokenizer_config.json: a string, or a list of { name, template }. */
export function parseChatTemplates(value: unknown, file: string): NamedChatTemplate[] {
  if (value === undefined || value === null) return []
  if (typeof value === 'string') return value.trim() ? [{ name: 'default', template: value }] : []
  if (Array.isArray(value)) {
    const out: NamedChatTemplate[] = []
    for (const item of value) {
      if (isObject(item) && typeof item.name === 'string' && typeof item.template === 'string') {
        out.push({ name: item.name, template: item.template })
      } else {
        throw new AppError(
          'INVALID_ARGUMENT',
          `${file}: "chat_template" is a list, but one entry is not { "name": ..., "template": ... }. Fix the file or download the model again.`,
          { file },
        )
      }
    }
    return out
  }
  throw new AppError('INVALID_ARGUMENT', `${file}: "chat_template" must be a string or a list of named templates. Fix the file or download the model again.`, { file })
}

export class ModelTokenizer {
  /** The model folder (or a label for tokenizers built from objects). */
  readonly dir: string
  /** Number of ids the tokenizer can produce: max id + 1 over the vocabulary and the added tokens. */
  readonly vocabSize: number
  readonly bos: NamedToken | null
  /** The config's eos token (the first of eosIds when only generation_config names one). */
  readonly eos: NamedToken | null
  /** Every end-of-sequence id: tokenizer_config's eos_token plus generation_config's eos_token_id (int or list). */
  readonly eosIds: number[]
  readonly pad: NamedToken | null
  readonly unk: NamedToken | null
  readonly addedTokens: AddedTokenInfo[] = []
  /** Chat templates shipped with the model ([] when none); `templateFile` says which file held them. */
  readonly chatTemplates: NamedChatTemplate[]
  readonly templateFile: TemplateFile | null
  /** Special-token strings exactly as tokenizer_config.json names them, for chat templates (bos_token ...). */
  readonly templateTokens: Record<string, string> = {}
  /** generation_config.json as parsed, or null. */
  readonly generationConfig: JsonObject | null

  private readonly tok: Tokenizer
  private readonly addedIds: Uint8Array
  private readonly addedById = new Map<number, AddedTokenInfo>()
  private readonly addedByText = new Map<string, AddedTokenInfo>()
  private readonly textKind: TokenTextKind
  private tokenBytesCache: Int32Array | null = null
  /** Llama 3 / Qwen2 style pre-tokenizer (Split regex, then ByteLevel without regex) done faster, or null. */
  private readonly fastPre: ((text: string) => string[]) | null

  constructor(dir: string, files: TokenizerFiles) {
    this.dir = dir
    const json = files.tokenizerJson
    const config = files.tokenizerConfig
    if (!isObject(json) || !isObject(json.model)) {
      throw new AppError('INVALID_ARGUMENT', `tokenizer.json in ${dir} has no "model" section. Download the model again (the file may be incomplete).`, {
        file: 'tokenizer.json',
      })
    }
    if (!isObject(config)) {
      throw new AppError('INVALID_ARGUMENT', `tokenizer_config.json in ${dir} is not a JSON object. Fix the file or download the model again.`, {
        file: 'tokenizer_config.json',
      })
    }
    if (config.remove_space === true || config.do_lowercase_and_remove_accent === true) {
      throw new AppError('UNSUPPORTED', `tokenizer_config.json in ${dir} asks for remove_space/lowercasing, which Llama-family tokenizers never use. Pick a Llama, Qwen or Mistral model.`, {
        file: 'tokenizer_config.json',
      })
    }
    const gen = files.generationConfig
    if (gen !== undefined && gen !== null && !isObject(gen)) {
      throw new AppError('INVALID_ARGUMENT', `generation_config.json in ${dir} is not a JSON object. Fix or delete the file, or download the model again.`, {
        file: 'generation_config.json',
      })
    }
    this.generationConfig = isObject(gen) ? gen : null
    const jsonWithDefaults: JsonObject = {
      normalizer: null,
      pre_tokenizer: null,
      post_processor: null,
      decoder: null,
      ...json,
      added_tokens: Array.isArray(json.added_tokens) ? json.added_tokens : [],
    }
    try {
      this.tok = new Tokenizer(jsonWithDefaults, config)
    } catch (err) {
      throw new AppError(
        'UNSUPPORTED',
        `tokenizer.json in ${dir} could not be loaded (${err instanceof Error ? err.message : String(err)}). Download the model again, or pick a Llama, Qwen or Mistral model.`,
        { file: 'tokenizer.json' },
      )
    }

    // Added tokens (control tokens and any others): never produced from user text.
    let maxId = this.tok.model?.vocab.length ? this.tok.model.vocab.length - 1 : -1
    for (const t of jsonWithDefaults.added_tokens as unknown[]) {
      if (!isObject(t) || typeof t.content !== 'string' || typeof t.id !== 'number') continue
      const info: AddedTokenInfo = {
        text: t.content,
        id: t.id,
        special: t.special === true,
        lstrip: t.lstrip === true,
        rstrip: t.rstrip === true,
      }
      this.addedTokens.push(info)
      this.addedById.set(info.id, info)
      this.addedByText.set(info.text, info)
      if (info.id > maxId) maxId = info.id
    }
    this.vocabSize = maxId + 1
    this.addedIds = new Uint8Array(this.vocabSize)
    for (const t of this.addedTokens) this.addedIds[t.id] = 1

    const named = (field: string): NamedToken | null => {
      const text = tokenText(config[field])
      if (text === null) return null
      const id = this.tokenToId(text)
      if (id === undefined) {
        throw new AppError('INVALID_ARGUMENT', `tokenizer_config.json in ${dir} names ${field} "${text}", which tokenizer.json does not contain. Download the model again.`, {
          file: 'tokenizer_config.json',
        })
      }
      return { text, id }
    }
    const byId = (id: number | undefined): NamedToken | null => {
      if (id === undefined) return null
      const text = this.idToToken(id)
      return text === undefined ? null : { text, id }
    }
    this.bos = named('bos_token') ?? byId(idList(this.generationConfig?.bos_token_id)[0])
    const configEos = named('eos_token')
    const genEos = idList(this.generationConfig?.eos_token_id)
    for (const id of genEos) {
      if (id < 0 || id >= this.vocabSize) {
        throw new AppError('INVALID_ARGUMENT', `generation_config.json in ${dir} has eos_token_id ${id}, outside the tokenizer's ${this.vocabSize} ids. Fix the file or download the model again.`, {
          file: 'generation_config.json',
        })
      }
    }
    this.eosIds = [...new Set([...(configEos ? [configEos.id] : []), ...genEos])]
    this.eos = configEos ?? byId(genEos[0])
    this.pad = named('pad_token') ?? byId(idList(this.generationConfig?.pad_token_id)[0])
    this.unk = named('unk_token')
    for (const field of ['bos_token', 'eos_token', 'pad_token', 'unk_token']) {
      const text = tokenText(config[field])
      if (text !== null) this.templateTokens[field] = text
    }

    const own = parseChatTemplates(config.chat_template, 'tokenizer_config.json')
    if (own.length > 0) {
      this.chatTemplates = own
      this.templateFile = 'tokenizer_config.json'
    } else if (files.separateTemplate && files.separateTemplate.templates.length > 0) {
      this.chatTemplates = files.separateTemplate.templates
      this.templateFile = files.separateTemplate.file
    } else {
      this.chatTemplates = []
      this.templateFile = null
    }

    this.fastPre = ModelTokenizer.fastPreTokenizer(json, this.tok)
    this.textKind = mentionsType(json.pre_tokenizer, 'ByteLevel') || mentionsType(json.decoder, 'ByteLevel')
      ? 'byteLevel'
      : JSON.stringify(json.decoder ?? null).includes('\u2581') || mentionsType(json.pre_tokenizer, 'Metaspace')
        ? 'metaspace'
        : 'plain'
  }

  /**
   * The pre-tokenizers before a final ByteLevel(use_regex: false) step run as tokenizers.js runs them; the byte-level
   * mapping itself (the slow part there) is byteLevelChars. Tests compare both on varied text.
   */
  private static fastPreTokenizer(json: JsonObject, tok: Tokenizer): ((text: string) => string[]) | null {
    const cfg = json.pre_tokenizer
    if (!isObject(cfg) || cfg.type !== 'Sequence' || !Array.isArray(cfg.pretokenizers)) return null
    const steps = cfg.pretokenizers as unknown[]
    const last = steps[steps.length - 1]
    if (!isObject(last) || last.type !== 'ByteLevel' || last.use_regex !== false || last.add_prefix_space === true) return null
    if (!steps.slice(0, -1).every((s) => isObject(s) && s.type === 'Split')) return null
    const impl = (tok.pre_tokenizer as unknown as { tokenizers?: Array<{ pre_tokenize: (t: string[]) => string[] }> }).tokenizers
    if (!Array.isArray(impl) || impl.length !== steps.length) return null
    const before = impl.slice(0, -1)
    return (text: string) => {
      let pieces = [text]
      for (const p of before) pieces = p.pre_tokenize(pieces)
      for (let i = 0; i < pieces.length; i++) pieces[i] = byteLevelChars(pieces[i])
      return pieces
    }
  }

  /** The model's template: the one named "default", else the first; null when the model ships none. */
  get defaultChatTemplate(): string | null {
    return (this.chatTemplates.find((t) => t.name === 'default') ?? this.chatTemplates[0])?.template ?? null
  }

  /** Added token by its text (e.g. "<|eot_id|>"), or undefined. */
  addedToken(text: string): AddedTokenInfo | undefined {
    return this.addedByText.get(text)
  }

  /** True for ids of added tokens (control tokens and other added tokens). */
  isAddedId(id: number): boolean {
    return this.addedIds[id] === 1
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token)
  }

  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id)
  }

  /** The model's own tokenization of trusted text (no BOS added); control-token strings become control tokens. */
  encode(text: string): number[] {
    if (text.length === 0) return []
    return this.tok.encode(text, { add_special_tokens: false }).ids
  }

  /**
   * User text as ordinary text: normalizer, pre-tokenizer and model as the tokenizer does between control tokens,
   * but control-token strings in `text` are not matched (they come out as ordinary text tokens).
   * `sectionIndex` is the position of this text among the pieces a whole string splits into at control tokens
   * (0 = the string's first piece); only Metaspace tokenizers with prepend_scheme "first" care.
   */
  encodePlain(text: string, sectionIndex = 0): number[] {
    if (text.length === 0) return []
    let t = text
    if (this.tok.normalizer) t = this.tok.normalizer(t)
    if (t.length === 0) return []
    const pre = this.fastPre ? this.fastPre(t) : this.tok.pre_tokenizer ? this.tok.pre_tokenizer(t, { section_index: sectionIndex }) : [t]
    const model = this.tok.model
    if (!model) return []
    const ids = this.toIds(model(pre))
    if (!ids.some((id) => this.addedIds[id] === 1)) return ids
    // tokenizers.js keeps added tokens in the model's vocabulary, so a pre-token that equals a control token's text
    // would map to it. The Rust library's model never contains them: redo such pieces from their merges alone.
    const out: number[] = []
    for (const p of pre) {
      let piece = this.toIds(model([p]))
      if (piece.some((id) => this.addedIds[id] === 1)) {
        const bpe = (model as unknown as { bpe?: (s: string) => string[] }).bpe
        piece = bpe ? this.toIds(bpe.call(model, p)) : []
        if (piece.length === 0 || piece.some((id) => this.addedIds[id] === 1)) {
          piece = this.toIds(model(Array.from(p)))
        }
      }
      out.push(...piece)
    }
    return out
  }

  private toIds(tokens: string[]): number[] {
    const map = this.tok.model!.tokens_to_ids
    const unk = this.tok.model!.unk_token_id
    const ids = new Array<number>(tokens.length)
    for (let i = 0; i < tokens.length; i++) {
      const id = map.get(tokens[i]) ?? unk
      if (id === undefined) {
        throw new AppError('UNSUPPORTED', `The tokenizer in ${this.dir} cannot encode the text piece "${tokens[i]}" and has no unknown token. Pick another model.`)
      }
      ids[i] = id
    }
    return ids
  }

  /**
   * How many bytes of the source text (UTF-8) each id stands for, or -1 when unknown. Byte-level BPE: one vocabulary
   * character per byte. Metaspace (SentencePiece-style): "▁" is one space, "<0xNN>" one byte.
   */
  tokenSourceBytes(): Int32Array {
    if (this.tokenBytesCache) return this.tokenBytesCache
    const table = new Int32Array(this.vocabSize).fill(-1)
    for (let id = 0; id < this.vocabSize; id++) {
      const t = this.idToToken(id)
      if (t === undefined) continue
      if (this.addedIds[id]) {
        table[id] = UTF8.encode(t).length
      } else if (this.textKind === 'byteLevel') {
        let ok = true
        for (const ch of t) if (!BYTE_LEVEL_CHARS.has(ch)) ok = false
        table[id] = ok ? t.length : -1
      } else if (this.textKind === 'metaspace') {
        if (/^<0x[0-9A-Fa-f]{2}>$/.test(t)) table[id] = 1
        else table[id] = UTF8.encode(t).length - 2 * (t.split('\u2581').length - 1)
      } else {
        table[id] = -1
      }
    }
    this.tokenBytesCache = table
    return table
  }

  /** The character a tokenizer puts before a word when it adds a prefix space ("Ġ" byte-level, "▁" Metaspace). */
  get prefixSpaceChar(): string {
    return this.textKind === 'byteLevel' ? '\u0120' : '\u2581'
  }

  /** Text for ids. Lossless by default (no clean-up of spaces before punctuation). */
  decode(ids: ArrayLike<number>, options: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return ''
    return this.tok.decode(Array.from(ids), { skip_special_tokens: options.skipSpecialTokens ?? false, clean_up_tokenization_spaces: false })
  }

  /** The added token with this id, if any. */
  addedTokenById(id: number): AddedTokenInfo | undefined {
    return this.addedById.get(id)
  }
}
