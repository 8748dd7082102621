// A whole export of the trained tiny model (adapter + merged + Q8_0 GGUF + Modelfile + llama.cpp self-test), and the
// ways it must refuse or stop: a disk too full (refused before writing anything), a cancel in the middle (nothing
// left behind), an existing folder, an adapter of another model; and a self-test that really fails when llama.cpp's
// answers do not stop or differ from the engine's.
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ExportResult } from '../../../preload/contract'
import { loadModel } from '../../../main/engine/Engine'
import { prepareExport, runExport, type ExportProgress, type ExportSpec } from '../../../main/export/runExport'
import { promptMessages, runSelfTest, type SelfTestPrompt } from '../../../main/export/selfTest/selfTest'
import { writeTinyChatModel } from '../../../main/models/tiny/writeTinyChatModel'
import { chatFormatFor } from '../../../main/tokenizer/ChatFormat'
import { loadTokenizer } from '../../../main/tokenizer/loadTokenizer'
import { ROWS, scratchDir, SYSTEM, trainedTinyModel, type TrainedFixture } from './helpers'

const s = scratchDir('qt-export-')
afterAll(() => s.cleanup())

let fx: TrainedFixture
beforeAll(async () => {
  fx = await trainedTinyModel(s.path('fixture'))
})

function spec(destDir: string, over: Partial<ExportSpec> = {}): ExportSpec {
  return {
    name: '人資助理 export',
    destDir,
    base: { dir: fx.modelDir, name: 'Tiny Llama 3', repoId: null },
    adapterDir: fx.adapterDir,
    template: 'model',
    systemPrompt: SYSTEM,
    training: [['Run', 'run 1'], ['Steps', '60']],
    outputs: { adapter: true, merged: true, gguf: 'Q8_0' },
    maxShardBytes: 100_000,
    selfTest: { questions: ROWS.map((r) => ({ question: r.question, reference: r.answer })), maxNewTokens: 40, compareTokens: 8, device: 'cpu', quant: 'none' },
    ...over,
  }
}

