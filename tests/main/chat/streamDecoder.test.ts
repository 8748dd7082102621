// The incremental decoder behind streamed answers: zh-TW characters and emoji split across byte-level BPE tokens
// never show as U+FFFD mid-stream, the pieces add up to exactly the tokens decoded at once, stop ids and special
// tokens are not shown, a real invalid byte is released after at most 4 tokens, and the batching stream sends every
// piece with the right offsets.
import { describe, expect, it } from 'vitest'
import { AnswerStream } from '../../../main/chat/AnswerStream'
import { StreamDecoder } from '../../../main/chat/StreamDecoder'
import { loadTokenizer } from '../../../main/tokenizer/loadTokenizer'
import type { ModelTokenizer } from '../../../main/tokenizer/ModelTokenizer'
import { LLAMA3_DIR, tinyTokenizerDir } from '../tokenizer/fixtures'

const TEXTS = [
  '員工到職滿一年，可享有七天特別休假。',
  '請假流程：登入 HR 系統 → 填寫假單 → 主管核准。😀👍🏽 鬱鬱蔥蔥、龘靐齉爩',
  '加班費：平日前兩小時按 1.34 倍計算；休息日另計。English words, numbers 12345 and ✨ 𠀀𪚥 (surrogate pairs).',
]

function stream(tok: ModelTokenizer, ids: number[], skip: number[] = []): { pieces: string[]; final: string; decoder: StreamDecoder } {
  const d = new StreamDecoder(tok, new Set(skip))
  const pieces: string[] = []
  for (const id of ids) {
    const p = d.push(id)
    if (p) pieces.push(p)
  }
  const end = d.finish()
  expect(end.offset).toBe(pieces.join('').length) // nothing to correct
  if (end.text) pieces.push(end.text)
  return { pieces, final: d.text, decoder: d }
}

/** How many tokens hold only part of a character (their lone decode has U+FFFD). */
function splitTokens(tok: ModelTokenizer, ids: number[]): number {
  return ids.filter((id) => tok.decode([id]).includes('\uFFFD')).length
}

describe.each([
  ['tiny byte-level BPE (1024 ids)', () => tinyTokenizerDir({ flavour: 'llama3' })],
  ['real Llama 3 tokenizer', async () => LLAMA3_DIR],
])('StreamDecoder with the %s', (_name, dir) => {
  it('never shows a broken character mid-stream and ends with exactly the decoded tokens', async () => {
    const tok = await loadTokenizer(await dir())
    let split = 0
    for (const text of TEXTS) {
      const ids = tok.encodePlain(text)
      split += splitTokens(tok, ids)
      const { pieces, final } = stream(tok, ids)
      for (const p of pieces) expect(p).not.toContain('\uFFFD')
      expect(pieces.join('')).toBe(text)
      expect(final).toBe(tok.decode(ids))
      // Streaming: the text arrives in many pieces, not once at the end.
      expect(pieces.length).toBeGreaterThan(5)
    }
    expect(split).toBeGreaterThan(3) // the texts do split characters across tokens (the case under test)
  })

  it('leaves out the stop token and special tokens', async () => {
    const tok = await loadTokenizer(await dir())
    const eot = tok.addedToken('<|eot_id|>')!.id
    const ids = [...tok.encodePlain('年假七天。'), tok.addedToken('<|start_header_id|>')!.id, ...tok.encodePlain('好'), eot]
    const { pieces, final, decoder } = stream(tok, ids, [eot])
    expect(pieces.join('')).toBe('年假七天。好')
    expect(final).toBe('年假七天。好')
    expect(decoder.tokens).not.toContain(eot)
  })
})

describe('StreamDecoder edge cases', () => {
  it('releases an invalid byte (a lone continuation byte) after at most 4 tokens, then keeps streaming', async () => {
    const tok = await loadTokenizer(await tinyTokenizerDir({ flavour: 'llama3' }))
    // A lone UTF-8 continuation byte as a byte-level token: the model "wrote" invalid UTF-8.
    const lone = tok.tokenToId('\u0080') ?? tok.tokenToId(String.fromCharCode(0x100 + 34))
    expect(lone).toBeDefined()
    expect(tok.decode([lone!])).toBe('\uFFFD')
    const after = tok.encodePlain('abcdefgh')
    const d = new StreamDecoder(tok)
    const seen: string[] = []
    d.push(lone!)
    for (const id of after) seen.push(d.push(id))
    const shown = seen.join('')
    expect(shown.startsWith('\uFFFD')).toBe(true)
    expect(d.finish().text).toBe(tok.decode([lone!, ...after]).slice(shown.length))
    expect(d.text).toBe(tok.decode([lone!, ...after]))
  })

  it('a text that only ends with a broken character is corrected at finish (the whole answer equals decode(all))', async () => {
    const tok = await loadTokenizer(LLAMA3_DIR)
    const ids = tok.encodePlain('好😀')
    const cut = ids.slice(0, -1) // the last token of the emoji is missing: the model stopped mid-character
    const d = new StreamDecoder(tok)
    let shown = ''
    for (const id of cut) shown += d.push(id)
    expect(shown).toBe('好')
    const end = d.finish()
    expect(shown.slice(0, end.offset) + end.text).toBe(tok.decode(cut))
  })
})

describe('AnswerStream batching', () => {
  it('sends pieces in order with offsets that rebuild the answer, fewer events than tokens, the last before finish returns', async () => {
    const tok = await loadTokenizer(LLAMA3_DIR)
    const text = TEXTS[1].repeat(3)
    const ids = tok.encodePlain(text)
    const events: { offset: number; text: string; tokens: number }[] = []
    const s = new AnswerStream(7, null, tok, [], (e) => events.push(e), 5)
    for (const [i, id] of ids.entries()) {
      s.push(id)
      if (i % 10 === 9) await new Promise((r) => setTimeout(r, 8))
    }
    const final = s.finish()
    expect(final).toBe(text)
    let shown = ''
    for (const e of events) {
      expect(e.offset).toBeLessThanOrEqual(shown.length)
      shown = shown.slice(0, e.offset) + e.text
    }
    expect(shown).toBe(text)
    expect(events.length).toBeGreaterThan(3)
    expect(events.length).toBeLessThan(ids.length)
    expect(events.at(-1)!.tokens).toBe(ids.length)
  })
})
