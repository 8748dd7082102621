// ChatFormat: a tokenizer plus a chat template: renders conversations exactly as the model's template does and
// encodes them so that
//   - the ids equal the model tokenizer's ids for the rendered string (checked against the real Llama 3 tokenizer),
//   - control-token strings inside message text stay ordinary text (a user cannot inject "<|eot_id|>"),
//   - each assistant answer's token span (plus its end-of-turn token) is known, for the training loss mask.
//
// How: the template is rendered with placeholders instead of message text. Template literals are split at the
// tokenizer's added tokens (those become control-token ids); the text between two control tokens ("chunk", made of
// template literals and message text) is encoded as one piece with added-token matching off, which is what the
// tokenizer does for a whole string minus the injection. Token byte lengths map each message's text back to its
// tokens. For templates that only insert message text (see templateAnalysis.ts) the placeholder rendering is done
// once per conversation shape and reused; other templates are rendered per conversation with markers around the text.
import { Template } from '@huggingface/jinja'
import { AppError } from '../errors'
import { BUILTIN_TEMPLATES, isBuiltinTemplateName, type BuiltinTemplateName } from './builtinTemplates'
import type { AddedTokenInfo, ModelTokenizer } from './ModelTokenizer'
import { analyseTemplate, type TemplateAnalysis } from './templateAnalysis'

export interface ChatMessage {
  role: string
  content: string
}

/** 'model': the template shipped with the model (error when there is none); a built-in name; or a custom Jinja text. */
export type TemplateChoice = 'model' | BuiltinTemplateName | { jinja: string }

export interface EncodeChatOptions {
  /** Append the assistant header so the model writes the next answer (chat), default false (training). */
  addGenerationPrompt?: boolean
}

export interface AnswerSpan {
  /** Index of the assistant message in the conversation. */
  message: number
  /** First token of the answer. */
  start: number
  /** One past the answer's end-of-turn token: [start, end) are the answer's target tokens. */
  end: number
}

export interface EncodedChat {
  ids: number[]
  /** Every assistant answer with its end-of-turn token, in order. */
  answers: AnswerSpan[]
  /** True when a piece of text could not be matched to the whole-string tokenization and was encoded apart. */
  boundaryFallback: boolean
}

// A rendered conversation as parts: template text, a control token, or a message's text.
type Part = { kind: 'text'; text: string } | { kind: 'special'; token: AddedTokenInfo } | { kind: 'content'; message: number; text: string | null }

interface Skeleton {
  parts: Part[]
}

const PH_OPEN = '\uE000'
const PH_CLOSE = '\uE001'
const PLACEHOLDER_RE = /\uE000(\d+)\uE001/g
const MAX_SHAPES = 256
const MAX_CHUNK_CACHE = 4096

interface TrieNode {
  next: Map<string, TrieNode>
  token?: AddedTokenInfo
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

export class ChatFormat {
  readonly tokenizer: ModelTokenizer
  /** 'model' or the built-in template's name or 'custom'. */
  readonly templateName: string
  /** Where the template came from, for summaries: "tokenizer_config.json", "builtin:llama3", "custom". */
  readonly templateSource: string
  readonly template: string
  readonly analysis: TemplateAnalysis
  /** The control token the template puts right after an assistant answer (<|eot_id|>, <|im_end|>, </s>). */
  readonly endOfTurnId: number
  /** Ids that end generation: the end-of-turn token and every eos id. */
  readonly stopIds: number[]
  /** Things about this template a user should know (it ignores the system prompt, adds text after the answer ...). */
  readonly warnings: string[] = []

  private readonly compiled: Template
  private readonly trie: TrieNode = { next: new Map() }
  private readonly skeletons = new Map<string, Skeleton>()
  private readonly chunkCache = new Map<string, { ids: number[]; ranges: number[] }>()
  private readonly tokenBytes: Int32Array
  /** Test hook: render every conversation for real (the path used for templates that inspect message text). */
  forcePerConversationRender = false