describe('a full export', () => {
  const dest = s.path('out')
  let result: ExportResult
  const events: ExportProgress[] = []
  beforeAll(async () => {
    result = await runExport(spec(dest), { onProgress: (p) => events.push(p) })
  })

  it('writes the adapter, the merged model, the GGUF with its Modelfile and READMEs into the final folder only', () => {
    expect(result.folder).toBe(join(dest, '人資助理 export'))
    expect(readdirSync(dest)).toEqual(['人資助理 export']) // no temporary folder left
    const paths = result.files.map((f) => f.path)
    for (const p of ['README.md', 'SELFTEST.md', 'selftest.json', 'adapter/adapter_config.json', 'adapter/adapter_model.safetensors', 'adapter/tokenizer.json',
      'adapter/tokenizer_config.json', 'adapter/README.md', 'merged/config.json', 'merged/generation_config.json', 'merged/model.safetensors.index.json',
      'merged/tokenizer.json', 'merged/tokenizer_config.json', 'merged/README.md', 'gguf/export-Q8_0.gguf',
      'gguf/Modelfile', 'gguf/README.md']) {
      expect(paths).toContain(p)
    }
    expect(paths.filter((p) => /^merged\/model-0000\d-of-0000\d\.safetensors$/.test(p)).length).toBeGreaterThan(1)
    expect(result.files.every((f) => f.bytes > 0)).toBe(true)
  })

  it('reports progress in order up to 1', () => {
    const stages = [...new Set(events.map((e) => e.stage))]
    expect(stages).toEqual(['checking', 'adapter', 'merged', 'gguf', 'selfTest', 'finishing'])
    for (let i = 1; i < events.length; i++) expect(events[i].fraction).toBeGreaterThanOrEqual(events[i - 1].fraction)
    expect(events.at(-1)!.fraction).toBe(1)
    expect(events.at(-1)!.bytesDone).toBe(events.at(-1)!.bytesTotal)
  })

  it('self-tests the GGUF in llama.cpp: every training question stops at <|eot_id|> with the engine\'s answer', async () => {
    const st = result.selfTest!
    expect(st.state).toBe('passed')
    expect(st.reason).toBeNull()
    expect(st.templateMatches).toBe(true)
    expect(st.endTokenIsEog).toBe(true)
    const installed = (JSON.parse(readFileSync(join('node_modules', 'node-llama-cpp', 'package.json'), 'utf8')) as { version: string }).version
    expect(st.runtime).toBe(`${st.runtime.split(' via ')[0]} via node-llama-cpp ${installed} (CPU)`)
    expect(st.runtime).toMatch(/^llama\.cpp \S+ via /)
    expect(st.questions).toHaveLength(4)
    st.questions.forEach((q, i) => {
      expect(q.passed).toBe(true)
      expect(q.stopped).toBe(true)
      expect(q.tokenizerMatches).toBe(true)
      expect(q.ggufAnswer).toBe(ROWS[i].answer)
      expect(q.engineAnswer).toBe(ROWS[i].answer)
      expect(q.ggufTokens.at(-1)).toBe(1023)
    })
    const md = await readFile(join(result.folder, 'SELFTEST.md'), 'utf8')
    expect(md).toContain('# Self-test: PASSED')
    expect(md).toContain(`| 1 | ${ROWS[0].question} | ${ROWS[0].answer} | ${ROWS[0].answer} | yes |`)
  })

  it('the exported adapter is the trained one, names its base, and carries the training template', async () => {
    const cfg = JSON.parse(await readFile(join(result.folder, 'adapter', 'adapter_config.json'), 'utf8')) as Record<string, unknown>
    expect(cfg.base_model_name_or_path).toBe(fx.modelDir)
    expect(cfg.peft_type).toBe('LORA')
    const model = await loadModel({ folder: fx.modelDir, quant: 'none' })
    try {
      const a = await model.loadAdapter(fx.adapterDir)
      const b = await model.loadAdapter(join(result.folder, 'adapter'))
      const ids = [1019, 1021, 300, 301, 1022]
      expect(await model.forwardLogits(ids, { adapter: b })).toEqual(await model.forwardLogits(ids, { adapter: a }))
    } finally {
      await model.close()
    }
    const tok = await loadTokenizer(join(result.folder, 'adapter'))
    expect(chatFormatFor(tok, 'model').template).toBe(chatFormatFor(await loadTokenizer(fx.modelDir), 'model').template)
    const readme = await readFile(join(result.folder, 'adapter', 'README.md'), 'utf8')
    expect(readme).toContain('Tiny Llama 3')
    expect(readme).toContain('`<\\|eot_id\\|>` (id 1023), `<\\|end_of_text\\|>` (id 1020)') // pipes escaped inside the table
    expect(readme).toContain('PeftModel.from_pretrained(base, "path/to/this/folder")')
    expect(readme).toContain('eos_token_id=[1023, 1020]')
    expect(readme).toContain(SYSTEM)
    expect(readme).toContain('r 8, alpha 16')
  })

  it('writes a Modelfile with the Llama 3 TEMPLATE, the project system prompt and both stop tokens', async () => {
    const mf = await readFile(join(result.folder, 'gguf', 'Modelfile'), 'utf8')
    expect(mf).toContain('FROM ./export-Q8_0.gguf')
    expect(mf).toContain('<|start_header_id|>assistant<|end_header_id|>')
    expect(mf).toContain(`SYSTEM """${SYSTEM}"""`)
    expect(mf).toContain('PARAMETER stop "<|eot_id|>"')
    expect(mf).toContain('PARAMETER stop "<|end_of_text|>"')
    const merged = await readFile(join(result.folder, 'merged', 'README.md'), 'utf8')
    expect(merged).toContain('ORIGINAL')
    expect(merged).toContain('NF4')
  })

  it('the self-test fails when llama.cpp does not stop in time, or answers differently from the engine', async () => {
    const tok = await loadTokenizer(fx.modelDir)
    const format = chatFormatFor(tok, 'model')
    const prompts: SelfTestPrompt[] = ROWS.slice(0, 2).map((r) => {
      const m = promptMessages(SYSTEM, r.question)
      return { question: r.question, reference: r.answer, ids: format.encode(m, { addGenerationPrompt: true }).ids, text: format.render(m, { addGenerationPrompt: true }) }
    })
    const ggufPath = join(result.folder, 'gguf', 'export-Q8_0.gguf')
    const decode = (ids: number[]) => tok.decode(ids, { skipSpecialTokens: true })
    const right = result.selfTest!.questions.slice(0, 2).map((q) => q.engineTokens)
    const noStop = await runSelfTest({ ggufPath, chatTemplate: format.template, endOfTurnId: 1023, prompts, maxNewTokens: 3, decode, engineAnswers: async () => right })
    expect(noStop.state).toBe('failed')
    expect(noStop.reason).toContain('2 answer(s) did not stop at the end token')
    expect(noStop.questions.every((q) => !q.stopped && !q.passed)).toBe(true)
    const other = await runSelfTest({ ggufPath, chatTemplate: format.template, endOfTurnId: 1023, prompts, maxNewTokens: 40, decode, engineAnswers: async () => right.map((t) => [t[1], ...t]) })
    expect(other.state).toBe('failed')
    expect(other.reason).toContain('start differently')
    const template = await runSelfTest({ ggufPath, chatTemplate: `${format.template} `, endOfTurnId: 1023, prompts, maxNewTokens: 40, decode, engineAnswers: async () => right })
    expect(template.state).toBe('failed')
    expect(template.templateMatches).toBe(false)
  })
})

