// Token counts for the dataset editor: the full training sample as compiled, problems instead of crashes.
import { describe, expect, it } from 'vitest'
import { countRowTokens } from '../../../../main/datasets/tokenCounts'
import { compileDataset } from '../../../../main/datasets/compiler/compileDataset'
import { chatFormatFor } from '../../../../main/tokenizer/ChatFormat'
import { loadTokenizer } from '../../../../main/tokenizer/loadTokenizer'
import { LLAMA3_DIR, SAMPLE_SYSTEM_PROMPT, sampleRows, tempDir, tinyTokenizerDir } from '../../tokenizer/fixtures'

describe('countRowTokens', () => {
  it('equals the compiled sample length for every row (system prompt included), disabled rows counted too', async () => {
    const dir = await tinyTokenizerDir({ flavour: 'llama3' })
    const rows = sampleRows().map((r, i) => ({ id: i + 1, question: r.question, answer: r.answer, enabled: i % 7 !== 0 }))
    const counts = await countRowTokens(dir, rows, { systemPrompt: SAMPLE_SYSTEM_PROMPT })
    const s = await compileDataset(
      rows.map((r) => ({ ...r, enabled: true })),
      { modelDir: dir, outDir: tempDir(), systemPrompt: SAMPLE_SYSTEM_PROMPT, maxLength: 4096 },
    )
    const f = chatFormatFor(await loadTokenizer(dir), 'model')
    expect(counts).toHaveLength(50)
    counts.forEach((c, i) => {
      expect(c.id).toBe(i + 1)
      expect(c.problem).toBeUndefined()
      const msgs = [
        { role: 'system', content: SAMPLE_SYSTEM_PROMPT },
        { role: 'user', content: rows[i].question },
        { role: 'assistant', content: rows[i].answer },
      ]
      expect(c.tokens).toBe(f.encode(msgs).ids.length)
    })
    expect(counts.reduce((a, c) => a + (c.tokens ?? 0), 0)).toBe(s.train.tokens + s.validation.tokens)
    const noSystem = await countRowTokens(dir, rows.slice(0, 1))
    expect(noSystem[0].tokens).toBeLessThan(counts[0].tokens!)
  })

  it('reports problems per row and never throws on row data', async () => {
    const counts = await countRowTokens(await tinyTokenizerDir({ flavour: 'chatml' }), [
      { id: 1, question: '問', answer: '' },
      { id: 2, question: 5, answer: '答' },
      { id: 3, question: '問', answer: 'x'.repeat(2_000_000) },
      null,
      { id: 4, messages: [{ role: 'user', content: '嗨' }, { role: 'assistant', content: '嗨！' }] },
    ])
    expect(counts).toEqual([
      { id: 1, tokens: null, problem: 'emptyAnswer' },
      { id: 2, tokens: null, problem: 'notText' },
      { id: 3, tokens: null, problem: 'tooLarge' },
      { id: null, tokens: null, problem: 'invalidRow' },
      { id: 4, tokens: expect.any(Number) },
    ])
  })

  it('uses the real Llama 3 tokenizer with a chosen template; reuses the loaded tokenizer', async () => {
    const [c] = await countRowTokens(LLAMA3_DIR, [{ id: 1, question: '這是用戶的輸入', answer: '這是模型回復' }], { systemPrompt: '這是系統指令', template: 'llama3' })
    expect(c.tokens).toBe(33) // ENGINE_FACTS §2
    expect(await loadTokenizer(LLAMA3_DIR)).toBe(await loadTokenizer(LLAMA3_DIR))
    await expect(countRowTokens(LLAMA3_DIR, [], { template: 'chatml' })).rejects.toThrow(/<\|im_start\|>/)
  })
})