  constructor(tokenizer: ModelTokenizer, template: string, templateName: string, templateSource: string) {
    this.tokenizer = tokenizer
    this.template = template
    this.templateName = templateName
    this.templateSource = templateSource
    try {
      this.compiled = new Template(template)
    } catch (err) {
      throw new AppError('INVALID_ARGUMENT', `The chat template (${templateSource}) cannot be read: ${errorText(err)}. Choose a built-in template ("llama3" or "chatml") instead.`, {
        templateSource,
      })
    }
    if (template.includes(PH_OPEN) || template.includes(PH_CLOSE)) {
      throw new AppError('UNSUPPORTED', `The chat template (${templateSource}) contains private-use characters U+E000/U+E001. Choose a built-in template instead.`)
    }
    this.analysis = analyseTemplate(this.compiled)
    for (const t of tokenizer.addedTokens) this.addToTrie(t)
    this.tokenBytes = tokenizer.tokenSourceBytes()

    // Probe a one-turn conversation: find the end-of-turn token and facts worth a warning.
    let probe: Part[]
    try {
      probe = this.skeleton(['user', 'assistant'], false).parts
    } catch (err) {
      throw new AppError('INVALID_ARGUMENT', `The chat template (${templateSource}) cannot render a simple question and answer: ${errorText(err)}. Choose a built-in template instead.`, {
        templateSource,
      })
    }
    const answerAt = probe.findIndex((p) => p.kind === 'content' && p.message === 1)
    const endAt = answerAt < 0 ? -1 : probe.findIndex((p, i) => i > answerAt && p.kind === 'special')
    const between = endAt < 0 ? [] : probe.slice(answerAt + 1, endAt)
    if (answerAt < 0 || endAt < 0 || between.some((p) => p.kind === 'content')) {
      throw new AppError(
        'UNSUPPORTED',
        `The chat template (${templateSource}) does not end the assistant's answer with a control token (such as <|eot_id|>, <|im_end|> or </s>), so a trained model would not learn to stop. Choose a built-in template that matches the model ("llama3" or "chatml").`,
        { templateSource },
      )
    }
    this.endOfTurnId = (probe[endAt] as { token: AddedTokenInfo }).token.id
    this.stopIds = [...new Set([this.endOfTurnId, ...tokenizer.eosIds])]
    const after = probe.slice(endAt + 1)
    if (after.some((p) => p.kind === 'special' || (p.kind === 'text' && p.text.trim() !== ''))) {
      const tail = after.map((p) => (p.kind === 'special' ? p.token.text : p.kind === 'text' ? p.text : '')).join('')
      this.warnings.push(`The template adds ${JSON.stringify(tail)} after the last answer even without a generation prompt; it is not a training target in answers-only mode.`)
    }
    try {
      const withSystem = this.skeleton(['system', 'user', 'assistant'], false).parts
      if (!withSystem.some((p) => p.kind === 'content' && p.message === 0)) this.warnings.push('The template ignores the system prompt.')
    } catch (err) {
      this.warnings.push(`The template rejects a system prompt (${errorText(err)}).`)
    }
    const literal = template.match(/<\|[A-Za-z0-9_]+\|>/g) ?? []
    const unknown = [...new Set(literal)].filter((t) => !tokenizer.addedToken(t))
    if (unknown.length > 0) this.warnings.push(`The template writes ${unknown.join(', ')}, which this tokenizer does not have as control tokens.`)
  }

  private addToTrie(t: AddedTokenInfo): void {
    let node = this.trie
    for (const ch of t.text) {
      let next = node.next.get(ch)
      if (!next) node.next.set(ch, (next = { next: new Map() }))
      node = next
    }
    node.token = t
  }

  /** Template literal text → text and control-token parts (longest match, as the tokenizer splits). */
  private splitLiteral(text: string, out: Part[]): void {
    let start = 0
    let i = 0
    while (i < text.length) {
      let node: TrieNode | undefined = this.trie
      let match: AddedTokenInfo | undefined
      let j = i
      while (j < text.length && (node = node.next.get(text[j]))) {
        j++
        if (node.token) match = node.token
      }
      if (match) {
        if (i > start) out.push({ kind: 'text', text: text.slice(start, i) })
        out.push({ kind: 'special', token: match })
        i += match.text.length
        start = i
      } else {
        i++
      }
    }
    if (start < text.length) out.push({ kind: 'text', text: text.slice(start) })
  }

