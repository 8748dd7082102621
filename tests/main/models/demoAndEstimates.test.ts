// The bundled demo model (deterministic, created once, registered as 'demo', usable through getModel) and the GPU
// memory estimates (Llama-3-8B's NF4 base lands on ENGINE_FACTS §4's 5.7 GB; the activation count is the engine's).
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { ModelEntry } from '../../../preload/contract'
import { DEMO_FOLDER, DEMO_MODEL_VERSION, demoModelOptions, ensureDemoModel } from '../../../main/models/demoModel'
import { activationElements, activationLayout, baseWeightBytes, DEFAULT_LORA_TARGETS, estimateChatMemory, estimateTrainingMemory, linearParameters, loraParameters, workspaceBytes } from '../../../main/models/memoryEstimate'
import { getModel, MODEL_MARKER } from '../../../main/models/modelRegistry'
import { readSafetensors } from '../../../main/models/safetensors'
import { chatFormatFor } from '../../../main/tokenizer/ChatFormat'
import { loadTokenizer } from '../../../main/tokenizer/loadTokenizer'
import { modelsApp, type ModelsApp } from './helpers'

const apps: ModelsApp[] = []
afterEach(async () => {
  for (const a of apps.splice(0)) await a.cleanup()
})

function folderHash(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir).sort().map((f) => [f, createHash('sha256').update(readFileSync(join(dir, f))).digest('hex')]))
}

describe('the demo model', () => {
  it('is created on first use, identical on every machine, listed as demo and usable', async () => {
    const a = modelsApp()
    const b = modelsApp()
    apps.push(a, b)
    const [ma, mb] = await Promise.all([ensureDemoModel(a.ctx), ensureDemoModel(b.ctx)])
    expect(ma.path).toBe(join(a.dataDir, 'models', DEMO_FOLDER))
    expect(folderHash(ma.path)).toEqual(folderHash(mb.path))
    expect(ma).toMatchObject({ source: 'demo', architecture: 'LlamaForCausalLM', templateChoice: 'model' })
    expect(ma.details).toMatchObject({ hiddenSize: 128, numLayers: 4, numHeads: 4, numKvHeads: 2, intermediateSize: 344, vocabSize: 1024 })
    expect(statSync(join(ma.path, 'model.safetensors')).size).toBeLessThan(3_000_000)

    // Its tokenizer knows the zh-TW sample (a trained BPE, not bytes) and its template renders a Q&A.
    const tok = await loadTokenizer(ma.path)
    const ids = tok.encodePlain('員工請假需要提前幾天申請？')
    expect(ids.length).toBeLessThan(Buffer.byteLength('員工請假需要提前幾天申請？'))
    expect(tok.vocabSize).toBe(ma.details.vocabSize)
    const enc = chatFormatFor(tok, ma.templateChoice).encode([
      { role: 'user', content: '問題' },
      { role: 'assistant', content: '回答' },
    ])
    expect(enc.answers).toHaveLength(1)

    // Listed once, with the name the Models page shows; created once (no rewrite on later calls); not deletable.
    const list = await a.call<ModelEntry[]>('models:list')
    const demo = list.filter((m) => m.source === 'demo')
    expect(demo).toHaveLength(1)
    expect(demo[0]).toMatchObject({ name: '示範小模型 (CPU)', status: 'ready', deleteRemovesFiles: true })
    const mtime = statSync(join(ma.path, 'model.safetensors')).mtimeMs
    await ensureDemoModel(a.ctx)
    await a.call('models:list')
    expect(statSync(join(ma.path, 'model.safetensors')).mtimeMs).toBe(mtime)
    expect((await a.fail('models:delete', { id: demo[0].id })).code).toBe('FORBIDDEN')
    expect(getModel(a.ctx, demo[0].id).path).toBe(ma.path)
  })

  it('is rebuilt when its folder was damaged', async () => {
    const a = modelsApp()
    apps.push(a)
    const m = await ensureDemoModel(a.ctx)
    const before = folderHash(m.path)
    rmSync(join(m.path, 'tokenizer.json'))
    const again = await ensureDemoModel(a.ctx)
    expect(again.id).toBe(m.id)
    expect(folderHash(again.path)).toEqual(before)
  })

  it('has a fan-in output layer (lm_head std 1/sqrt(hidden)) over 0.02-std weights, as DEMO_MODEL_VERSION 2 documents', async () => {
    const a = modelsApp()
    apps.push(a)
    const m = await ensureDemoModel(a.ctx)
    const { tensors } = await readSafetensors(join(m.path, 'model.safetensors'))
    const std = (name: string): number => {
      const d = tensors.get(name)!.data
      let s = 0
      for (const x of d) s += x * x
      return Math.sqrt(s / d.length)
    }
    // The frozen lm_head decides how confident any answer can get: with 0.02 at width 128 a logit could never rise more
    // than ~2.5 above the rest (the old demo's loss stalled near 5); 1/sqrt(128) allows ~11.
    expect(std('lm_head.weight')).toBeCloseTo(1 / Math.sqrt(128), 2)
    expect(std('model.embed_tokens.weight')).toBeCloseTo(0.02, 3)
    expect(std('model.layers.0.mlp.down_proj.weight')).toBeCloseTo(0.02, 3)
    expect(demoModelOptions().lmHeadStd).toBe(1 / Math.sqrt(128))
  })

  it('an older version (earlier DEMO_MODEL_VERSION) is replaced by the current one, keeping its id', async () => {
    const a = modelsApp()
    apps.push(a)
    const m = await ensureDemoModel(a.ctx)
    const current = folderHash(m.path)
    const repo = a.ctx.repos().models
    const row = repo.listBySource('demo')[0]
    repo.update(row.id, { info: { ...(row.info as Record<string, unknown>), demoVersion: DEMO_MODEL_VERSION - 1 } })
    writeFileSync(join(m.path, MODEL_MARKER), JSON.stringify({ version: 1, source: 'demo', demoVersion: DEMO_MODEL_VERSION - 1 }))
    writeFileSync(join(m.path, 'model.safetensors'), 'old weights')
    const again = await ensureDemoModel(a.ctx)
    expect(again.id).toBe(m.id)
    expect(folderHash(again.path)).toEqual(current)
    expect((repo.listBySource('demo')[0].info as { demoVersion: number }).demoVersion).toBe(DEMO_MODEL_VERSION)
  })
})

