import { describe, expect, it } from 'vitest'
import type { Project, QaPair, Settings } from '../../preload/contract'
import { SAMPLE_PROJECT_NAME } from '../../main/projects/seedSampleProject'
import { tempApp } from '../helpers/tempContext'

describe('projects', () => {
  it('seeds the 50-row zh-TW sample project on first start and opens it', async () => {
    const app = tempApp({ seed: true })
    try {
      const [sample] = await app.call<Project[]>('projects:list')
      expect(sample).toMatchObject({ name: SAMPLE_PROJECT_NAME, language: 'zh-TW', systemPrompt: '你是一個zh-tw版本的聊天機器人', rowCount: 50 })
      const rows = await app.call<QaPair[]>('rows:list', { projectId: sample!.id })
      expect(rows).toHaveLength(50)
      expect(rows.every((r) => r.question.length > 0 && r.answer.length > 0 && r.category.length > 0)).toBe(true)
      expect((await app.call<Settings>('settings:get')).lastProjectId).toBe(sample!.id)
    } finally {
      await app.cleanup()
    }
  })

  it('creates, renames, refuses duplicates, deletes, and emits change events', async () => {
    const app = tempApp()
    const events: [string, unknown][] = []
    app.ctx.events.onAny((e, p) => events.push([e, p]))
    try {
      const p = await app.call<Project>('projects:create', { name: '  人資FAQ  ' })
      expect(p.name).toBe('人資FAQ')
      expect(p.systemPrompt).toBe('你是一個zh-tw版本的聊天機器人')
      const en = await app.call<Project>('projects:create', { name: 'Support', language: 'en' })
      expect(en.systemPrompt).not.toContain('zh-tw')
      await expect(app.call('projects:create', { name: '人資faq' })).rejects.toMatchObject({ code: 'CONFLICT' })
      await expect(app.call('projects:rename', { id: en.id, name: '人資FAQ' })).rejects.toMatchObject({ code: 'CONFLICT' })
      const renamed = await app.call<Project>('projects:rename', { id: p.id, name: 'HR 2026' })
      expect(renamed.name).toBe('HR 2026')
      await app.call('projects:delete', { id: p.id })
      await expect(app.call('projects:get', { id: p.id })).rejects.toMatchObject({ code: 'NOT_FOUND' })
      expect((await app.call<Project[]>('projects:list')).map((x) => x.name)).toEqual(['Support'])
      expect(events.filter(([e]) => e === 'projects:changed').length).toBe(4)
    } finally {
      await app.cleanup()
    }
  })

  it('persists across a restart of the context (same data directory)', async () => {
    const first = tempApp()
    await first.call('projects:create', { name: 'Persist me' })
    await first.ctx.close()
    const second = tempApp({ dataDir: first.dataDir })
    try {
      expect((await second.call<Project[]>('projects:list')).map((p) => p.name)).toEqual(['Persist me'])
    } finally {
      await second.cleanup()
    }
  })
})