  /** Applies the added tokens' lstrip/rstrip to neighbouring template text, as the tokenizer does. */
  private static stripAround(parts: Part[]): Part[] {
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]
      if (p.kind !== 'special') continue
      const prev = parts[i - 1]
      const next = parts[i + 1]
      if (p.token.lstrip && prev?.kind === 'text') prev.text = prev.text.trimEnd()
      if (p.token.rstrip && next?.kind === 'text') next.text = next.text.trimStart()
    }
    return parts.filter((p) => p.kind !== 'text' || p.text.length > 0)
  }

  private context(messages: ChatMessage[], addGenerationPrompt: boolean): Record<string, unknown> {
    // As transformers' apply_chat_template: the config's special-token strings ('' where unset, which is how an
    // undefined Jinja variable prints), tools/documents None.
    return {
      bos_token: '',
      eos_token: '',
      pad_token: '',
      unk_token: '',
      ...this.tokenizer.templateTokens,
      messages,
      add_generation_prompt: addGenerationPrompt,
      tools: null,
      documents: null,
    }
  }

  private renderRaw(messages: ChatMessage[], addGenerationPrompt: boolean): string {
    try {
      return this.compiled.render(this.context(messages, addGenerationPrompt))
    } catch (err) {
      throw new AppError('INVALID_ARGUMENT', `The chat template refused this conversation: ${errorText(err)}`, { templateSource: this.templateSource })
    }
  }

  private skeleton(roles: string[], addGenerationPrompt: boolean): Skeleton {
    const key = `${addGenerationPrompt ? 1 : 0}|${roles.join('\u0001')}`
    let sk = this.skeletons.get(key)
    if (sk) return sk
    const messages = roles.map((role, i) => ({ role, content: `${PH_OPEN}${i}${PH_CLOSE}` }))
    const rendered = this.renderRaw(messages, addGenerationPrompt)
    const parts: Part[] = []
    let last = 0
    for (const m of rendered.matchAll(PLACEHOLDER_RE)) {
      this.splitLiteral(rendered.slice(last, m.index), parts)
      parts.push({ kind: 'content', message: Number(m[1]), text: null })
      last = m.index + m[0].length
    }
    this.splitLiteral(rendered.slice(last), parts)
    if (parts.some((p) => p.kind === 'text' && (p.text.includes(PH_OPEN) || p.text.includes(PH_CLOSE)))) {
      throw new AppError('UNSUPPORTED', `The chat template (${this.templateSource}) changes message text in a way the app cannot follow. Choose a built-in template instead.`)
    }
    sk = { parts: ChatFormat.stripAround(parts) }
    if (this.skeletons.size >= MAX_SHAPES) this.skeletons.clear()
    this.skeletons.set(key, sk)
    return sk
  }

  /** The conversation rendered per conversation with markers around each text (templates that inspect text). */
  private markedParts(messages: ChatMessage[], addGenerationPrompt: boolean): Part[] {
    const truth = this.renderRaw(messages, addGenerationPrompt)
    // Two private-use characters that occur nowhere in the template or the text; digits between them survive
    // case filters.
    const free: string[] = []
    for (let code = 0xe002; free.length < 2; code++) {
      if (code > 0xf8ff) throw new AppError('UNSUPPORTED', 'The conversation uses every private-use character; it cannot be encoded safely.')
      const c = String.fromCharCode(code)
      if (!this.template.includes(c) && !messages.some((m) => m.content.includes(c))) free.push(c)
    }
    const [x, y] = free
    const marked = this.renderRaw(
      messages.map((m, i) => ({ role: m.role, content: `${x}${i}${x}${m.content}${y}${i}${y}` })),
      addGenerationPrompt,
    )
    const re = new RegExp(`${x}(\\d+)${x}|${y}(\\d+)${y}`, 'g')
    const parts: Part[] = []
    let last = 0
    let open = -1
    let stripped = ''
    for (const m of marked.matchAll(re)) {
      const piece = marked.slice(last, m.index)
      stripped += piece
      last = m.index + m[0].length
      if (m[1] !== undefined && open === -1) {
        this.splitLiteral(piece, parts)
        open = Number(m[1])
      } else if (m[2] !== undefined && open === Number(m[2])) {
        parts.push({ kind: 'content', message: open, text: piece })
        open = -1
      } else {
        open = -2
        break
      }
    }
    if (open !== -1) {
      throw new AppError('UNSUPPORTED', `The chat template (${this.templateSource}) changes message text in a way the app cannot follow. Choose a built-in template instead.`)
    }
    const tail = marked.slice(last)
    stripped += tail
    this.splitLiteral(tail, parts)
    if (stripped !== truth) {
      throw new AppError('UNSUPPORTED', `The chat template (${this.templateSource}) renders differently when message text is marked, so answers cannot be located. Choose a built-in template instead.`)
    }
    return ChatFormat.stripAround(parts)
  }

  private static clean(messages: ChatMessage[]): ChatMessage[] {
    return messages.map((m) => ({ role: m.role, content: m.content.trim() }))
  }

  /**
   * The exact string the template renders (message text trimmed of surrounding whitespace, as the training set and
   * the chat use it).
   */
  render(messages: ChatMessage[], options: EncodeChatOptions = {}): string {
    return this.renderRaw(ChatFormat.clean(messages), options.addGenerationPrompt ?? false)
  }

  /** Encodes a conversation: ids plus each answer's token span (see the file comment). */
  encode(messages: ChatMessage[], options: EncodeChatOptions = {}): EncodedChat {
    const msgs = ChatFormat.clean(messages)
    const gen = options.addGenerationPrompt ?? false
    const parts = this.analysis.contentIndependent && !this.forcePerConversationRender ? this.skeleton(msgs.map((m) => m.role), gen).parts : this.markedParts(msgs, gen)
    return this.encodeParts(parts, msgs)
  }

  private encodeParts(parts: Part[], msgs: ChatMessage[]): EncodedChat {
    const ids: number[] = []
    const contentRange = new Map<number, [number, number] | null>() // message -> token range; null when written twice
    const specialsAt: number[] = []
    let fallback = false
    let section = 0
    let chunk: Array<{ text: string; message: number }> = []

    const flush = () => {
      if (chunk.length === 0) return
      const r = this.encodeChunk(chunk, section)
      if (r.fallback) fallback = true
      const base = ids.length
      for (const id of r.ids) ids.push(id)
      for (let i = 0; i < chunk.length; i++) {
        const m = chunk[i].message
        if (m < 0) continue
        contentRange.set(m, contentRange.has(m) ? null : [base + r.ranges[2 * i], base + r.ranges[2 * i + 1]])
      }
      if (chunk.some((c) => c.text.length > 0)) section++
      chunk = []
    }

    for (const p of parts) {
      if (p.kind === 'special') {
        flush()
        specialsAt.push(ids.length)
        ids.push(p.token.id)
        section++
      } else if (p.kind === 'text') {
        chunk.push({ text: p.text, message: -1 })
      } else {
        chunk.push({ text: p.text ?? msgs[p.message]?.content ?? '', message: p.message })
      }
    }
    flush()

    const answers: AnswerSpan[] = []
    const starts = [...contentRange.values()].filter((r): r is [number, number] => r !== null).map((r) => r[0])
    msgs.forEach((m, i) => {
      if (m.role !== 'assistant') return
      const range = contentRange.get(i)
      if (range === undefined) {
        throw new AppError('UNSUPPORTED', `The chat template (${this.templateSource}) leaves out an assistant answer in this conversation.`)
      }
      if (range === null) {
        throw new AppError('UNSUPPORTED', `The chat template (${this.templateSource}) writes an assistant answer twice; the app cannot tell which copy to train on.`)
      }
      const [start, end] = range
      const endTok = specialsAt.find((s) => s >= end)
      if (endTok === undefined || starts.some((s) => s > start && s <= endTok)) {
        throw new AppError('UNSUPPORTED', `The chat template (${this.templateSource}) does not end this assistant answer with a control token.`)
      }
      answers.push({ message: i, start, end: endTok + 1 })
    })
    return { ids, answers, boundaryFallback: fallback }
  }

  /**
   * Encodes the text between two control tokens as the tokenizer would (one piece), with control-token matching off,
   * and returns for each piece the token range [start, end) that overlaps it.
   */
  private encodeChunk(pieces: Array<{ text: string; message: number }>, section: number): { ids: number[]; ranges: number[]; fallback: boolean } {
    const tok = this.tokenizer
    const text = pieces.length === 1 ? pieces[0].text : pieces.map((p) => p.text).join('')
    const key = `${section}\u0001${pieces.map((p) => `${p.message}:${p.text.length}`).join(',')}\u0001${text}`
    const cached = this.chunkCache.get(key)
    if (cached) return { ids: cached.ids, ranges: cached.ranges, fallback: false }

    const ids = tok.encodePlain(text, section)
    const ranges = new Array<number>(pieces.length * 2).fill(0)
    let ok = true
    if (pieces.length > 1 || pieces[0].message >= 0) {
      // Byte offset of every token boundary in the source text.
      const bounds = new Array<number>(ids.length + 1)
      bounds[0] = 0
      for (let i = 0; i < ids.length; i++) {
        const b = this.tokenBytes[ids[i]]
        if (b < 0) {
          ok = false
          break
        }
        bounds[i + 1] = bounds[i] + b
      }
      const total = Buffer.byteLength(text, 'utf8')
      const shift = ok ? bounds[ids.length] - total : -1
      if (shift === 1) {
        // The tokenizer added a prefix space ("Ġ" / "▁") that is not in the text.
        const first = tok.idToToken(ids[0]) ?? ''
        if (!first.startsWith(tok.prefixSpaceChar)) ok = false
      } else if (shift !== 0) ok = false
      if (ok) {
        for (let i = 0; i <= ids.length; i++) bounds[i] = Math.max(0, bounds[i] - shift)
        let byte = 0
        let t = 0
        for (let p = 0; p < pieces.length; p++) {
          const a = byte
          const b = a + Buffer.byteLength(pieces[p].text, 'utf8')
          byte = b
          // first token ending after a (or the boundary token when the piece is empty)
          while (t < ids.length && bounds[t + 1] <= a) t++
          let e = t
          while (e < ids.length && bounds[e] < b) e++
          ranges[2 * p] = b > a ? t : e
          ranges[2 * p + 1] = e
        }
      }
    }
    if (!ok) {
      // Pieces apart: still exact about which tokens belong to which piece, and still injection-free.
      const out: number[] = []
      pieces.forEach((p, i) => {
        ranges[2 * i] = out.length
        for (const id of tok.encodePlain(p.text, section)) out.push(id)
        ranges[2 * i + 1] = out.length
      })
      return { ids: out, ranges, fallback: true }
    }
    if (this.chunkCache.size >= MAX_CHUNK_CACHE) this.chunkCache.clear()
    if (text.length < 4096) this.chunkCache.set(key, { ids, ranges })
    return { ids, ranges, fallback: false }
  }
}