describe('memory estimates', () => {
  const llama3_8b = { vocabSize: 128256, hiddenSize: 4096, intermediateSize: 14336, numLayers: 32, numHeads: 32, numKvHeads: 8, headDim: 128, tieEmbeddings: false, attentionBias: false }

  it('Llama-3-8B: NF4 base 5.70 GB, LoRA r32 on q/k/v/o, checkpointed activations for 4096 tokens', () => {
    expect(linearParameters(llama3_8b)).toBe(6_979_321_856)
    const w = baseWeightBytes(llama3_8b)
    expect(w.linears / 1e9).toBeCloseTo(3.6, 2)
    expect(w.embeddings / 1e9).toBeCloseTo(2.1, 2)
    expect((w.linears + w.embeddings) / 1e9).toBeCloseTo(5.7, 1)
    expect(loraParameters(llama3_8b)).toBe(27_262_976)
    const t = estimateTrainingMemory(llama3_8b) // a GPU computing in bf16 (the engine's layout there)
    expect(t.tokens).toBe(4096)
    expect(t.parts.find((p) => p.key === 'lora')!.bytes).toBe(27_262_976 * 16)
    // bf16 layer inputs (2 fp32 + 32 bf16 residual buffers) and half-size MLP buffers: BENCHMARKS v13 measured 4.87 GiB of
    // activations at 8 x 1024 on an H200, so about half that at 4096 tokens
    const act = t.parts.find((p) => p.key === 'activations')!.bytes
    expect(act).toBeGreaterThan((2 * 4096 * 4096 * 4 + 32 * 4096 * 4096 * 2) * 1.2)
    expect(act / 2 ** 30).toBeLessThan(2.8)
    expect(t.totalBytes / 1e9).toBeGreaterThan(8)
    expect(t.totalBytes / 1e9).toBeLessThan(10) // README: "about 9.5 GB to train"
    // the fp32 layout of the CPU, and a LoRA on the MLP (fp32 intermediates), need more
    const cpu = estimateTrainingMemory(llama3_8b, { layout: activationLayout(llama3_8b, { backend: 'cpu', bf16Capable: false, gradCheckpointing: true, loraTargets: DEFAULT_LORA_TARGETS }) })
    const mlp = estimateTrainingMemory(llama3_8b, { loraTargets: ['q_proj', 'down_proj'] })
    expect(cpu.totalBytes).toBeGreaterThan(t.totalBytes + 1e9)
    expect(mlp.totalBytes).toBeGreaterThan(t.totalBytes)
    // the workspace grows with the tokens on a bf16 GPU (the attention backward's copies and stored dS)
    expect(t.parts.find((p) => p.key === 'overhead')!.bytes).toBe(workspaceBytes(llama3_8b, 4096, activationLayout(llama3_8b, { backend: 'cuda', bf16Capable: true, gradCheckpointing: true, loraTargets: DEFAULT_LORA_TARGETS })) + 512 * 2 ** 20)
    const c = estimateChatMemory(llama3_8b, 4096)
    expect(c.parts.find((p) => p.key === 'kvCache')!.bytes).toBe(2 * 32 * 4096 * 1024 * 4)
    expect(c.totalBytes).toBeLessThan(t.totalBytes)
  })

  it('counts what the engine allocates (tiny config, by hand)', () => {
    const a = { vocabSize: 10, hiddenSize: 4, intermediateSize: 6, numLayers: 2, numHeads: 2, numKvHeads: 1, headDim: 2, tieEmbeddings: true, attentionBias: false }
    const N = 3
    // fp32 (the CPU): x (L+1)NC=36; one layer N*(C+1+QD+2KD+QD+NH+C+C+1+3FF+7R)=3*(4+1+4+4+4+2+4+4+1+18+14)=180;
    // rstdf 3, logits min(N, 32M/V)=3 rows *10=30, losses 3, LoRA scratch N*(max(C,FF,QD)+R)=3*8=24;
    // dx, dxn 2NC=24, dh N*max(FF,2QD)=24, dup N*max(FF,2KD)=18; ids/targets/lengths 9.
    expect(activationElements(a, 'trainCheckpointed', N, 2)).toBe(36 + 180 + 3 + 30 + 3 + 24 + 24 + 24 + 18 + 9)
    // no checkpointing: every layer's activations and xf (NC=12)
    expect(activationElements(a, 'train', N, 2)).toBe(36 + 2 * 180 + 12 + 3 + 30 + 3 + 24 + 24 + 24 + 18 + 9)
    // a GPU computing in bf16, LoRA on q/k/v/o (in-features 4): x 2NC=24 + bf16 L*N*C/2=12; gate/up/h half-size
    // (FFA=3): layer 3*51=153; LoRA scratch 3*(4+2)=18; dh N*max(3,8)=24, dup N*max(3,4)=12
    const gpu = activationLayout(a, { backend: 'cuda', bf16Capable: true, gradCheckpointing: true, loraTargets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] })
    expect(gpu).toEqual({ ckptBf16: true, mlpBf16: true, loraMaxIn: 4, gpu16: true })
    expect(activationElements(a, 'trainCheckpointed', N, 2, gpu)).toBe(24 + 12 + 153 + 3 + 30 + 3 + 18 + 24 + 24 + 12 + 9)
    // fp16 compute (no bf16 math): bf16 checkpoints but fp32 MLP intermediates; an MLP LoRA keeps them fp32 too
    expect(activationLayout(a, { backend: 'cuda', bf16Capable: false, gradCheckpointing: true, loraTargets: ['q_proj'] })).toEqual({ ckptBf16: true, mlpBf16: false, loraMaxIn: 4, gpu16: true })
    expect(activationLayout(a, { backend: 'cuda', bf16Capable: true, gradCheckpointing: true, loraTargets: ['up_proj'] })).toEqual({ ckptBf16: true, mlpBf16: false, loraMaxIn: 4, gpu16: true })
    expect(activationLayout(a, { backend: 'cuda', bf16Capable: true, computeDtype: 'fp32', gradCheckpointing: true, loraTargets: ['down_proj'] })).toEqual({ ckptBf16: false, mlpBf16: false, loraMaxIn: 6, gpu16: false })
    // Tied embeddings count once: V*C + norms (2L+1)C, 16-bit.
    expect(baseWeightBytes(a).embeddings).toBe((10 * 4 + 5 * 4) * 2)
  })
})

