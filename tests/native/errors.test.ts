// Bad input never crashes: corrupt/truncated safetensors, unsupported architectures and dtypes, mismatched
// shapes, missing folders/files/tensors, bad training sets and bad settings all reject with the right code and
// a plain message (the engine's also name a C++ file and line); the engine stays usable afterwards.
import { readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { inspectDataset, inspectModel, loadModel } from '../../main/engine/Engine'
import type { Model } from '../../main/engine/Model'
import { addon } from '../../main/engine/native'
import { EngineError, type EngineErrorCode, type TrainConfig } from '../../main/engine/types'
import { encodeQtds, writeQtds } from './helpers/qtds'
import { scratch, tinyModelFolder, trainingSet, TINY } from './helpers/engine'

const s = scratch('qt-errors-')
let good: string
let model: Model
let trainSet: string

beforeAll(async () => {
  good = await tinyModelFolder(s, 'good')
  model = await loadModel({ folder: good })
  trainSet = trainingSet(s, 'ok.qtds', [8, 9, 10, 11]).path
})
afterAll(async () => {
  await model?.close()
  s.cleanup()
})

/** Expects both inspectModel and loadModel to reject with code; returns the load error. */
async function expectModelError(folder: string, code: EngineErrorCode, message?: RegExp): Promise<EngineError> {
  const a = await inspectModel(folder).catch((e: unknown) => e)
  const b = await loadModel({ folder }).catch((e: unknown) => e)
  for (const e of [a, b]) {
    expect(e).toBeInstanceOf(EngineError)
    expect(e).toMatchObject({ code })
    if (message) expect((e as Error).message).toMatch(message)
    expect((e as Error).message.length).toBeGreaterThan(10)
  }
  return b as EngineError
}

async function copyModel(name: string, edit: (dir: string) => void): Promise<string> {
  const dir = await tinyModelFolder(s, name)
  edit(dir)
  return dir
}

describe('bad model folders', () => {
  it('a missing folder or config.json is NOT_FOUND', async () => {
    const e = await expectModelError(s.path('does-not-exist'), 'NOT_FOUND', /does-not-exist/)
    expect(e.file).toMatch(/^engine[\\/].+\.(cpp|h)$/)
    expect(e.line).toBeGreaterThan(0)
    await expectModelError(await copyModel('no-config', (d) => rmSync(join(d, 'config.json'))), 'NOT_FOUND', /config\.json/)
    await expectModelError(await copyModel('no-weights', (d) => rmSync(join(d, 'model.safetensors'))), 'NOT_FOUND')
  })

  it('an unsupported architecture is UNSUPPORTED and names it', async () => {
    const dir = await copyModel('gpt2', (d) => {
      const cfg = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8')) as Record<string, unknown>
      writeFileSync(join(d, 'config.json'), JSON.stringify({ ...cfg, architectures: ['GPT2LMHeadModel'], model_type: 'gpt2' }))
    })
    await expectModelError(dir, 'UNSUPPORTED', /GPT2LMHeadModel/)
  })

  it('corrupt config.json is BAD_FILE', async () => {
    await expectModelError(await copyModel('bad-json', (d) => writeFileSync(join(d, 'config.json'), '{"architectures": ["LlamaForCausalLM"], ')), 'BAD_FILE', /config\.json/)
  })

  it('truncated or garbled safetensors are BAD_FILE', async () => {
    await expectModelError(await copyModel('truncated', (d) => {
      const p = join(d, 'model.safetensors')
      truncateSync(p, Math.floor(readFileSync(p).length / 2))
    }), 'BAD_FILE', /model\.safetensors/)
    await expectModelError(await copyModel('tiny-file', (d) => truncateSync(join(d, 'model.safetensors'), 5)), 'BAD_FILE')
    await expectModelError(await copyModel('huge-header', (d) => {
      const p = join(d, 'model.safetensors')
      const b = readFileSync(p)
      b.writeBigUInt64LE(1n << 40n, 0)
      writeFileSync(p, b)
    }), 'BAD_FILE')
    await expectModelError(await copyModel('garbled-header', (d) => {
      const p = join(d, 'model.safetensors')
      const b = readFileSync(p)
      b.write('#####', 12)
      writeFileSync(p, b)
    }), 'BAD_FILE')
  })

  it('a missing tensor is NOT_FOUND, a wrong shape SHAPE_MISMATCH, an unsupported dtype UNSUPPORTED', async () => {
    const noNorm = s.path('no-norm')
    const { writeTinyModel } = await import('../../main/models/tiny/writeTinyModel')
    await writeTinyModel(noNorm, { ...TINY, transform: (t) => (t.name === 'model.layers.1.post_attention_layernorm.weight' ? null : t) })
    await expectModelError(noNorm, 'NOT_FOUND', /post_attention_layernorm/)

    const transposed = s.path('transposed')
    await writeTinyModel(transposed, { ...TINY, transform: (t) => (t.name === 'model.layers.0.mlp.down_proj.weight' ? { ...t, shape: [t.shape[1], t.shape[0]] } : t) })
    const e = await loadModel({ folder: transposed }).catch((x: unknown) => x)
    expect(e).toMatchObject({ code: 'SHAPE_MISMATCH', message: expect.stringMatching(/down_proj/) })

    const wrongVocab = s.path('wrong-vocab')
    await writeTinyModel(wrongVocab, { ...TINY })
    const cfg = JSON.parse(readFileSync(join(wrongVocab, 'config.json'), 'utf8')) as Record<string, unknown>
    writeFileSync(join(wrongVocab, 'config.json'), JSON.stringify({ ...cfg, vocab_size: 200 }))
    await expectModelError(wrongVocab, 'SHAPE_MISMATCH', /embed_tokens/)

    // An F64 tensor: valid safetensors, but not a dtype the engine loads.
    const f64 = await copyModel('f64', (d) => {
      const p = join(d, 'model.safetensors')
      const b = readFileSync(p)
      const n = Number(b.readBigUInt64LE(0))
      const header = JSON.parse(b.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>
      const norm = header['model.norm.weight'] // 64 BF16 values = 128 bytes = 16 F64 values
      header['model.norm.weight'] = { ...norm, dtype: 'F64', shape: [16] }
      let json = JSON.stringify(header)
      json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8)
      const len = Buffer.alloc(8)
      len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)))
      writeFileSync(p, Buffer.concat([len, Buffer.from(json), b.subarray(8 + n)]))
    })
    const f = await loadModel({ folder: f64 }).catch((x: unknown) => x)
    expect(f).toMatchObject({ code: expect.stringMatching(/^(UNSUPPORTED|SHAPE_MISMATCH)$/) })
    expect((f as Error).message).toMatch(/F64|model\.norm\.weight/)
  })

  it('an index naming a missing shard is NOT_FOUND', async () => {
    const dir = await tinyModelFolder(s, 'shards', { shards: 2 })
    rmSync(join(dir, 'model-00002-of-00002.safetensors'))
    await expectModelError(dir, 'NOT_FOUND', /model-00002-of-00002/)
  })
})