const formats = new WeakMap<ModelTokenizer, Map<string, ChatFormat>>()

/** Built-in templates that look right for a tokenizer (it has their control tokens). */
export function suggestTemplates(tokenizer: ModelTokenizer): BuiltinTemplateName[] {
  return (Object.keys(BUILTIN_TEMPLATES) as BuiltinTemplateName[]).filter((n) => {
    const b = BUILTIN_TEMPLATES[n]
    return b.requiredTokens.every((t) => tokenizer.addedToken(t)) && (!b.needsBos || tokenizer.templateTokens.bos_token !== undefined)
  })
}

/** The chat format for a tokenizer and a template choice (cached). Throws a plain-language AppError when unusable. */
export function chatFormatFor(tokenizer: ModelTokenizer, choice: TemplateChoice = 'model'): ChatFormat {
  const key = typeof choice === 'string' ? choice : `custom:${choice.jinja}`
  let byChoice = formats.get(tokenizer)
  if (!byChoice) formats.set(tokenizer, (byChoice = new Map()))
  const hit = byChoice.get(key)
  if (hit) return hit
  let format: ChatFormat
  if (choice === 'model') {
    const template = tokenizer.defaultChatTemplate
    if (template === null) {
      const suggested = suggestTemplates(tokenizer)
      throw new AppError(
        'UNSUPPORTED',
        `The model in ${tokenizer.dir} has no chat template (no "chat_template" in tokenizer_config.json and no chat_template.jinja). ` +
          `Choose a built-in template for this project: "llama3" for Llama 3 Instruct models, "chatml" for models with <|im_start|>/<|im_end|> tokens` +
          (suggested.length > 0 ? ` (this tokenizer fits: ${suggested.join(', ')}).` : ' (neither fits this tokenizer: pick a model with a chat template).'),
        { fix: 'chooseTemplate', suggested },
      )
    }
    format = new ChatFormat(tokenizer, template, 'model', tokenizer.templateFile ?? 'model')
  } else if (typeof choice === 'string') {
    if (!isBuiltinTemplateName(choice)) throw new AppError('INVALID_ARGUMENT', `Unknown built-in chat template "${String(choice)}"; use "llama3" or "chatml".`)
    const b = BUILTIN_TEMPLATES[choice]
    const missing = b.requiredTokens.filter((t) => !tokenizer.addedToken(t))
    if (missing.length > 0 || (b.needsBos && !tokenizer.templateTokens.bos_token)) {
      throw new AppError(
        'UNSUPPORTED',
        `The built-in template "${choice}" needs the control tokens ${[...missing, ...(b.needsBos && !tokenizer.templateTokens.bos_token ? ['a bos_token'] : [])].join(', ')}, which the tokenizer in ${tokenizer.dir} does not have. Choose the template that matches the model.`,
        { missing },
      )
    }
    format = new ChatFormat(tokenizer, b.template, choice, `builtin:${choice}`)
  } else {
    format = new ChatFormat(tokenizer, choice.jinja, 'custom', 'custom')
  }
  byChoice.set(key, format)
  return format
}
