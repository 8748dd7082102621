// StreamDecoder: token ids in, readable text out, one token at a time, for streaming answers to the screen.
//
// Byte-level BPE splits many CJK characters and emoji across tokens (a zh-TW character is 3 UTF-8 bytes; a token may
// hold only one or two of them). Decoding each token alone shows broken glyphs (U+FFFD) mid-stream. This decoder
// decodes a short window of recent tokens with the tokenizer's own decoder and releases new text only when it does
// not end in an unfinished character (text-generation-inference's prefix/read offsets): the window is decoded with
// and without the newest tokens and the difference is the new text. An unfinished character is held back for at
// most MAX_HOLD tokens (a UTF-8 character has at most 4 bytes, each token at least one), after which the U+FFFD is
// real (the model wrote an invalid byte sequence) and is released like any text.
//
// finish() reconciles with a decode of every token at once, so the text shown at the end is exactly the generated
// tokens decoded: `offset` says where the correction starts (normally at the end: nothing to correct).
export interface TokenTextDecoder {
  decode(ids: ArrayLike<number>, options?: { skipSpecialTokens?: boolean }): string
}

export interface DecodedPiece {
  /** Where `text` starts in the whole answer (characters, UTF-16 units). Less than the length so far = a correction. */
  offset: number
  text: string
}

const REPLACEMENT = '\uFFFD'
/** A UTF-8 character spans at most 4 tokens (4 bytes, one per token at worst). */
const MAX_HOLD = 4

export class StreamDecoder {
  private readonly ids: number[] = []
  private prefix = 0
  private read = 0
  private shown = ''

  /** `skipIds`: ids never shown (the stop token); special tokens are skipped as in decode(…, skipSpecialTokens). */
  constructor(private readonly tokenizer: TokenTextDecoder, private readonly skipIds: ReadonlySet<number> = new Set()) {}

  /** Text shown so far. */
  get text(): string {
    return this.shown
  }

  /** Token ids decoded so far (skipped ids excluded). */
  get tokens(): readonly number[] {
    return this.ids
  }

  private decode(from: number, to: number): string {
    if (to <= from) return ''
    return this.tokenizer.decode(this.ids.slice(from, to), { skipSpecialTokens: true })
  }

  /** Adds one generated token; returns the text it makes readable ('' while a character is unfinished). */
  push(id: number): string {
    if (this.skipIds.has(id)) return ''
    this.ids.push(id)
    const before = this.decode(this.prefix, this.read)
    const after = this.decode(this.prefix, this.ids.length)
    const held = this.ids.length - this.read
    if (after.length > before.length && (!after.endsWith(REPLACEMENT) || held >= MAX_HOLD)) {
      const piece = after.slice(before.length)
      this.prefix = this.read
      this.read = this.ids.length
      this.shown += piece
      return piece
    }
    return ''
  }

  /** The end: whatever was held back, or a correction so that the text equals all tokens decoded at once. */
  finish(): DecodedPiece {
    const full = this.ids.length === 0 ? '' : this.tokenizer.decode(this.ids, { skipSpecialTokens: true })
    let common = 0
    const max = Math.min(full.length, this.shown.length)
    while (common < max && full.charCodeAt(common) === this.shown.charCodeAt(common)) common++
    // Never cut a surrogate pair in half.
    if (common > 0 && common < full.length && isHighSurrogate(full.charCodeAt(common - 1))) common--
    const piece = { offset: common, text: full.slice(common) }
    this.shown = full
    this.prefix = this.read = this.ids.length
    return piece
  }
}

function isHighSurrogate(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff
}
