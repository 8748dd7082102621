// First start: create the sample project from resources/sample/hr-handbook.zh-TW.csv (50 HR handbook
// Q&A pairs) so the dataset editor is never empty on day one, and make it the open project.
import Papa from 'papaparse'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Repos } from '../db/repos'
import { resourcesDir } from '../paths'
import type { SettingsStore } from '../settings/settingsStore'
import { DEFAULT_SYSTEM_PROMPT } from './defaults'

export const SAMPLE_PROJECT_NAME = '範例：員工手冊問答'
export const SAMPLE_CSV = 'sample/hr-handbook.zh-TW.csv'

export function readSampleRows(): { question: string; answer: string; category: string }[] {
  const text = readFileSync(join(resourcesDir(), SAMPLE_CSV), 'utf8')
  const parsed = Papa.parse<{ question: string; answer: string; category: string }>(text, { header: true, skipEmptyLines: true })
  return parsed.data.filter((r) => r.question && r.answer)
}

export function seedSampleProject(repos: Repos, settings: SettingsStore): number {
  const existing = repos.projects.getByName(SAMPLE_PROJECT_NAME)
  if (existing) return existing.id
  const id = repos.projects.create({ name: SAMPLE_PROJECT_NAME, language: 'zh-TW', systemPrompt: DEFAULT_SYSTEM_PROMPT['zh-TW'] })
  repos.qaPairs.appendMany(id, readSampleRows())
  settings.set({ lastProjectId: id })
  return id
}
