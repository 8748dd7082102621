// One export, start to finish, in plain Node (the export worker process runs it; tests call it directly):
//   1. prepareExport: open the base weights and the adapter, the tokenizer and the TRAINING chat template, plan every
//      file (merged shards, GGUF layout) so the size is known exactly before anything is written;
//   2. refuse when the folder exists or the disk lacks the space (free-space function injectable);
//   3. write everything into a hidden temporary folder beside the destination:
//        adapter/  PEFT adapter + tokenizer files + README.md
//        merged/   bf16 Hugging Face folder (sharded) + README.md
//        gguf/     <name>-<TYPE>.gguf + Modelfile + README.md
//        README.md, SELFTEST.md + selftest.json (when the self-test ran)
//   4. self-test the GGUF in llama.cpp against the app's engine (selfTest/selfTest.ts);
//   5. rename the temporary folder into place. A failure or a cancel deletes the temporary folder: no half-written
//      export is ever left under the final name.
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { copyFile, mkdir, readFile, rename, rm, stat, statfs, writeFile } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import type { ExportFile, ExportResult, ExportSelfTestReport, ExportStage, GgufType } from '../../preload/contract'
import { AppError } from '../errors'
import { chatFormatFor, type ChatFormat, type TemplateChoice } from '../tokenizer/ChatFormat'
import { loadTokenizer } from '../tokenizer/loadTokenizer'
import type { ModelTokenizer } from '../tokenizer/ModelTokenizer'
import { adapterReadme, ggufReadme, mergedReadme, selfTestMarkdown, type ExportFacts } from './exportReadme'
import { QuantPool } from './gguf/QuantPool'
import { planGguf, writeGguf, type GgufPlan } from './gguf/writeGguf'
import { MergedWeights, readPeftConfig } from './merge/MergedWeights'
import { planMergedModel, TOKENIZER_FILES, writeHfSideFiles, writeMergedWeights, type MergedModelPlan } from './merge/writeMergedModel'
import { buildModelfile, ollamaFormatOf, templateDefaultSystem } from './ollamaModelfile'
import { promptMessages, runSelfTest, type SelfTestPrompt } from './selfTest/selfTest'

type Json = Record<string, unknown>

export interface ExportSelfTestSpec {
  questions: { question: string; reference: string }[]
  maxNewTokens: number
  /** Leading tokens that must agree. */
  compareTokens: number
  /** Engine device for the reference answers ('cpu' | 'cuda:<n>') and its quantization (as in the app's chat). */
  device: string
  quant: 'nf4' | 'none'
  exactKvCache?: boolean
}

/** Everything an export needs, resolved (serialisable: it is sent to the export worker). */
export interface ExportSpec {
  name: string
  destDir: string
  base: { dir: string; name: string; repoId: string | null }
  adapterDir: string
  template: TemplateChoice
  systemPrompt: string
  /** Training facts for the READMEs. */
  training: [string, string][]
  outputs: { adapter: boolean; merged: boolean; gguf: GgufType | null }
  maxShardBytes?: number
  /** Helper processes for Q4_K_M (default: one per core when there are several; 0 = encode in this process). */
  quantHelpers?: number
  selfTest: ExportSelfTestSpec | null
}

export interface ExportProgress {
  stage: ExportStage
  fraction: number
  bytesDone: number
  bytesTotal: number
  detail: string
}

export interface ExportHooks {
  onProgress?: (p: ExportProgress) => void
  signal?: AbortSignal
  /** Free bytes on the disk holding `path` (default: fs.statfs). */
  freeSpace?: (path: string) => Promise<number>
  /** The app engine's greedy answers for the self-test (default: the engine facade, in this process). */
  engineAnswers?: (spec: ExportSpec, format: ChatFormat, prompts: SelfTestPrompt[]) => Promise<number[][]>
}

export interface PreparedExport {
  spec: ExportSpec
  merged: MergedWeights
  tokenizer: ModelTokenizer
  format: ChatFormat
  config: Json
  facts: ExportFacts
  files: ExportFile[]
  totalBytes: number
  mergedPlan: MergedModelPlan | null
  ggufPlan: GgufPlan | null
  ggufFile: string | null
  /** Why an output cannot be made for this model (null: it can). */
  unavailable: { merged: string | null; gguf: string | null }
  stopTokens: { id: number; text: string }[]
  systemPrompt: string
  close(): Promise<void>
}

