// Checks a Hugging Face model folder before it is registered, and says exactly what is wrong when it cannot be
// used: config.json (supported architecture, not pre-quantized), safetensors weights (single file or shards with
// model.safetensors.index.json; every shard present; every header parsed; names, shapes and dtypes as the config
// says), tokenizer files (loadTokenizer) and the chat template (the model's own, or which built-in fits).
// Returns the numbers the Models page shows: parameters, context length, dtype, size on disk, memory estimates.
import { existsSync } from 'node:fs'
import { readdir, readFile, stat } from 'node:fs/promises'
import { homedir } from 'node:os'
import { basename, isAbsolute, join, resolve } from 'node:path'
import type { ModelDetails, ModelTemplateChoice } from '../../preload/contract'
import { AppError } from '../errors'
import { chatFormatFor, suggestTemplates } from '../tokenizer/ChatFormat'
import { loadTokenizer } from '../tokenizer/loadTokenizer'
import type { ModelTokenizer } from '../tokenizer/ModelTokenizer'
import { estimateChatMemory, estimateTrainingMemory } from './memoryEstimate'
import { expectedTensors, parseModelConfig, type ParsedConfig } from './modelConfig'
import { modelProblem } from './modelProblem'
import { readSafetensorsHeader, type SafetensorsEntry } from './safetensors'

export interface FolderInspection {
  /** The folder actually used (a Hugging Face cache folder resolves to its snapshot). */
  path: string
  suggestedName: string
  sizeBytes: number
  details: ModelDetails
}

const WEIGHT_DTYPES = new Set(['BF16', 'F16', 'F32'])
const CONVERT_COMMAND = (dir: string): string =>
  `python -c "from transformers import AutoModelForCausalLM as M, AutoTokenizer as T; p=r'${dir}'; o=p+'-safetensors'; ` +
  `M.from_pretrained(p, torch_dtype='auto').save_pretrained(o, safe_serialization=True); T.from_pretrained(p).save_pretrained(o)"`

/** A typed path: quotes and surrounding spaces removed, ~ expanded; must be absolute. */
export function normalizeTypedPath(input: string): string {
  let p = input.trim()
  if ((p.startsWith('"') && p.endsWith('"')) || (p.startsWith("'") && p.endsWith("'"))) p = p.slice(1, -1).trim()
  if (p === '~' || p.startsWith('~/') || p.startsWith('~\\')) p = join(homedir(), p.slice(1))
  if (!isAbsolute(p)) {
    throw modelProblem('INVALID_ARGUMENT', 'relativePath', `Type the full path of the model folder (for example /home/you/models/Llama-3.2-1B-Instruct or C:\\models\\Llama-3.2-1B-Instruct), not "${input.trim()}".`, {
      path: input,
    })
  }
  return resolve(p)
}

async function listFolder(dir: string): Promise<{ files: Map<string, number>; dirs: string[] }> {
  const files = new Map<string, number>()
  const dirs: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const full = join(dir, e.name)
    let s
    try {
      s = await stat(full) // follows symlinks (Hugging Face cache snapshots link into blobs/)
    } catch {
      continue // a dangling link
    }
    if (s.isFile()) files.set(e.name, s.size)
    else if (s.isDirectory()) dirs.push(e.name)
  }
  return { files, dirs }
}

/** Bytes of every file under dir (symlinks followed, at most `depth` levels). */
export async function folderSize(dir: string, depth = 4): Promise<number> {
  let total = 0
  let entries
  try {
    entries = await readdir(dir, { withFileTypes: true })
  } catch {
    return 0
  }
  for (const e of entries) {
    const full = join(dir, e.name)
    try {
      const s = await stat(full)
      if (s.isFile()) total += s.size
      else if (s.isDirectory() && depth > 0) total += await folderSize(full, depth - 1)
    } catch {
      /* dangling link */
    }
  }
  return total
}

/** A Hugging Face cache folder (models--org--name) resolves to the snapshot refs/main points at. */
async function resolveCacheLayout(dir: string): Promise<string> {
  const snapshots = join(dir, 'snapshots')
  if (!existsSync(snapshots)) return dir
  try {
    const ref = (await readFile(join(dir, 'refs', 'main'), 'utf8')).trim()
    if (ref && existsSync(join(snapshots, ref, 'config.json'))) return join(snapshots, ref)
  } catch {
    /* no refs/main */
  }
  const subs = (await readdir(snapshots, { withFileTypes: true })).filter((e) => e.isDirectory())
  return subs.length === 1 ? join(snapshots, subs[0].name) : dir
}

