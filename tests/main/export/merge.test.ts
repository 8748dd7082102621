// Merged Hugging Face folder: every merged weight is exactly bf16(fp32(W + alpha/r * B A)) computed here from the raw
// files, the folder reloads in the engine with the logits of base + adapter (within bf16 rounding), shards carry a
// correct index, and config/generation_config/tokenizer_config keep dtype, every stop id and the training template.
// Also measures how far the NF4 base + LoRA (what the app chats with) is from the merged 16-bit model.
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../../../main/engine/Engine'
import { MergedWeights } from '../../../main/export/merge/MergedWeights'
import { planMergedModel, toBf16Bytes, writeHfSideFiles, writeMergedWeights } from '../../../main/export/merge/writeMergedModel'
import { readSafetensors } from '../../../main/models/safetensors'
import { chatFormatFor } from '../../../main/tokenizer/ChatFormat'
import { loadTokenizer } from '../../../main/tokenizer/loadTokenizer'
import { promptMessages } from '../../../main/export/selfTest/selfTest'
import { ROWS, scratchDir, SYSTEM, trainedTinyModel, type TrainedFixture } from './helpers'

const s = scratchDir('qt-merge-')
afterAll(() => s.cleanup())

async function writeMerged(fx: TrainedFixture, out: string, maxShardBytes: number): Promise<{ shards: number; scale: number }> {
  const merged = await MergedWeights.open(fx.modelDir, fx.adapterDir)
  try {
    const plan = planMergedModel(merged, maxShardBytes)
    await mkdir(out, { recursive: true })
    await writeMergedWeights(out, plan, merged)
    const tok = await loadTokenizer(fx.modelDir)
    const format = chatFormatFor(tok, 'model')
    await writeHfSideFiles(out, { baseDir: fx.modelDir, chatTemplate: format.template, stopIds: format.stopIds, bosId: tok.bos?.id ?? null, padId: tok.pad?.id ?? null })
    return { shards: plan.shards.length, scale: merged.scale }
  } finally {
    await merged.close()
  }
}

async function readFolder(dir: string): Promise<Map<string, { dtype: string; shape: number[]; data: Float32Array }>> {
  const out = new Map<string, { dtype: string; shape: number[]; data: Float32Array }>()
  let files = ['model.safetensors']
  try {
    const index = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> }
    files = [...new Set(Object.values(index.weight_map))]
  } catch {
    /* single file */
  }
  for (const f of files) for (const [k, v] of (await readSafetensors(join(dir, f))).tensors) out.set(k, v)
  return out
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]))
  return m
}