describe('refusals and cancel', () => {
  it('refuses a disk that is too full, before writing anything, and says how much is needed', async () => {
    const dest = s.path('full')
    const err = await runExport(spec(dest, { selfTest: null }), { freeSpace: async () => 10_000_000 }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'DISK_FULL' })
    expect((err as Error).message).toMatch(/needs about 0\.07 GB of free space in .*, but only 0\.01 GB is free/)
    expect(readdirSync(dest)).toEqual([])
  })

  for (const stage of ['merged', 'gguf'] as const) {
    it(`a cancel while writing the ${stage} files leaves no file behind`, async () => {
      const dest = s.path(`cancel-${stage}`)
      const ac = new AbortController()
      const seen: string[] = []
      const err = await runExport(spec(dest, { maxShardBytes: 20_000 }), {
        signal: ac.signal,
        onProgress: (p) => {
          seen.push(p.stage)
          if (p.stage === stage) ac.abort()
        },
      }).catch((e: unknown) => e)
      expect(err).toMatchObject({ code: 'CANCELLED' })
      expect(seen).toContain(stage)
      expect(seen).not.toContain('finishing')
      expect(readdirSync(dest)).toEqual([])
    })
  }

  it('refuses an existing folder, and an adapter trained for another model', async () => {
    const dest = s.path('out') // holds the full export of the first describe
    await expect(runExport(spec(dest))).rejects.toMatchObject({ code: 'CONFLICT' })
    const other = s.path('other-model')
    await writeTinyChatModel(other, { flavour: 'llama3', hiddenSize: 32, intermediateSize: 64, numHeads: 4, numKvHeads: 2 })
    const err = await prepareExport({ ...spec(s.path('x')), base: { dir: other, name: 'other', repoId: null } }, true).catch((e: unknown) => e)
    expect((err as Error).message).toMatch(/does not fit the base weight .*trained for another model/)
    expect(existsSync(s.path('x'))).toBe(false)
  })

  it('reports an output the model cannot have instead of failing the estimate', async () => {
    const p = await prepareExport(spec(s.path('est'), { outputs: { adapter: true, merged: false, gguf: null } }), false)
    try {
      expect(p.unavailable).toEqual({ merged: null, gguf: null })
      expect(p.files.map((f) => f.path)).not.toContain('gguf/export-Q8_0.gguf')
      expect(p.stopTokens).toEqual([{ id: 1023, text: '<|eot_id|>' }, { id: 1020, text: '<|end_of_text|>' }])
      expect(p.systemPrompt).toBe(SYSTEM)
    } finally {
      await p.close()
    }
  })
})