function suggestedNameFor(dir: string, cfg: ParsedConfig): string {
  const cache = /(?:^|[\\/])models--([^\\/]+?)--([^\\/]+?)(?:[\\/]snapshots[\\/][^\\/]+)?$/.exec(dir)
  if (cache) return `${cache[1]}/${cache[2]}`
  if (cfg.nameOrPath && /^[\w.-]+\/[\w.-]+$/.test(cfg.nameOrPath)) return cfg.nameOrPath
  return basename(dir)
}

interface WeightsReport {
  files: string[]
  bytes: number
  parameters: number
  dtype: string
}

async function checkWeights(dir: string, files: Map<string, number>, cfg: ParsedConfig): Promise<WeightsReport> {
  const names = [...files.keys()]
  const indexName = 'model.safetensors.index.json'
  let shardOf = new Map<string, string>() // tensor -> file (from the index)
  let weightFiles: string[]
  if (files.has(indexName)) {
    let index: { weight_map?: Record<string, unknown> }
    try {
      index = JSON.parse(await readFile(join(dir, indexName), 'utf8')) as typeof index
    } catch (err) {
      throw modelProblem('INVALID_ARGUMENT', 'badWeights', `${indexName} in ${dir} is not valid JSON (${(err as Error).message}). Download the model again.`, { file: indexName })
    }
    if (!index.weight_map || typeof index.weight_map !== 'object') {
      throw modelProblem('INVALID_ARGUMENT', 'badWeights', `${indexName} in ${dir} has no "weight_map". Download the model again.`, { file: indexName })
    }
    shardOf = new Map(Object.entries(index.weight_map).filter((e): e is [string, string] => typeof e[1] === 'string'))
    weightFiles = [...new Set(shardOf.values())].sort()
    const missing = weightFiles.filter((f) => !files.has(f))
    if (missing.length > 0) {
      throw modelProblem(
        'NOT_FOUND',
        'missingShards',
        `The model is split into ${weightFiles.length} weight files, but ${missing.length} ${missing.length === 1 ? 'is' : 'are'} missing from ${dir}: ${missing.join(', ')}. The download or copy is incomplete: copy or download the missing file${missing.length === 1 ? '' : 's'} into the folder, then import again.`,
        { missing, total: weightFiles.length },
      )
    }
  } else if (files.has('model.safetensors')) {
    weightFiles = ['model.safetensors']
  } else {
    weightFiles = names.filter((n) => n.endsWith('.safetensors') && !n.startsWith('adapter_')).sort()
  }
  if (weightFiles.length === 0) {
    const bins = names.filter((n) => /\.(bin|pth|pt)$/.test(n) && !/^(training_args|optimizer|scheduler|rng_state)/.test(n))
    const ggufs = names.filter((n) => n.endsWith('.gguf'))
    if (bins.length > 0) {
      throw modelProblem(
        'UNSUPPORTED',
        'binOnly',
        `The weights in ${dir} are PyTorch checkpoints (${bins.slice(0, 3).join(', ')}${bins.length > 3 ? ', …' : ''}), which QA Tuner does not read (they can run code when loaded). ` +
          `Convert them to safetensors with Python and transformers:\n${CONVERT_COMMAND(dir)}\nthen import the folder ${dir}-safetensors. Or download the model from the Hugging Face Hub here: most repos also have .safetensors files.`,
        { files: bins, command: CONVERT_COMMAND(dir), output: `${dir}-safetensors` },
      )
    }
    if (ggufs.length > 0) throw ggufProblem(join(dir, ggufs[0]))
    throw modelProblem('NOT_FOUND', 'noWeights', `${dir} has a config.json but no weight files (*.safetensors). Copy or download the whole model folder.`, { dir })
  }

  const headers = new Map<string, SafetensorsEntry & { file: string }>()
  let bytes = 0
  for (const f of weightFiles) {
    bytes += files.get(f) ?? 0
    let h
    try {
      h = await readSafetensorsHeader(join(dir, f))
    } catch (err) {
      throw modelProblem('INVALID_ARGUMENT', 'badWeights', `The weight file ${f} cannot be read: ${(err as Error).message} Download or copy that file again.`, { file: f })
    }
    for (const t of h.tensors) headers.set(t.name, { ...t, file: f })
  }
  for (const [tensor, file] of shardOf) {
    const found = headers.get(tensor)
    if (!found || found.file !== file) {
      throw modelProblem('INVALID_ARGUMENT', 'badWeights', `${indexName} says ${tensor} is in ${file}, but that file does not contain it: the shards do not belong together. Download the model again.`, { tensor, file })
    }
  }
  const expected = expectedTensors(cfg)
  const problems: string[] = []
  for (const [name, shape] of expected) {
    const t = headers.get(name)
    if (!t) problems.push(`${name} is missing`)
    else if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) problems.push(`${name} has shape [${t.shape}], config.json says [${shape}]`)
    if (problems.length >= 3) break
  }
  if (problems.length > 0) {
    throw modelProblem('INVALID_ARGUMENT', 'badWeights', `The weights in ${dir} do not match its config.json (${cfg.architecture}): ${problems.join('; ')}. The folder mixes files of different models, or is incomplete: download the model again.`, {
      problems,
    })
  }
  let parameters = 0
  const dtypeCount = new Map<string, number>()
  for (const t of headers.values()) {
    if (!expected.has(t.name) && !t.name.startsWith('model.') && t.name !== 'lm_head.weight') continue
    const n = t.shape.reduce((a, b) => a * b, 1)
    parameters += n
    dtypeCount.set(t.dtype, (dtypeCount.get(t.dtype) ?? 0) + n)
    if (expected.has(t.name) && !WEIGHT_DTYPES.has(t.dtype)) {
      throw modelProblem(
        'UNSUPPORTED',
        'unsupportedDtype',
        `${t.name} is stored as ${t.dtype}; QA Tuner reads BF16, F16 and F32 weights. This looks like a pre-quantized or FP8 checkpoint: import the original 16-bit model instead.`,
        { tensor: t.name, dtype: t.dtype },
      )
    }
  }
  const dtype = [...dtypeCount.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'BF16'
  return { files: weightFiles, bytes, parameters, dtype }
}

