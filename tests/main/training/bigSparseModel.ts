// A model folder with the shape of a large Llama (hidden 8192, 8 layers: 2.8B parameters) whose safetensors file is
// sparse: a real header, the data region only reserved (no disk blocks, nothing to read). Model import reads the
// config and the headers only, so it registers like the real thing; training estimates see its true size. The
// tokenizer is the tiny one (vocab 600), so rows tokenize quickly. Never loaded into the engine.
import { open, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { encodeSafetensorsHeader } from '../../../main/models/safetensors'
import { writeTinyChatModel } from '../../../main/models/tiny/writeTinyChatModel'

export const BIG = { hidden: 8192, layers: 8, heads: 64, kvHeads: 8, ff: 8192, vocab: 600 }

export async function writeBigSparseModel(dir: string): Promise<void> {
  await writeTinyChatModel(dir, { flavour: 'llama3', vocabSize: BIG.vocab, hiddenSize: 32, intermediateSize: 64, numLayers: 1, numHeads: 4, numKvHeads: 2 })
  const cfg = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>
  Object.assign(cfg, {
    hidden_size: BIG.hidden, intermediate_size: BIG.ff, num_hidden_layers: BIG.layers, num_attention_heads: BIG.heads,
    num_key_value_heads: BIG.kvHeads, max_position_embeddings: 8192,
  })
  await writeFile(join(dir, 'config.json'), JSON.stringify(cfg, null, 2))
  const C = BIG.hidden
  const HS = C / BIG.heads
  const tensors: [string, number[]][] = [['model.embed_tokens.weight', [BIG.vocab, C]]]
  for (let l = 0; l < BIG.layers; l++) {
    const p = `model.layers.${l}`
    tensors.push(
      [`${p}.input_layernorm.weight`, [C]], [`${p}.self_attn.q_proj.weight`, [C, C]], [`${p}.self_attn.k_proj.weight`, [BIG.kvHeads * HS, C]],
      [`${p}.self_attn.v_proj.weight`, [BIG.kvHeads * HS, C]], [`${p}.self_attn.o_proj.weight`, [C, C]], [`${p}.post_attention_layernorm.weight`, [C]],
      [`${p}.mlp.gate_proj.weight`, [BIG.ff, C]], [`${p}.mlp.up_proj.weight`, [BIG.ff, C]], [`${p}.mlp.down_proj.weight`, [C, BIG.ff]],
    )
  }
  tensors.push(['model.norm.weight', [C]], ['lm_head.weight', [BIG.vocab, C]])
  const bytes = tensors.map(([, shape]) => shape.reduce((a, b) => a * b, 1) * 2)
  const header = encodeSafetensorsHeader(tensors.map(([name, shape], i) => ({ name, dtype: 'BF16', shape, bytes: bytes[i] })))
  const file = join(dir, 'model.safetensors')
  await rm(file, { force: true })
  const fh = await open(file, 'w')
  await fh.write(header, 0, header.length, 0)
  await fh.truncate(header.length + bytes.reduce((a, b) => a + b, 0))
  await fh.close()
}