describe('bad training sets', () => {
  it('missing, corrupt, truncated or out-of-vocabulary sets are refused', async () => {
    const cfg: TrainConfig = { totalSteps: 2, batchRows: 2 }
    await expect(inspectDataset(s.path('nope.qtds'))).rejects.toMatchObject({ code: 'NOT_FOUND' })
    await expect(model.createTrainer(cfg, s.path('nope.qtds'))).rejects.toMatchObject({ code: 'NOT_FOUND' })

    const good = encodeQtds([{ ids: [1, 2, 3, 4] }, { ids: [1, 5, 6] }], TINY.vocabSize!)
    const badMagic = Buffer.from(good)
    badMagic.write('NOTQTDS', 0)
    writeFileSync(s.path('magic.qtds'), badMagic)
    await expect(inspectDataset(s.path('magic.qtds'))).rejects.toMatchObject({ code: 'BAD_FILE' })
    writeFileSync(s.path('short.qtds'), good.subarray(0, good.length - 3))
    await expect(inspectDataset(s.path('short.qtds'))).rejects.toMatchObject({ code: 'BAD_FILE' })
    await expect(model.createTrainer(cfg, s.path('short.qtds'))).rejects.toMatchObject({ code: 'BAD_FILE' })
    const badOffsets = Buffer.from(good)
    badOffsets.writeBigUInt64LE(99n, 64 + 8) // offsets[1] beyond T
    writeFileSync(s.path('offsets.qtds'), badOffsets)
    await expect(inspectDataset(s.path('offsets.qtds'))).rejects.toMatchObject({ code: 'BAD_FILE' })

    writeQtds(s.path('vocab.qtds'), [{ ids: [1, 2, TINY.vocabSize! + 5] }, { ids: [1, 2, 3] }], TINY.vocabSize! + 10)
    const e = await model.createTrainer(cfg, s.path('vocab.qtds')).catch((x: unknown) => x)
    expect(e).toBeInstanceOf(EngineError)
    expect((e as EngineError).code).toMatch(/^(INVALID_ARGUMENT|BAD_FILE|SHAPE_MISMATCH)$/)
    expect((e as Error).message).toMatch(/vocab/i)
  })
})