function ggufProblem(file: string): AppError {
  return modelProblem(
    'UNSUPPORTED',
    'gguf',
    `${file} is a GGUF file: a llama.cpp/Ollama format that is already quantized for inference and cannot be fine-tuned here. Import the original Hugging Face folder instead (config.json, tokenizer.json, *.safetensors), or download it from the Hub on this page.`,
    { file },
  )
}

interface TemplateReport {
  modelTemplateFile: string | null
  modelTemplateUsable: boolean
  suggested: ('llama3' | 'chatml')[]
  choice: ModelTemplateChoice | null
  warnings: string[]
}

/** Which chat template fits: the model's own when usable, else the first built-in the tokenizer supports. */
export function templateReport(tok: ModelTokenizer): TemplateReport {
  const warnings: string[] = []
  let usable = false
  if (tok.defaultChatTemplate !== null) {
    try {
      warnings.push(...chatFormatFor(tok, 'model').warnings)
      usable = true
    } catch (err) {
      warnings.push(err instanceof Error ? err.message : String(err))
    }
  }
  const suggested = suggestTemplates(tok).filter((name) => {
    try {
      chatFormatFor(tok, name)
      return true
    } catch {
      return false
    }
  })
  return { modelTemplateFile: tok.templateFile, modelTemplateUsable: usable, suggested, choice: usable ? 'model' : (suggested[0] ?? null), warnings }
}