describe('merged model (llama3 tiny model, trained adapter on every linear)', () => {
  let fx: TrainedFixture
  const out = s.path('merged')
  let written: { shards: number; scale: number }
  beforeAll(async () => {
    fx = await trainedTinyModel(s.path('llama'))
    written = await writeMerged(fx, out, 60_000)
  })

  it('stores bf16(W + alpha/r * B A) for every adapted linear, bit for bit, and every other tensor unchanged', async () => {
    const base = (await readSafetensors(join(fx.modelDir, 'model.safetensors'))).tensors
    const lora = (await readSafetensors(join(fx.adapterDir, 'adapter_model.safetensors'))).tensors
    const merged = await readFolder(out)
    expect([...merged.keys()].sort()).toEqual([...base.keys()].sort())
    const adapterConfig = JSON.parse(await readFile(join(fx.adapterDir, 'adapter_config.json'), 'utf8')) as { r: number; lora_alpha: number }
    const scale = adapterConfig.lora_alpha / adapterConfig.r
    expect(written.scale).toBe(scale)
    let adapted = 0
    let maxB = 0
    for (const [name, w] of base) {
      const m = merged.get(name)!
      expect(m.dtype).toBe('BF16')
      expect(m.shape).toEqual(w.shape)
      const key = `base_model.model.${name.replace(/\.weight$/, '')}`
      const A = lora.get(`${key}.lora_A.weight`)
      const B = lora.get(`${key}.lora_B.weight`)
      if (!A || !B) {
        expect(Buffer.from(m.data.buffer).equals(Buffer.from(w.data.buffer))).toBe(true)
        continue
      }
      adapted++
      const [rows, cols] = w.shape
      const r = A.shape[0]
      const expected = new Float32Array(rows * cols)
      for (let o = 0; o < rows; o++) {
        maxB = Math.max(maxB, ...Array.from(B.data.subarray(o * r, o * r + r), Math.abs))
        for (let j = 0; j < cols; j++) {
          let d = 0
          for (let k = 0; k < r; k++) d += scale * B.data[o * r + k] * A.data[k * cols + j]
          expected[o * cols + j] = w.data[o * cols + j] + d
        }
      }
      expect(toBf16Bytes(m.data).equals(toBf16Bytes(expected))).toBe(true)
      expect(maxAbsDiff(m.data, w.data)).toBeGreaterThan(0) // the adapter changed it
    }
    expect(adapted).toBe(2 * 7)
    expect(maxB).toBeGreaterThan(1e-3) // training moved B away from its zero initialisation
  })

  it('shards with an index whose total_size and weight_map are right', async () => {
    expect(written.shards).toBeGreaterThan(1)
    const index = JSON.parse(await readFile(join(out, 'model.safetensors.index.json'), 'utf8')) as { metadata: { total_size: number }; weight_map: Record<string, string> }
    const merged = await readFolder(out)
    const total = [...merged.values()].reduce((a, t) => a + t.data.length * 2, 0)
    expect(index.metadata.total_size).toBe(total)
    expect(new Set(Object.values(index.weight_map)).size).toBe(written.shards)
    expect(Object.values(index.weight_map)[0]).toMatch(/^model-00001-of-0000\d\.safetensors$/)
  })

  it('keeps dtype, every stop id and the training chat template in the side files', async () => {
    const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8')) as Record<string, unknown>
    expect(config.torch_dtype).toBe('bfloat16')
    expect(config.architectures).toEqual(['LlamaForCausalLM'])
    const gen = JSON.parse(await readFile(join(out, 'generation_config.json'), 'utf8')) as Record<string, unknown>
    expect(gen.eos_token_id).toEqual([1023, 1020]) // <|eot_id|> and <|end_of_text|>, as Llama 3's [128001, 128009]
    const baseTok = await loadTokenizer(fx.modelDir)
    const tok = await loadTokenizer(out)
    expect(chatFormatFor(tok, 'model').template).toBe(chatFormatFor(baseTok, 'model').template)
    expect([...chatFormatFor(tok, 'model').stopIds].sort()).toEqual([1020, 1023])
  })

  it('reloads in the engine with the logits of base + adapter, within bf16 rounding', async () => {
    const tok = await loadTokenizer(fx.modelDir)
    const format = chatFormatFor(tok, 'model')
    const { ids } = format.encode([...promptMessages(SYSTEM, ROWS[0].question), { role: 'assistant', content: ROWS[0].answer }])
    const base = await loadModel({ folder: fx.modelDir, quant: 'none' })
    const mergedModel = await loadModel({ folder: out, quant: 'none' })
    const nf4 = await loadModel({ folder: fx.modelDir, quant: 'nf4' })
    try {
      const adapter = await base.loadAdapter(fx.adapterDir)
      const withAdapter = await base.forwardLogits(ids, { adapter })
      const plain = await base.forwardLogits(ids)
      const fromMerged = await mergedModel.forwardLogits(ids)
      const adapterEffect = maxAbsDiff(withAdapter, plain)
      const mergeError = maxAbsDiff(withAdapter, fromMerged)
      const scaleOfLogits = Math.max(...Array.from(withAdapter, Math.abs))
      // bf16 keeps 8 bits of mantissa (relative step 2^-8): the logits move by a small fraction of their size.
      expect(mergeError).toBeLessThan(0.02 * scaleOfLogits)
      expect(mergeError).toBeLessThan(0.05 * adapterEffect)
      // The model the user chatted with: NF4 base + adapter.
      const nf4Adapter = await nf4.loadAdapter(fx.adapterDir)
      const fromNf4 = await nf4.forwardLogits(ids, { adapter: nf4Adapter })
      const nf4Gap = maxAbsDiff(fromNf4, fromMerged)
      console.log(`[merge] max |logit| ${scaleOfLogits.toFixed(3)}, adapter effect ${adapterEffect.toFixed(3)}, merged(bf16) vs base+LoRA(fp32) ${mergeError.toExponential(2)}, NF4+LoRA vs merged ${nf4Gap.toExponential(2)}`)
      expect(nf4Gap).toBeGreaterThan(mergeError) // the merged model is closer to the 16-bit truth than the NF4 one
      // Greedy answers to the training questions are the same for all three.
      for (const row of ROWS) {
        const p = format.encode(promptMessages(SYSTEM, row.question), { addGenerationPrompt: true }).ids
        const sampling = { maxNewTokens: 30, stopIds: format.stopIds }
        const a = await base.generate(p, sampling, { adapter })
        const b = await mergedModel.generate(p, sampling)
        const c = await nf4.generate(p, sampling, { adapter: nf4Adapter })
        expect(b.tokens).toEqual(a.tokens)
        expect(c.tokens).toEqual(a.tokens)
        expect(tok.decode(b.tokens, { skipSpecialTokens: true })).toBe(row.answer)
      }
    } finally {
      await base.close()
      await mergedModel.close()
      await nf4.close()
    }
  })
})

describe('merged model (Qwen2 tiny model: biases, tied embeddings)', () => {
  it('merges, keeps the biases and the tied embeddings, and reloads with the same greedy answers', async () => {
    const fx = await trainedTinyModel(s.path('qwen'), { flavour: 'chatml', tieEmbeddings: true })
    const out = s.path('qwen-merged')
    const w = await writeMerged(fx, out, 1e9)
    expect(w.shards).toBe(1)
    const merged = await readFolder(out)
    expect(merged.has('lm_head.weight')).toBe(false)
    expect(merged.has('model.layers.0.self_attn.q_proj.bias')).toBe(true)
    const tok = await loadTokenizer(fx.modelDir)
    const format = chatFormatFor(tok, 'model')
    const base = await loadModel({ folder: fx.modelDir, quant: 'none' })
    const m = await loadModel({ folder: out, quant: 'none' })
    try {
      const adapter = await base.loadAdapter(fx.adapterDir)
      for (const row of ROWS.slice(0, 2)) {
        const p = format.encode(promptMessages(SYSTEM, row.question), { addGenerationPrompt: true }).ids
        const a = await base.generate(p, { maxNewTokens: 30, stopIds: format.stopIds }, { adapter })
        const b = await m.generate(p, { maxNewTokens: 30, stopIds: format.stopIds })
        expect(b.tokens).toEqual(a.tokens)
        expect(b.finish).toBe('stop')
      }
    } finally {
      await base.close()
      await m.close()
    }
  })
})
