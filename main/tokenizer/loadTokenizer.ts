// loadTokenizer(dir): reads a model folder's tokenizer files, with clear errors for missing or broken files, and
// caches the result per folder (the Llama 3 tokenizer takes about a second to build). The cache entry is reused
// while the files' size and modification time stay the same.
import { readFile, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { AppError } from '../errors'
import { ModelTokenizer, parseChatTemplates, type NamedChatTemplate, type TemplateFile } from './ModelTokenizer'

const FIX = 'Download the model again (all files), or pick a folder that has tokenizer.json and tokenizer_config.json.'

async function fileKey(path: string): Promise<string | null> {
  try {
    const s = await stat(path)
    return `${s.size}:${s.mtimeMs}`
  } catch {
    return null
  }
}

async function readJson(dir: string, name: string, required: boolean): Promise<unknown> {
  const path = join(dir, name)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' && !required) return null
    if (code === 'ENOENT') throw new AppError('NOT_FOUND', `The model folder ${dir} has no ${name}. ${FIX}`, { file: name, dir })
    throw new AppError('FORBIDDEN', `${name} in ${dir} cannot be read (${(err as Error).message}). Check the folder's permissions.`, { file: name, dir })
  }
  try {
    return JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text)
  } catch (err) {
    throw new AppError(
      'INVALID_ARGUMENT',
      `${name} in ${dir} is not valid JSON (${(err as Error).message}). The download may be incomplete: ${required ? FIX : `delete ${name} or download the model again.`}`,
      { file: name, dir },
    )
  }
}

/** A chat template saved beside the config (transformers >= 4.43 writes chat_template.jinja). */
async function readSeparateTemplate(dir: string): Promise<{ file: TemplateFile; templates: NamedChatTemplate[] } | null> {
  try {
    const text = await readFile(join(dir, 'chat_template.jinja'), 'utf8')
    if (text.trim()) return { file: 'chat_template.jinja', templates: [{ name: 'default', template: text }] }
  } catch {
    /* not there */
  }
  const json = await readJson(dir, 'chat_template.json', false)
  if (json && typeof json === 'object' && 'chat_template' in json) {
    return { file: 'chat_template.json', templates: parseChatTemplates((json as { chat_template: unknown }).chat_template, 'chat_template.json') }
  }
  return null
}

interface CacheEntry {
  key: string
  tokenizer: Promise<ModelTokenizer>
}

const cache = new Map<string, CacheEntry>()
const MAX_CACHED = 4
const FILES = ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'chat_template.jinja', 'chat_template.json']

async function build(dir: string): Promise<ModelTokenizer> {
  // Read side by side, but report problems in file order (Promise.all would report whichever read failed first, so
  // a folder missing both files got either message), and name both required files when both are missing.
  const settled = await Promise.allSettled([
    readJson(dir, 'tokenizer.json', true),
    readJson(dir, 'tokenizer_config.json', true),
    readJson(dir, 'generation_config.json', false),
  ])
  const failures = settled.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []))
  const missing = failures.filter((e) => e instanceof AppError && e.code === 'NOT_FOUND')
  if (missing.length === 2) {
    throw new AppError('NOT_FOUND', `The model folder ${dir} has no tokenizer.json or tokenizer_config.json. ${FIX}`, { file: 'tokenizer.json', dir })
  }
  if (failures.length > 0) throw failures[0]
  const [tokenizerJson, tokenizerConfig, generationConfig] = settled.map((r) => (r.status === 'fulfilled' ? r.value : null))
  const separateTemplate = await readSeparateTemplate(dir)
  return new ModelTokenizer(dir, { tokenizerJson, tokenizerConfig, generationConfig, separateTemplate })
}

/** The tokenizer of a model folder (cached per folder while its files are unchanged). */
export async function loadTokenizer(modelDir: string): Promise<ModelTokenizer> {
  const dir = resolve(modelDir)
  const key = (await Promise.all(FILES.map((f) => fileKey(join(dir, f))))).join('|')
  const hit = cache.get(dir)
  if (hit && hit.key === key) {
    cache.delete(dir)
    cache.set(dir, hit) // most recently used last
    return hit.tokenizer
  }
  const tokenizer = build(dir)
  cache.set(dir, { key, tokenizer })
  tokenizer.catch(() => {
    if (cache.get(dir)?.tokenizer === tokenizer) cache.delete(dir)
  })
  while (cache.size > MAX_CACHED) cache.delete(cache.keys().next().value as string)
  return tokenizer
}

/** Drops cached tokenizers (all, or one folder's). */
export function clearTokenizerCache(modelDir?: string): void {
  if (modelDir === undefined) cache.clear()
  else cache.delete(resolve(modelDir))
}