describe('the engine workspace in the estimate', () => {
  const llama3_8b = { vocabSize: 128256, hiddenSize: 4096, intermediateSize: 14336, numLayers: 32, numHeads: 32, numKvHeads: 8, headDim: 128, tieEmbeddings: false, attentionBias: false }
  const bf16 = activationLayout(llama3_8b, { backend: 'cuda', bf16Capable: true, gradCheckpointing: true, loraTargets: DEFAULT_LORA_TARGETS })
  const MiB = 2 ** 20

  it('matches what the H200 measured for Llama-3-8B (BENCHMARKS v14, run 22: workspaces 0.44 GiB at 8 x 1024, 0.19 at 4 x 512)', () => {
    // 8 x 1024: the attention backward's request is the largest: q/dout copies 128 MiB, k/v 32, D 1, dS tiles 272 -> 448 MiB
    expect(workspaceBytes(llama3_8b, 8192, bf16)).toBe(448 * MiB)
    // 4 x 512: copies 40 MiB + dS (at the 1024-row bound) 68 + per-head dk/dv partials 64 (small grid) -> 192 MiB
    expect(workspaceBytes(llama3_8b, 2048, bf16)).toBe(192 * MiB)
  })

  it('grows linearly with the tokens (stored dS is bounded per token), and is the dequantized linear alone off a 16-bit GPU', () => {
    const w16k = workspaceBytes(llama3_8b, 16384, bf16)
    expect(w16k).toBeGreaterThan(1.9 * workspaceBytes(llama3_8b, 8192, bf16))
    expect(w16k).toBeLessThan(2.1 * workspaceBytes(llama3_8b, 8192, bf16))
    const fp32 = activationLayout(llama3_8b, { backend: 'cuda', bf16Capable: true, computeDtype: 'fp32', gradCheckpointing: true, loraTargets: DEFAULT_LORA_TARGETS })
    expect(workspaceBytes(llama3_8b, 8192, fp32)).toBe(14336 * 4096 * 2)
  })

  it("counts down_proj's 16-bit input copy when an MLP LoRA keeps its input in fp32 (a wide MLP, few heads: the GEMM's request is the largest)", () => {
    const wide = { ...llama3_8b, hiddenSize: 1024, intermediateSize: 16384, numHeads: 8, numKvHeads: 8 }
    const qkvo = activationLayout(wide, { backend: 'cuda', bf16Capable: true, gradCheckpointing: true, loraTargets: DEFAULT_LORA_TARGETS })
    const mlp = activationLayout(wide, { backend: 'cuda', bf16Capable: true, gradCheckpointing: true, loraTargets: ['q_proj', 'down_proj'] })
    // attention at 8192 tokens: 8192 * (8*4 + 2*8*128*2 + 2*8*128*2 + 8*1088) = 139 MB -> 192 MiB; the GEMMs with the
    // fp32 MLP: 16384*1024*2 + 8192*16384*2 = 302 MB -> 320 MiB
    expect(workspaceBytes(wide, 8192, qkvo)).toBe(192 * MiB)
    expect(workspaceBytes(wide, 8192, mlp)).toBe(320 * MiB)
  })
})