describe('bad settings', () => {
  const cases: [string, TrainConfig, RegExp][] = [
    ['lr 0', { totalSteps: 5, lr: 0 }, /Learning rate/],
    ['lr NaN', { totalSteps: 5, lr: NaN }, /Learning rate/],
    ['r 0', { totalSteps: 5, lora: { r: 0 } }, /rank/],
    ['dropout 1', { totalSteps: 5, lora: { dropout: 1 } }, /dropout/],
    ['unknown target', { totalSteps: 5, lora: { targets: ['qkv' as never] } }, /target "qkv"/],
    ['no targets', { totalSteps: 5, lora: { targets: [] } }, /targets/],
    ['batch 0', { totalSteps: 5, batchRows: 0 }, /Batch size/],
    ['no length', {}, /totalSteps or epochs/],
    ['both lengths', { totalSteps: 5, epochs: 1 }, /not both/],
    ['warmup > total', { totalSteps: 5, warmupSteps: 9 }, /warmup/i],
    ['negative NEFTune', { totalSteps: 5, neftuneAlpha: -1 }, /NEFTune/],
    ['grad accum 0', { totalSteps: 5, gradAccum: 0 }, /accumulation/],
    ['bad schedule', { totalSteps: 5, schedule: 'exp' as never }, /schedule/],
  ]
  for (const [name, cfg, message] of cases) {
    it(`facade rejects ${name} with INVALID_ARGUMENT and a plain message`, async () => {
      await expect(model.createTrainer(cfg, trainSet)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(message) })
    })
  }

  it('the engine itself also refuses bad settings (raw addon, past the facade\'s checks)', async () => {
    const raw = (model as unknown as { handle: { createTrainer(c: object, p: string): Promise<unknown> } }).handle
    for (const c of [{ totalSteps: 5, lr: 0 }, { totalSteps: 5, lora: { r: 0 } }, { totalSteps: 0 }, { totalSteps: 5, batchRows: 0 },
      { totalSteps: 5, lora: { targets: ['nope'] } }, { totalSteps: 5, lora: { dropout: 1.5 } }]) {
      await expect(raw.createTrainer(c, trainSet)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    }
    await expect(raw.createTrainer({ totalSteps: 'x' }, trainSet)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/config\.totalSteps/) })
    const a = addon()
    await expect(a.loadModel({ folder: good, quant: 'int3' }, undefined, new a.CancelToken())).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    await expect(a.loadModel({ folder: good, device: 'tpu:0' }, undefined, new a.CancelToken())).rejects.toMatchObject({ code: expect.stringMatching(/INVALID_ARGUMENT|UNSUPPORTED|DEVICE/) })
  })

  it('load options are checked before any work', async () => {
    await expect(loadModel({ folder: '' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/model folder/) })
    await expect(loadModel({ folder: good, device: 'gpu' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/cuda:0/) })
    await expect(loadModel({ folder: good, quant: 'int8' as never })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
  })

  it('a CUDA device that does not exist is refused plainly', async () => {
    const e = await loadModel({ folder: good, device: 'cuda:7' }).catch((x: unknown) => x)
    expect(e).toBeInstanceOf(EngineError)
    expect((e as EngineError).code).toMatch(/^(UNSUPPORTED|DEVICE|INVALID_ARGUMENT|NOT_FOUND)$/)
  })
})

describe('after all that', () => {
  it('the engine is still usable: load, train, generate', async () => {
    const m = await loadModel({ folder: good })
    const t = await m.createTrainer({ totalSteps: 2, batchRows: 2 }, trainSet)
    expect((await t.step(2)).metrics).toHaveLength(2)
    expect((await m.generate([1, 2, 3], { maxNewTokens: 3 }, { adapter: t.adapter })).tokens).toHaveLength(3)
    await m.close()
    expect(t.disposed).toBe(true)
    await expect(m.generate([1], {})).rejects.toMatchObject({ code: 'DISPOSED' })
    expect(() => m.memory()).toThrow(/disposed/)
  })
})