/** Extra bytes required beyond the planned files (file-system overhead, the self-test report). */
export function diskMargin(total: number): number {
  return Math.max(64 * 1024 * 1024, Math.ceil(total * 0.01))
}

/** A file name made of letters, digits, '.', '_' and '-' (the GGUF name; Ollama and LM Studio like plain names). */
export function fileSlug(name: string): string {
  const s = name.normalize('NFKD').replace(/[^A-Za-z0-9._-]+/g, '-').replace(/-+/g, '-').replace(/^[-.]+|[-.]+$/g, '')
  return s.slice(0, 60) || 'model'
}

/** A folder name without characters Windows, macOS or Linux refuse. */
export function folderName(name: string): string {
  const s = name.replace(/[<>:"/\\|?*\u0000-\u001f]+/g, ' ').replace(/\s+/g, ' ').trim().replace(/[. ]+$/, '')
  return s.slice(0, 120) || 'export'
}

async function readJson(path: string): Promise<Json> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as Json
  } catch (err) {
    throw new AppError('INVALID_ARGUMENT', `${path} cannot be read (${(err as Error).message}). Download the model again.`)
  }
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size
  } catch {
    return 0
  }
}

function templateSourceLabel(choice: TemplateChoice, format: ChatFormat): string {
  if (choice === 'model') return `the model's own (${format.templateSource})`
  if (typeof choice === 'string') return `built-in "${choice}"`
  return 'custom'
}

function adapterConfigJson(raw: Json, base: ExportSpec['base']): string {
  return `${JSON.stringify({ ...raw, base_model_name_or_path: base.repoId ?? base.dir }, null, 2)}\n`
}

