// Importing local model folders through the real channels: a valid tiny model (single file, sharded, Qwen2 with
// tied embeddings, a Hugging Face cache folder), and every broken folder a user may pick, each with its own problem
// code and a message that says what to do. Registration is by path: delete only unregisters.
import { existsSync, readFileSync, rmSync, symlinkSync, mkdirSync, writeFileSync, truncateSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { ModelEntry, ModelFolderReport } from '../../../preload/contract'
import { tinyModelTensors } from '../../../main/models/tiny/writeTinyModel'
import { writeTinyModelFolder } from '../../fixtures/hub/tinyHubRepo'
import { tempDir } from '../../helpers/tempContext'
import { modelsApp, type ModelsApp } from './helpers'

let root: string
let app: ModelsApp

beforeAll(() => {
  root = tempDir('qt-import-')
})
afterAll(() => rmSync(root, { recursive: true, force: true }))
afterEach(async () => {
  await app?.cleanup()
})

let n = 0
async function folder(options: Parameters<typeof writeTinyModelFolder>[1] = {}, edit?: (dir: string) => void): Promise<string> {
  const dir = join(root, `m${n++}`)
  await writeTinyModelFolder(dir, options)
  edit?.(dir)
  return dir
}

function editJson(path: string, f: (v: Record<string, unknown>) => void): void {
  const v = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>
  f(v)
  writeFileSync(path, JSON.stringify(v))
}

describe('a valid folder', () => {
  it('is inspected, imported by path (no copy) and listed with its details', async () => {
    app = modelsApp()
    const dir = await folder({ hiddenSize: 64, numLayers: 2, maxPosition: 1024 })
    const report = await app.call<ModelFolderReport>('models:inspectFolder', { path: `  "${dir}"  ` })
    const d = report.details
    const expectedParams = tinyModelTensors({ vocabSize: 1024, hiddenSize: 64, numLayers: 2 }).reduce((s, t) => s + t.data.length, 0)
    expect(d.architecture).toBe('LlamaForCausalLM')
    expect(d.family).toBe('llama')
    expect(d.parameters).toBe(expectedParams)
    expect(d.contextLength).toBe(1024)
    expect(d.dtype).toBe('BF16')
    expect(d.weightFiles).toEqual(['model.safetensors'])
    expect(d.tokenizer).toMatchObject({ vocabSize: 1024, bos: '<|begin_of_text|>', eos: '<|eot_id|>' })
    expect(d.template).toMatchObject({ modelTemplateFile: 'tokenizer_config.json', modelTemplateUsable: true, choice: 'model', suggested: ['llama3'] })
    expect(report.sizeBytes).toBeGreaterThan(statSync(join(dir, 'model.safetensors')).size)
    expect(d.memory.training.totalBytes).toBeGreaterThan(d.memory.chat.totalBytes - d.memory.chat.parts.find((p) => p.key === 'kvCache')!.bytes)
    expect(report.registeredId).toBeNull()

    const entry = await app.call<ModelEntry>('models:import', { path: dir, name: '我的小模型' })
    expect(entry).toMatchObject({ name: '我的小模型', source: 'local', path: dir, status: 'ready', architecture: 'LlamaForCausalLM', deleteRemovesFiles: false, missing: false })
    expect(entry.details?.parameters).toBe(expectedParams)
    const list = await app.call<ModelEntry[]>('models:list')
    expect(list.map((m) => m.source).sort()).toEqual(['demo', 'local'])
    expect(app.events.some((e) => e.event === 'models:changed')).toBe(true)

    // The same folder twice is refused; inspect now points at the registration.
    const again = await app.fail('models:import', { path: dir })
    expect(again.code).toBe('CONFLICT')
    expect((await app.call<ModelFolderReport>('models:inspectFolder', { path: dir })).registeredId).toBe(entry.id)

    // Used by a project, then deleted: only unregistered, the folder stays; the project forgets the model.
    const project = await app.call<{ id: number }>('projects:create', { name: 'p' })
    await app.call('projects:update', { id: project.id, modelId: entry.id })
    expect((await app.call<ModelEntry>('models:get', { id: entry.id })).usedByProjects).toBe(1)
    expect(await app.call('models:delete', { id: entry.id })).toEqual({ removedFiles: false })
    expect(existsSync(join(dir, 'model.safetensors'))).toBe(true)
    expect((await app.call<{ modelId: number | null }>('projects:get', { id: project.id })).modelId).toBeNull()
  })

  it('reads sharded weights with an index, Qwen2 with tied embeddings, and reports a folder that disappeared', async () => {
    app = modelsApp()
    const sharded = await folder({ shards: 3, numLayers: 3 })
    const s = await app.call<ModelFolderReport>('models:inspectFolder', { path: sharded })
    expect(s.details.weightFiles).toEqual(['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors'])

    const qwen = await folder({ architecture: 'qwen2', tieEmbeddings: true, dtype: 'float16' })
    const q = await app.call<ModelFolderReport>('models:inspectFolder', { path: qwen })
    expect(q.details).toMatchObject({ architecture: 'Qwen2ForCausalLM', family: 'qwen2', tieEmbeddings: true, dtype: 'F16' })

    const entry = await app.call<ModelEntry>('models:import', { path: qwen })
    rmSync(qwen, { recursive: true })
    expect((await app.call<ModelEntry>('models:get', { id: entry.id })).missing).toBe(true)
  })

  it('resolves a Hugging Face cache folder (models--org--name) to its snapshot', async () => {
    app = modelsApp()
    const cache = join(root, 'models--acme--Tiny-Llama')
    const snap = join(cache, 'snapshots', 'abc123')
    await writeTinyModelFolder(join(cache, 'blobs-src'))
    mkdirSync(snap, { recursive: true })
    for (const f of ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) symlinkSync(join(cache, 'blobs-src', f), join(snap, f))
    mkdirSync(join(cache, 'refs'))
    writeFileSync(join(cache, 'refs', 'main'), 'abc123')
    const r = await app.call<ModelFolderReport>('models:inspectFolder', { path: cache })
    expect(r.path).toBe(snap)
    expect(r.suggestedName).toBe('acme/Tiny-Llama')
  })

  it('picks a built-in template when the model ships none, and lets the user switch', async () => {
    app = modelsApp()
    const dir = await folder({}, (d) => editJson(join(d, 'tokenizer_config.json'), (v) => delete v.chat_template))
    const entry = await app.call<ModelEntry>('models:import', { path: dir })
    expect(entry.details!.template).toMatchObject({ modelTemplateFile: null, modelTemplateUsable: false, suggested: ['llama3'], choice: 'llama3' })
    const wrong = await app.fail('models:setTemplate', { id: entry.id, template: 'chatml' })
    expect(wrong.code).toBe('UNSUPPORTED')
    expect((await app.fail('models:setTemplate', { id: entry.id, template: 'model' })).message).toContain('"llama3"')
  })
})

describe('broken folders get the right problem and the fix', () => {
  const cases: [string, () => Promise<string>, string, RegExp][] = [
    [
      'a .bin-only PyTorch checkpoint',
      () =>
        folder({}, (d) => {
          rmSync(join(d, 'model.safetensors'))
          writeFileSync(join(d, 'pytorch_model.bin'), Buffer.alloc(64))
        }),
      'binOnly',
      /PyTorch checkpoints \(pytorch_model\.bin\).*safe_serialization=True.*-safetensors/s,
    ],
    [
      'a folder with only a GGUF file',
      async () => {
        const d = join(root, `gguf${n++}`)
        mkdirSync(d)
        writeFileSync(join(d, 'llama-3-8b-instruct.Q4_K_M.gguf'), Buffer.from('GGUF'))
        return d
      },
      'gguf',
      /GGUF file: a llama\.cpp.*Import the original Hugging Face folder/,
    ],
    [
      'a GGUF file picked directly',
      async () => {
        const f = join(root, `model${n++}.gguf`)
        writeFileSync(f, Buffer.from('GGUF'))
        return f
      },
      'gguf',
      /GGUF file/,
    ],
    [
      'a missing shard',
      () => folder({ shards: 3, numLayers: 3 }, (d) => rmSync(join(d, 'model-00002-of-00003.safetensors'))),
      'missingShards',
      /split into 3 weight files, but 1 is missing.*model-00002-of-00003\.safetensors/,
    ],
    [
      'an unsupported architecture',
      () => folder({}, (d) => editJson(join(d, 'config.json'), (v) => (v.architectures = ['Gemma2ForCausalLM']))),
      'unsupportedArchitecture',
      /Gemma2ForCausalLM.*Supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM/,
    ],
    [
      'missing tokenizer files',
      () => folder({}, (d) => rmSync(join(d, 'tokenizer.json'))),
      'noTokenizer',
      /has no tokenizer\.json/,
    ],
    [
      'a SentencePiece-only tokenizer',
      () =>
        folder({}, (d) => {
          rmSync(join(d, 'tokenizer.json'))
          writeFileSync(join(d, 'tokenizer.model'), Buffer.alloc(16))
        }),
      'noTokenizer',
      /only has tokenizer\.model.*save_pretrained/,
    ],
    [
      'a pre-quantized model',
      () => folder({}, (d) => editJson(join(d, 'config.json'), (v) => (v.quantization_config = { quant_method: 'gptq', bits: 4 }))),
      'quantized',
      /already-quantized model \(gptq\)/,
    ],
    [
      'weights that do not match config.json',
      () => folder({}, (d) => editJson(join(d, 'config.json'), (v) => (v.num_hidden_layers = 3))),
      'badWeights',
      /model\.layers\.2\.input_layernorm\.weight is missing/,
    ],
    [
      'a truncated weight file',
      () => folder({}, (d) => truncateSync(join(d, 'model.safetensors'), 5000)),
      'badWeights',
      /model\.safetensors cannot be read.*truncated/,
    ],
    [
      'a folder that is not a model',
      async () => {
        const d = join(root, `empty${n++}`)
        mkdirSync(d)
        return d
      },
      'noConfig',
      /no config\.json/,
    ],
    ['a path that does not exist', async () => join(root, 'nope'), 'notFound', /does not exist/],
    ['a relative path', async () => 'models/llama', 'relativePath', /full path/],
  ]
  for (const [what, make, problem, message] of cases) {
    it(what, async () => {
      app = modelsApp()
      const path = await make()
      const err = await app.fail('models:inspectFolder', { path })
      expect(err.details?.problem).toBe(problem)
      expect(err.message).toMatch(message)
      const imp = await app.fail('models:import', { path })
      expect(imp.details?.problem).toBe(problem)
      expect((await app.call<ModelEntry[]>('models:list')).filter((m) => m.source === 'local')).toEqual([])
    })
  }

  it('points at the subfolder that holds the model', async () => {
    app = modelsApp()
    const outer = join(root, `outer${n++}`)
    await writeTinyModelFolder(join(outer, 'Llama-3.2-1B-Instruct'))
    const err = await app.fail('models:inspectFolder', { path: outer })
    expect(err.details?.problem).toBe('noConfig')
    expect(err.message).toContain(join(outer, 'Llama-3.2-1B-Instruct'))
  })
})
