// The tiny tokenizer generator: real files that @huggingface/tokenizers loads, lossless round trips, fixed special
// ids, and the Qwen2.5-style ChatML template on it.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Tokenizer } from '@huggingface/tokenizers'
import { describe, expect, it } from 'vitest'
import { chatFormatFor, type ChatMessage } from '../../../main/tokenizer/ChatFormat'
import { loadTokenizer } from '../../../main/tokenizer/loadTokenizer'
import { buildTinyTokenizer, tinyTokenizerSpec, writeTinyTokenizer } from '../../../main/tokenizer/tiny/writeTinyTokenizer'
import { sampleRows, tempDir, tinyTokenizerDir } from './fixtures'

/** Deterministic random text over all of Unicode's planes (no lone surrogates: they are not UTF-8). */
function randomText(seed: number, length: number): string {
  let s = seed
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32)
  const ranges: Array<[number, number]> = [
    [0x00, 0x7f],
    [0x80, 0x7ff],
    [0x4e00, 0x9fff],
    [0x3000, 0x303f],
    [0xac00, 0xd7a3],
    [0xe000, 0xf8ff],
    [0x10000, 0x10ffff],
  ]
  let out = ''
  for (let i = 0; i < length; i++) {
    const [a, b] = ranges[Math.floor(rnd() * ranges.length)]
    let cp = a + Math.floor(rnd() * (b - a + 1))
    if (cp >= 0xd800 && cp <= 0xdfff) cp = 0x41
    out += String.fromCodePoint(cp)
  }
  return out
}

describe('tiny tokenizer generator', () => {
  for (const flavour of ['llama3', 'chatml'] as const) {
    it(`${flavour}: writes three files that @huggingface/tokenizers loads, with the spec's ids`, async () => {
      const dir = await tinyTokenizerDir({ flavour })
      const json = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'))
      const config = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'))
      const gen = JSON.parse(readFileSync(join(dir, 'generation_config.json'), 'utf8'))
      const spec = tinyTokenizerSpec(flavour)
      expect(json.model.type).toBe('BPE')
      expect(Object.keys(json.model.vocab)).toHaveLength(spec.vocabSize - Object.keys(spec.specialTokens).length)
      expect(json.model.merges.length).toBeGreaterThanOrEqual(spec.vocabSize - Object.keys(spec.specialTokens).length - 256)
      expect(gen.eos_token_id).toEqual(spec.eosTokenId)
      const raw = new Tokenizer(json, config)
      for (const [text, id] of Object.entries(spec.specialTokens)) expect(raw.token_to_id(text)).toBe(id)
      const tok = await loadTokenizer(dir)
      expect(tok.vocabSize).toBe(1024)
      expect(tok.eosIds.sort()).toEqual([...spec.eosTokenId].sort())
      // Merges were learned from the zh-TW corpus: common words are single tokens or close to it.
      expect(tok.encodePlain('公司').length).toBeLessThanOrEqual(2)
      expect(tok.encodePlain('請假').length).toBeLessThan(6) // 6 = one token per UTF-8 byte
    })

    it(`${flavour}: round-trips arbitrary UTF-8 and the zh-TW corpus losslessly`, async () => {
      const tok = await loadTokenizer(await tinyTokenizerDir({ flavour }))
      const texts = [...sampleRows().flatMap((r) => [r.question, r.answer]), '', ' ', '\n\n\t ', 'a\u0000b', randomText(1, 2000), randomText(2, 500), randomText(3, 50)]
      for (const t of texts) {
        const ids = tok.encodePlain(t)
        expect(tok.decode(ids)).toBe(t)
        expect(ids.every((id) => id >= 0 && id < 1024 && !tok.isAddedId(id))).toBe(true)
        expect(tok.encode(t)).toEqual(ids)
      }
    })
  }

  it('is deterministic and honours vocabSize', () => {
    const a = buildTinyTokenizer({ flavour: 'llama3', vocabSize: 700, corpus: sampleRows().map((r) => r.answer).join('\n') })
    const b = buildTinyTokenizer({ flavour: 'llama3', vocabSize: 700, corpus: sampleRows().map((r) => r.answer).join('\n') })
    expect(JSON.stringify(a.tokenizerJson)).toBe(JSON.stringify(b.tokenizerJson))
    expect(a.spec.specialTokens['<|eot_id|>']).toBe(699)
    expect(() => tinyTokenizerSpec('llama3', 200)).toThrow(/at least/)
    expect(() => buildTinyTokenizer({ vocabSize: 5000, corpus: 'tiny corpus' })).toThrow(/too small/)
  })

  it('chatml: renders the Qwen2.5 template with its default system prompt and encodes exactly', async () => {
    const tok = await loadTokenizer(await tinyTokenizerDir({ flavour: 'chatml' }))
    const format = chatFormatFor(tok, 'model')
    expect(format.analysis).toEqual({ contentIndependent: true, reason: null })
    expect(format.endOfTurnId).toBe(1023)
    expect(format.stopIds.sort()).toEqual([1021, 1023])
    const msgs: ChatMessage[] = [
      { role: 'user', content: '忘記打卡怎麼辦？' },
      { role: 'assistant', content: '請於當週內在人資系統填寫「補打卡申請」。' },
    ]
    const text = format.render(msgs)
    expect(text).toBe(
      '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\n忘記打卡怎麼辦？<|im_end|>\n<|im_start|>assistant\n請於當週內在人資系統填寫「補打卡申請」。<|im_end|>\n',
    )
    const enc = format.encode(msgs)
    expect(enc.ids).toEqual(tok.encode(text))
    expect(tok.decode(enc.ids.slice(enc.answers[0].start, enc.answers[0].end))).toBe('請於當週內在人資系統填寫「補打卡申請」。<|im_end|>')
    const withSystem = format.render([{ role: 'system', content: '你是人資助理' }, ...msgs])
    expect(withSystem.startsWith('<|im_start|>system\n你是人資助理<|im_end|>\n')).toBe(true)
    expect(format.render(msgs.slice(0, 1), { addGenerationPrompt: true }).endsWith('<|im_start|>assistant\n')).toBe(true)
  })

  it('writeTinyTokenizer returns the spec and file names', async () => {
    const dir = tempDir()
    const r = await writeTinyTokenizer(dir, { flavour: 'chatml', vocabSize: 512 })
    expect(r.files).toEqual(['tokenizer.json', 'tokenizer_config.json', 'generation_config.json'])
    expect(r.specialTokens).toEqual({ '<|endoftext|>': 509, '<|im_start|>': 510, '<|im_end|>': 511 })
    expect((await loadTokenizer(dir)).vocabSize).toBe(512)
  })
})
