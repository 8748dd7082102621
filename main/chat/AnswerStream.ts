// One answer being written: generated ids -> readable text (StreamDecoder) -> 'chat:stream' events, batched so the
// renderer gets at most one event per interval (default 50 ms) per answer, and nothing is ever dropped: each event
// says where its text goes (`offset`), the last one is sent before the answer is saved, and a correction at the end
// (finish) is sent as text with an earlier offset.
import type { ChatStreamEvent, ChatVariant } from '../../preload/contract'
import { StreamDecoder, type TokenTextDecoder } from './StreamDecoder'

export class AnswerStream {
  readonly decoder: StreamDecoder
  /** Every generated id (the stop id included), in order. */
  readonly ids: number[] = []
  private pendingOffset = 0
  private pending = ''
  private timer: ReturnType<typeof setTimeout> | null = null

  constructor(
    readonly messageId: number,
    readonly variant: ChatVariant | null,
    tokenizer: TokenTextDecoder,
    stopIds: readonly number[],
    private readonly send: (e: Omit<ChatStreamEvent, 'chatId' | 'generationId'>) => void,
    private readonly intervalMs = 50,
  ) {
    this.decoder = new StreamDecoder(tokenizer, new Set(stopIds))
  }

  get text(): string {
    return this.decoder.text
  }

  push(id: number): void {
    this.ids.push(id)
    const piece = this.decoder.push(id)
    if (!piece) return
    this.pending += piece
    if (this.intervalMs <= 0) this.flush()
    else if (!this.timer) this.timer = setTimeout(() => this.flush(), this.intervalMs)
  }

  /** Sends what is pending now. */
  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer)
      this.timer = null
    }
    if (!this.pending) return
    this.send({ messageId: this.messageId, variant: this.variant, offset: this.pendingOffset, text: this.pending, tokens: this.ids.length })
    this.pendingOffset += this.pending.length
    this.pending = ''
  }

  /** The end: held-back text and any correction go out; returns the final text (all tokens decoded at once). */
  finish(): string {
    this.flush()
    const piece = this.decoder.finish()
    if (piece.text.length > 0 || piece.offset < this.pendingOffset) {
      this.send({ messageId: this.messageId, variant: this.variant, offset: piece.offset, text: piece.text, tokens: this.ids.length })
    }
    this.pendingOffset = this.decoder.text.length
    return this.decoder.text
  }
}