function topReadme(p: PreparedExport, selfTest: ExportSelfTestReport | null): string {
  const f = p.facts
  const parts = [
    `# ${f.exportName}`,
    '',
    '> QA Tuner 匯出：LoRA 轉接器、合併後模型與 GGUF。各資料夾內的 README.md 說明用法。',
    '',
    `Fine-tuned from ${f.baseRepoId ?? f.baseModelName} with QA Tuner on ${f.createdAt}.`,
    '',
    ...(p.spec.outputs.adapter ? ['- `adapter/`: the LoRA adapter (PEFT) with the tokenizer and the training chat template.'] : []),
    ...(p.spec.outputs.merged ? ['- `merged/`: base + adapter merged, bf16 safetensors: transformers, vLLM, the Hugging Face Hub.'] : []),
    ...(p.ggufFile ? [`- \`gguf/${p.ggufFile}\` + \`gguf/Modelfile\`: llama.cpp, LM Studio, Ollama.`] : []),
    '',
    `Chat template: ${f.templateSource}. Stop tokens: ${f.stopTokens.map((s) => `\`${s.text}\``).join(', ')}.`,
    '',
  ]
  if (selfTest) {
    const passed = selfTest.questions.filter((q) => q.passed).length
    parts.push(`Self-test (${selfTest.runtime}): ${selfTest.state.toUpperCase()}, ${passed}/${selfTest.questions.length} questions. See SELFTEST.md.`, '')
  }
  return parts.join('\n')
}

/** Whether training put the bos token first: the template renders it at the start of a conversation (Llama 3). */
export function templateStartsWithBos(format: ChatFormat, tokenizer: ModelTokenizer): boolean {
  const bos = tokenizer.bos?.text
  return !!bos && format.render([{ role: 'user', content: 'x' }], { addGenerationPrompt: true }).startsWith(bos)
}

/** The SYSTEM of the Modelfile: the training system prompt, else the one the template adds by itself. */
function modelfileSystem(format: ChatFormat, systemPrompt: string): string {
  if (systemPrompt) return systemPrompt
  return templateDefaultSystem(format.render([{ role: 'user', content: 'x' }], { addGenerationPrompt: true }))
}

/** Opens and plans an export. With `strict` an unavailable output that was asked for throws; otherwise it is reported. */
export async function prepareExport(spec: ExportSpec, strict: boolean): Promise<PreparedExport> {
  if (!spec.outputs.adapter && !spec.outputs.merged && !spec.outputs.gguf) throw new AppError('INVALID_ARGUMENT', 'Choose at least one thing to export.')
  const adapterConfig = await readPeftConfig(spec.adapterDir)
  const merged = await MergedWeights.open(spec.base.dir, spec.adapterDir)
  try {
    const config = await readJson(join(spec.base.dir, 'config.json'))
    const tokenizer = await loadTokenizer(spec.base.dir)
    const format = chatFormatFor(tokenizer, spec.template)
    const stopTokens = format.stopIds.map((id) => ({ id, text: tokenizer.idToToken(id) ?? String(id) }))
    const systemPrompt = spec.systemPrompt.trim()
    const archs = Array.isArray(config.architectures) ? (config.architectures as string[]) : []
    const facts: ExportFacts = {
      exportName: spec.name,
      baseModelName: spec.base.name,
      baseRepoId: spec.base.repoId,
      baseModelPath: spec.base.dir,
      architecture: archs[0] ?? 'unknown',
      templateSource: templateSourceLabel(spec.template, format),
      chatTemplate: format.template,
      stopTokens,
      systemPrompt,
      lora: { r: adapterConfig.r, alpha: adapterConfig.alpha, dropout: adapterConfig.dropout, targets: adapterConfig.targets },
      training: spec.training,
      createdAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    }
    const unavailable: PreparedExport['unavailable'] = { merged: null, gguf: null }
    // Merged weights need 16-bit (or fp32) base tensors.
    const notFloat = merged.names().find((n) => !['BF16', 'F16', 'F32'].includes(merged.dtype(n)))
    if (notFloat) unavailable.merged = `The base model is stored quantized (${notFloat} is ${merged.dtype(notFloat)}); merging needs its 16-bit weights.`
    let mergedPlan: MergedModelPlan | null = null
    if (!unavailable.merged) mergedPlan = planMergedModel(merged, spec.maxShardBytes)
    let ggufPlan: GgufPlan | null = null
    let ggufFile: string | null = null
    const ggufType = spec.outputs.gguf ?? 'Q8_0'
    if (unavailable.merged) unavailable.gguf = unavailable.merged
    else {
      try {
        ggufPlan = planGguf({
          merged,
          config,
          tokenizerJson: await readJson(join(spec.base.dir, 'tokenizer.json')),
          tokenizerConfig: await readJson(join(spec.base.dir, 'tokenizer_config.json')),
          chatTemplate: format.template,
          endOfTurnId: format.endOfTurnId,
          addBos: templateStartsWithBos(format, tokenizer),
          fileType: ggufType,
          name: spec.name,
        })
        ggufFile = `${fileSlug(spec.name)}-${ggufType}.gguf`
      } catch (err) {
        if (!(err instanceof AppError)) throw err
        unavailable.gguf = err.message
      }
    }
    if (strict) {
      if (spec.outputs.merged && unavailable.merged) throw new AppError('UNSUPPORTED', unavailable.merged)
      if (spec.outputs.gguf && unavailable.gguf) throw new AppError('UNSUPPORTED', unavailable.gguf)
    }

    // Every file with its size (exact for weights; generated text files measured now or allowed for).
    const files: ExportFile[] = []
    const tokenizerBytes: ExportFile[] = []
    for (const f of TOKENIZER_FILES) if (existsSync(join(spec.base.dir, f))) tokenizerBytes.push({ path: f, bytes: await fileSize(join(spec.base.dir, f)) })
    const tcBytes = (await fileSize(join(spec.base.dir, 'tokenizer_config.json'))) + Buffer.byteLength(format.template, 'utf8') * 2
    if (spec.outputs.adapter) {
      files.push({ path: 'adapter/adapter_model.safetensors', bytes: await fileSize(join(spec.adapterDir, 'adapter_model.safetensors')) })
      files.push({ path: 'adapter/adapter_config.json', bytes: Buffer.byteLength(adapterConfigJson(adapterConfig.raw, spec.base)) })
      for (const t of tokenizerBytes) files.push({ path: `adapter/${t.path}`, bytes: t.bytes })
      files.push({ path: 'adapter/tokenizer_config.json', bytes: tcBytes })
      files.push({ path: 'adapter/README.md', bytes: Buffer.byteLength(adapterReadme(facts)) })
    }
    if (spec.outputs.merged && mergedPlan) {
      for (const s of mergedPlan.shards) files.push({ path: `merged/${s.file}`, bytes: s.bytes })
      if (mergedPlan.index) files.push({ path: 'merged/model.safetensors.index.json', bytes: Buffer.byteLength(JSON.stringify(mergedPlan.index, null, 2)) + 1 })
      files.push({ path: 'merged/config.json', bytes: (await fileSize(join(spec.base.dir, 'config.json'))) + 64 })
      files.push({ path: 'merged/generation_config.json', bytes: (await fileSize(join(spec.base.dir, 'generation_config.json'))) + 128 })
      for (const t of tokenizerBytes) files.push({ path: `merged/${t.path}`, bytes: t.bytes })
      files.push({ path: 'merged/tokenizer_config.json', bytes: tcBytes })
      files.push({ path: 'merged/README.md', bytes: Buffer.byteLength(mergedReadme(facts, mergedPlan.shards.length)) })
    }
    if (spec.outputs.gguf && ggufPlan && ggufFile) {
      files.push({ path: `gguf/${ggufFile}`, bytes: ggufPlan.layout.fileBytes })
      if (ollamaFormatOf(format.template)) {
        files.push({ path: 'gguf/Modelfile', bytes: Buffer.byteLength(buildModelfile({ ggufFile, chatTemplate: format.template, systemPrompt: modelfileSystem(format, systemPrompt), stopStrings: stopTokens.map((s) => s.text) })) })
      }
      files.push({ path: 'gguf/README.md', bytes: Buffer.byteLength(ggufReadme(facts, ggufFile, ggufType, true)) })
    }
    files.push({ path: 'README.md', bytes: 4096 })
    if (spec.outputs.gguf && spec.selfTest) files.push({ path: 'SELFTEST.md', bytes: 65536 })
    const totalBytes = files.reduce((a, f) => a + f.bytes, 0)
    return {
      spec, merged, tokenizer, format, config, facts, files, totalBytes, mergedPlan, ggufPlan: spec.outputs.gguf ? ggufPlan : null,
      ggufFile: spec.outputs.gguf ? ggufFile : null, unavailable, stopTokens, systemPrompt,
      close: () => merged.close(),
    }
  } catch (err) {
    await merged.close()
    throw err
  }
}

export async function defaultFreeSpace(path: string): Promise<number> {
  const s = await statfs(path)
  return Number(s.bavail) * Number(s.bsize)
}

function gb(bytes: number): string {
  return `${(bytes / 1e9).toFixed(bytes < 1e10 ? 2 : 1)} GB`
}

/** The disk check: refuses with DISK_FULL and a plain message when the files will not fit. */
export async function checkFreeSpace(destDir: string, needBytes: number, freeSpace: (path: string) => Promise<number> = defaultFreeSpace): Promise<number> {
  const free = await freeSpace(destDir)
  const need = needBytes + diskMargin(needBytes)
  if (free < need) {
    throw new AppError('DISK_FULL', `This export needs about ${gb(need)} of free space in ${destDir}, but only ${gb(free)} is free. Free up space there, choose another folder, or export fewer formats (the GGUF and the merged model are the large ones).`, {
      needBytes: need,
      freeBytes: free,
    })
  }
  return free
}

/** The app engine's greedy answers, via the engine facade in this process (base + adapter, the chat's precision). */
async function facadeEngineAnswers(spec: ExportSpec, format: ChatFormat, prompts: SelfTestPrompt[]): Promise<number[][]> {
  const st = spec.selfTest!
  const { loadModel } = await import('../engine/Engine')
  const model = await loadModel({ folder: spec.base.dir, device: st.device, quant: st.quant })
  try {
    const adapter = await model.loadAdapter(spec.adapterDir)
    const out: number[][] = []
    for (const p of prompts) {
      const r = await model.generate(p.ids, { maxNewTokens: st.maxNewTokens, stopIds: format.stopIds, temperature: 0 }, { adapter })
      out.push(r.tokens)
    }
    return out
  } finally {
    await model.close()
  }
}

/** Runs a whole export; resolves with the result or rejects with an AppError (CANCELLED when aborted). */
export async function runExport(spec: ExportSpec, hooks: ExportHooks = {}): Promise<ExportResult> {
  const t0 = Date.now()
  const signal = hooks.signal
  const checkCancel = () => {
    if (signal?.aborted) throw new AppError('CANCELLED', 'Export cancelled: nothing was kept.')
  }
  const selfTestShare = spec.outputs.gguf && spec.selfTest ? 0.15 : 0
  let bytesDone = 0
  let bytesTotal = 1
  let lastEmit = 0
  const emit = (stage: ExportStage, detail: string, force = false, selfTestFraction = 0) => {
    const now = Date.now()
    if (!force && now - lastEmit < 250) return
    lastEmit = now
    const files = Math.min(1, bytesDone / Math.max(1, bytesTotal))
    hooks.onProgress?.({ stage, fraction: files * (1 - selfTestShare) + selfTestFraction * selfTestShare, bytesDone, bytesTotal, detail })
  }

  emit('checking', 'Reading the model and the adapter', true)
  const target = join(spec.destDir, spec.name)
  if (existsSync(target)) {
    throw new AppError('CONFLICT', `${target} already exists. Choose another name for the export, or move the old export away.`, { folder: target })
  }
  await mkdir(spec.destDir, { recursive: true })
  const prep = await prepareExport(spec, true)
  const temp = join(spec.destDir, `.${spec.name}.partial-${randomBytes(4).toString('hex')}`)
  let kept = false
  try {
    bytesTotal = prep.totalBytes
    await checkFreeSpace(spec.destDir, prep.totalBytes, hooks.freeSpace)
    checkCancel()
    await mkdir(temp)
    const { format, facts, systemPrompt } = prep
    const bosId = prep.tokenizer.bos?.id ?? null
    const padId = prep.tokenizer.pad?.id ?? null

    const writeTokenizer = async (dir: string) => {
      for (const f of TOKENIZER_FILES) if (existsSync(join(spec.base.dir, f))) await copyFile(join(spec.base.dir, f), join(dir, f))
      const tc = await readJson(join(spec.base.dir, 'tokenizer_config.json'))
      tc.chat_template = format.template
      await writeFile(join(dir, 'tokenizer_config.json'), `${JSON.stringify(tc, null, 2)}\n`)
    }

    if (spec.outputs.adapter) {
      emit('adapter', 'adapter/adapter_model.safetensors', true)
      const dir = join(temp, 'adapter')
      await mkdir(dir)
      await copyFile(join(spec.adapterDir, 'adapter_model.safetensors'), join(dir, 'adapter_model.safetensors'))
      const config = await readPeftConfig(spec.adapterDir)
      await writeFile(join(dir, 'adapter_config.json'), adapterConfigJson(config.raw, spec.base))
      await writeTokenizer(dir)
      await writeFile(join(dir, 'README.md'), adapterReadme(facts))
      bytesDone += prep.files.filter((f) => f.path.startsWith('adapter/')).reduce((a, f) => a + f.bytes, 0)
      emit('adapter', 'adapter/', true)
      checkCancel()
    }

    if (spec.outputs.merged && prep.mergedPlan) {
      const dir = join(temp, 'merged')
      await mkdir(dir)
      const before = bytesDone
      await writeMergedWeights(dir, prep.mergedPlan, prep.merged, {
        signal,
        onProgress: (p) => {
          bytesDone = before + p.bytes
          emit('merged', `merged/ ${p.tensor}`)
        },
      })
      await writeHfSideFiles(dir, { baseDir: spec.base.dir, chatTemplate: format.template, stopIds: format.stopIds, bosId, padId })
      await writeFile(join(dir, 'README.md'), mergedReadme(facts, prep.mergedPlan.shards.length))
      bytesDone = before + prep.files.filter((f) => f.path.startsWith('merged/')).reduce((a, f) => a + f.bytes, 0)
      emit('merged', 'merged/', true)
      checkCancel()
    }

    let selfTest: ExportSelfTestReport | null = null
    if (spec.outputs.gguf && prep.ggufPlan && prep.ggufFile) {
      const dir = join(temp, 'gguf')
      await mkdir(dir)
      const ggufPath = join(dir, prep.ggufFile)
      const before = bytesDone
      const helpers = spec.outputs.gguf === 'Q4_K_M' ? (spec.quantHelpers ?? (availableParallelism() > 1 ? Math.min(16, availableParallelism()) : 0)) : 0
      const pool = helpers > 0 ? QuantPool.create(helpers) : null
      try {
        await writeGguf(ggufPath, prep.ggufPlan, prep.merged, {
          signal,
          pool,
          onProgress: (p) => {
            bytesDone = before + p.bytes
            emit('gguf', `gguf/${prep.ggufFile} ${p.tensor}`)
          },
        })
      } finally {
        pool?.close()
      }
      const hasModelfile = ollamaFormatOf(format.template) !== null
      if (hasModelfile) {
        await writeFile(join(dir, 'Modelfile'), buildModelfile({ ggufFile: prep.ggufFile, chatTemplate: format.template, systemPrompt: modelfileSystem(format, systemPrompt), stopStrings: prep.stopTokens.map((s) => s.text) }))
      }
      await writeFile(join(dir, 'README.md'), ggufReadme(facts, prep.ggufFile, spec.outputs.gguf, hasModelfile))
      bytesDone = before + prep.files.filter((f) => f.path.startsWith('gguf/')).reduce((a, f) => a + f.bytes, 0)
      emit('gguf', 'gguf/', true)
      checkCancel()

      if (spec.selfTest && spec.selfTest.questions.length > 0) {
        emit('selfTest', 'Answering with the app engine', true, 0)
        const prompts: SelfTestPrompt[] = spec.selfTest.questions.map((q) => {
          const messages = promptMessages(systemPrompt, q.question)
          return { question: q.question, reference: q.reference, ids: format.encode(messages, { addGenerationPrompt: true }).ids, text: format.render(messages, { addGenerationPrompt: true }) }
        })
        const engineAnswers = hooks.engineAnswers ?? facadeEngineAnswers
        const st = spec.selfTest
        try {
          selfTest = await runSelfTest({
            ggufPath,
            chatTemplate: format.template,
            endOfTurnId: format.endOfTurnId,
            prompts,
            maxNewTokens: st.maxNewTokens,
            compareTokens: st.compareTokens,
            exactKvCache: st.exactKvCache,
            signal,
            decode: (ids) => prep.tokenizer.decode(ids, { skipSpecialTokens: true }),
            engineAnswers: async (ps) => {
              const answers = await engineAnswers(spec, format, ps)
              emit('selfTest', 'Answering with llama.cpp', true, 0.5)
              return answers
            },
          })
        } catch (err) {
          checkCancel()
          selfTest = {
            state: 'skipped',
            reason: `the app engine could not answer (${(err as Error).message})`,
            runtime: 'llama.cpp (node-llama-cpp)',
            ggufFile: ggufPath,
            templateMatches: false,
            endTokenIsEog: false,
            questions: [],
            seconds: 0,
          }
        }
        checkCancel()
        selfTest = { ...selfTest, ggufFile: `gguf/${prep.ggufFile}` }
        await writeFile(join(temp, 'SELFTEST.md'), selfTestMarkdown(selfTest))
        await writeFile(join(temp, 'selftest.json'), `${JSON.stringify(selfTest, null, 2)}\n`)
        emit('selfTest', 'Self-test done', true, 1)
      }
    }

    emit('finishing', 'Moving the export into place', true, 1)
    await writeFile(join(temp, 'README.md'), topReadme(prep, selfTest))
    checkCancel()
    if (existsSync(target)) throw new AppError('CONFLICT', `${target} appeared while exporting. Choose another name.`)
    await rename(temp, target)
    kept = true
    const files: ExportFile[] = []
    const walk = async (rel: string) => {
      const { readdir } = await import('node:fs/promises')
      for (const e of await readdir(join(target, rel), { withFileTypes: true })) {
        const p = rel ? `${rel}/${e.name}` : e.name
        if (e.isDirectory()) await walk(p)
        else files.push({ path: p, bytes: await fileSize(join(target, p)) })
      }
    }
    await walk('')
    files.sort((a, b) => a.path.localeCompare(b.path))
    bytesDone = bytesTotal
    emit('finishing', target, true, 1)
    return { folder: target, files, selfTest, seconds: (Date.now() - t0) / 1000 }
  } finally {
    await prep.close()
    if (!kept) await rm(temp, { recursive: true, force: true })
  }
}