async function checkTokenizer(dir: string, files: Map<string, number>, cfg: ParsedConfig): Promise<{ tok: ModelTokenizer }> {
  const missing = ['tokenizer.json', 'tokenizer_config.json'].filter((f) => !files.has(f))
  if (missing.length > 0) {
    const spm = files.has('tokenizer.model')
    throw modelProblem(
      'NOT_FOUND',
      'noTokenizer',
      `${dir} has no ${missing.join(' and ')}.` +
        (spm
          ? ' It only has tokenizer.model (SentencePiece); QA Tuner needs the "fast" tokenizer files. Create them with: python -c "from transformers import AutoTokenizer; AutoTokenizer.from_pretrained(r\'' + dir + '\').save_pretrained(r\'' + dir + '\')"'
          : ' Copy the tokenizer files of the same model (tokenizer.json, tokenizer_config.json) into the folder, or download the model from the Hub here.'),
      { missing },
    )
  }
  let tok: ModelTokenizer
  try {
    tok = await loadTokenizer(dir)
  } catch (err) {
    throw modelProblem('INVALID_ARGUMENT', 'badTokenizer', err instanceof Error ? err.message : String(err), { dir })
  }
  if (tok.vocabSize > cfg.vocabSize) {
    throw modelProblem(
      'INVALID_ARGUMENT',
      'vocabMismatch',
      `The tokenizer in ${dir} has ${tok.vocabSize} tokens but the model only ${cfg.vocabSize}: the tokenizer belongs to another model. Copy the tokenizer files of this model into the folder.`,
      { tokenizer: tok.vocabSize, model: cfg.vocabSize },
    )
  }
  return { tok }
}

/** Everything about a model folder, or an AppError whose details.problem says what is wrong. */
export async function inspectModelFolder(inputPath: string): Promise<FolderInspection> {
  const typed = normalizeTypedPath(inputPath)
  let s
  try {
    s = await stat(typed)
  } catch {
    throw modelProblem('NOT_FOUND', 'notFound', `${typed} does not exist. Check the path (on a server, it is a path on the machine that runs QA Tuner).`, { path: typed })
  }
  if (s.isFile()) {
    if (typed.toLowerCase().endsWith('.gguf')) throw ggufProblem(typed)
    throw modelProblem('INVALID_ARGUMENT', 'notFolder', `${typed} is a file. Choose the folder that holds config.json, the tokenizer files and the *.safetensors weights.`, { path: typed })
  }
  const dir = await resolveCacheLayout(typed)
  let listing
  try {
    listing = await listFolder(dir)
  } catch (err) {
    throw new AppError('FORBIDDEN', `${dir} cannot be read (${(err as Error).message}). Check the folder's permissions.`, { problem: 'notFound', path: dir })
  }
  const { files, dirs } = listing
  if (!files.has('config.json')) {
    const gguf = [...files.keys()].find((n) => n.toLowerCase().endsWith('.gguf'))
    if (gguf) throw ggufProblem(join(dir, gguf))
    const inner = dirs.find((d) => existsSync(join(dir, d, 'config.json')))
    throw modelProblem(
      'NOT_FOUND',
      'noConfig',
      inner
        ? `${dir} has no config.json, but its subfolder ${inner} does: import ${join(dir, inner)} instead.`
        : `${dir} has no config.json, so it is not a Hugging Face model folder. Choose the folder that holds config.json, the tokenizer files and the *.safetensors weights.`,
      { path: dir, subfolder: inner ? join(dir, inner) : null },
    )
  }
  let rawConfig: unknown
  try {
    rawConfig = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'))
  } catch (err) {
    throw modelProblem('INVALID_ARGUMENT', 'badConfig', `config.json in ${dir} is not valid JSON (${(err as Error).message}). Download the model again.`, { dir })
  }
  const cfg = parseModelConfig(rawConfig, dir)
  const weights = await checkWeights(dir, files, cfg)
  const { tok } = await checkTokenizer(dir, files, cfg)
  const template = templateReport(tok)
  const details: ModelDetails = {
    architecture: cfg.architecture,
    family: cfg.family,
    parameters: weights.parameters,
    contextLength: cfg.maxPosition,
    dtype: weights.dtype,
    hiddenSize: cfg.hiddenSize,
    numLayers: cfg.numLayers,
    numHeads: cfg.numHeads,
    numKvHeads: cfg.numKvHeads,
    intermediateSize: cfg.intermediateSize,
    vocabSize: cfg.vocabSize,
    tieEmbeddings: cfg.tieEmbeddings,
    ropeScaling: cfg.ropeScaling,
    weightFiles: weights.files,
    weightBytes: weights.bytes,
    tokenizer: { vocabSize: tok.vocabSize, bos: tok.bos?.text ?? null, eos: tok.eos?.text ?? null },
    template,
    memory: { training: estimateTrainingMemory(cfg), chat: estimateChatMemory(cfg) },
  }
  return { path: dir, suggestedName: suggestedNameFor(dir, cfg), sizeBytes: await folderSize(dir), details }
}
