// Quality checks: each check on its own, the summary, zh-TW conversion, near duplicates at scale.
import { afterEach, describe, expect, it } from 'vitest'
import type { Project, QualityReport, RowIssue, RowsMutation } from '../../../preload/contract'
import { bigrams, findNearDuplicates, jaccard, signature } from '../../../main/datasets/quality/nearDuplicates'
import { findSimplified, toTraditionalTaiwan } from '../../../main/datasets/quality/chinese'
import { findControlTokens, findEmails, findTaiwanIds, findTaiwanPhones, isValidTaiwanId } from '../../../main/datasets/quality/textChecks'
import { tempApp, type TempApp } from '../../helpers/tempContext'
import { sampleRows, syntheticRows } from '../../fixtures/datasets/datasetFixtures'

let app: TempApp | undefined
afterEach(async () => {
  await app?.cleanup()
  app = undefined
})

async function project(language: 'zh-TW' | 'en', rows: object[]) {
  app ??= tempApp()
  const p = await app!.call<Project>('projects:create', { name: `p${Math.random()}`, language })
  const m = await app!.call<RowsMutation>('rows:insert', { projectId: p.id, rows })
  return { pid: p.id, ids: m.upserted.map((r) => r.id) }
}
const check = (pid: number) => app!.call<QualityReport>('dataset:check', { projectId: pid })
const issuesOf = (r: QualityReport, id: number): RowIssue[] => r.rows.find((x) => x.id === id)?.issues ?? []
const codes = (r: QualityReport, id: number) => issuesOf(r, id).map((i) => i.code)

describe('text checks', () => {
  it('validates Taiwan ID checksums (citizens and both resident certificate formats)', () => {
    for (const ok of ['A123456789', 'F131104093', 'a123456789', 'A800000014', 'AC01234567']) expect(isValidTaiwanId(ok), ok).toBe(true)
    for (const bad of ['A123456788', 'A323456789', 'A12345678', '1123456789', 'AE12345678']) expect(isValidTaiwanId(bad), bad).toBe(false)
    expect(findTaiwanIds('身分證 A123456789，另一個 A123456788、XA123456789')).toEqual(['A123456789'])
  })

  it('finds Taiwan mobile and landline numbers but not dates, amounts or toll-free lines', () => {
    expect(findTaiwanPhones('手機 0912-345-678 或 0912345678 或 +886 912 345 678')).toHaveLength(3)
    expect(findTaiwanPhones('市話 02-2345-6789、(04)2345-6789、037-123456、03 123 4567')).toHaveLength(4)
    for (const none of ['2026-01-01 生效', '每日 8 小時，年薪 1234567 元', '免付費 0800-123-456', '分機 1234', '02-1234', '訂單 20260115001']) {
      expect(findTaiwanPhones(none), none).toEqual([])
    }
  })

  it('finds e-mail addresses and control-token strings', () => {
    expect(findEmails('寄到 hr@example.com.tw 或 a.b+c@corp.io')).toEqual(['hr@example.com.tw', 'a.b+c@corp.io'])
    expect(findControlTokens('答案<|eot_id|>然後 <|im_start|>user [INST] x [/INST] <s>')).toEqual(['<|eot_id|>', '<|im_start|>', '[INST]', '[/INST]', '<s>'])
    expect(findControlTokens('一般的 <b>粗體</b> 與 [注意] 文字')).toEqual([])
  })

  it('finds Simplified characters without flagging Traditional text, and converts with Taiwan phrases', () => {
    for (const r of sampleRows()) for (const t of [r.question, r.answer, r.category]) expect(findSimplified(t), t).toEqual([])
    for (const t of ['皇后', '只有一個', '乾燥', '頭髮', '後來', '一隻貓', '公里']) expect(findSimplified(t), t).toEqual([])
    // 里 is a Traditional character too (公里): only the Simplified-only ones are reported.
    expect(findSimplified('请在系统里申请软件')).toEqual(['请', '统', '软'])
    expect(toTraditionalTaiwan('请在系统里申请软件')).toBe('請在系統裡申請軟體')
  })
})

describe('near duplicates', () => {
  it('verifies candidates exactly (Jaccard of character bigrams)', () => {
    const a = bigrams('abcdefghij')
    expect(jaccard(a, bigrams('abcdefghij'))).toBe(1)
    expect(jaccard(a, bigrams('abcdefghiX'))).toBeCloseTo(8 / 10)
  })

  it('finds planted near duplicates among 5,000 distinct rows, and nothing else', () => {
    const rows = syntheticRows(5000).map((r) => r.question + r.answer)
    const items = rows.map((text, i) => ({ id: i + 1, text, signature: signature(text) }))
    // 20 planted copies with one character changed near the end: Jaccard well above 0.9.
    const planted: [number, number][] = []
    for (let k = 0; k < 20; k++) {
      const src = k * 211
      const t = rows[src]!
      const text = t.slice(0, -3) + '！' + t.slice(-2)
      const id = 10_000 + k
      items.push({ id, text, signature: signature(text) })
      planted.push([src + 1, id])
    }
    const found = findNearDuplicates(items, 0.9)
    for (const [a, b] of planted) {
      expect(found.get(b)).toBe(a)
      expect(found.has(a)).toBe(true)
    }
    expect(found.size).toBe(40)
    for (const [id, other] of found) {
      const x = items.find((i) => i.id === id)!
      const y = items.find((i) => i.id === other)!
      expect(jaccard(bigrams(x.text), bigrams(y.text))).toBeGreaterThanOrEqual(0.9)
    }
  })
})

describe('dataset:check', () => {
  it('reports each issue per row, with severities, related rows and a summary', async () => {
    const long = '本公司採彈性上班制：核心時段為上午10點至下午4點，每日應出勤8小時，午休1小時。最早可於上午8點打卡上班。'
    const { pid, ids } = await project('zh-TW', [
      { question: '', answer: '沒有問題的回答' }, // 0 emptyQuestion
      { question: '沒有回答', answer: '  ' }, // 1 emptyAnswer
      { question: '上班時間？', answer: long }, // 2 duplicate of 3
      { question: '上班 時間?', answer: long }, // 3 (normalised equal)
      { question: '上班時間？', answer: '另一個答案' }, // 4 sameQuestion with 2/3
      { question: '上班的時間', answer: long }, // 5 near duplicate of 2
      { question: '可以用<|eot_id|>嗎', answer: '[INST] 不行' }, // 6 controlToken x2
      { question: '请假规定', answer: '请看员工手册' }, // 7 simplified x2
      { question: '我的身分證', answer: 'A123456789，電話 0912-345-678，信箱 amy@corp.com.tw' }, // 8 pii
      { question: '停用的重複列', answer: long, enabled: false }, // 9 disabled: not checked
      { question: '正常的問題', answer: '正常的回答，沒有任何問題。' }, // 10 clean
    ])
    const r = await check(pid)
    expect(r).toMatchObject({ projectId: pid, checkedRows: 10, disabledRows: 1, tokenLimit: { state: 'noModel' } })
    expect(codes(r, ids[0]!)).toEqual(['emptyQuestion'])
    expect(issuesOf(r, ids[0]!)[0]).toMatchObject({ severity: 'error', field: 'question' })
    expect(codes(r, ids[1]!)).toEqual(['emptyAnswer'])
    expect(issuesOf(r, ids[2]!)).toContainEqual({ code: 'duplicate', severity: 'warning', relatedId: ids[3] })
    expect(issuesOf(r, ids[3]!)).toContainEqual({ code: 'duplicate', severity: 'warning', relatedId: ids[2] })
    expect(codes(r, ids[4]!)).toContain('sameQuestion')
    expect(issuesOf(r, ids[5]!)).toContainEqual({ code: 'nearDuplicate', severity: 'warning', relatedId: ids[2] })
    expect(issuesOf(r, ids[6]!).filter((i) => i.code === 'controlToken').map((i) => [i.field, i.detail])).toEqual([
      ['question', '<|eot_id|>'],
      ['answer', '[INST]'],
    ])
    expect(issuesOf(r, ids[7]!).map((i) => [i.code, i.field, i.detail])).toEqual([
      ['simplifiedChinese', 'question', '请规'],
      ['simplifiedChinese', 'answer', '请员册'],
    ])
    expect(issuesOf(r, ids[8]!).map((i) => [i.code, i.detail])).toEqual([
      ['nationalId', 'A12*****89'],
      ['phone', '0912-***-678'],
      ['email', 'am***@corp.com.tw'],
    ])
    expect(codes(r, ids[9]!)).toEqual([])
    expect(codes(r, ids[10]!)).toEqual([])
    expect(r.errorRows).toBe(2)
    expect(r.rowsWithProblems).toBe(9)
    expect(r.warningRows).toBe(7)
    expect(r.byCode).toMatchObject({ emptyQuestion: 1, emptyAnswer: 1, duplicate: 2, simplifiedChinese: 1, nationalId: 1, phone: 1, email: 1 })
  })

  it('does not flag Simplified characters in an English project, and the sample project is clean', async () => {
    const en = await project('en', [{ question: '请假', answer: '软件' }])
    expect((await check(en.pid)).rowsWithProblems).toBe(0)
    const zh = await project('zh-TW', sampleRows())
    const r = await check(zh.pid)
    expect(r.rows.filter((x) => x.issues.some((i) => i.severity === 'error'))).toEqual([])
    expect(r.byCode.simplifiedChinese ?? 0).toBe(0)
  })

  it('converts Simplified rows to Traditional (Taiwan) per row or all at once, as one undoable step', async () => {
    const { pid, ids } = await project('zh-TW', [
      { question: '请假规定', answer: '请看员工手册', category: '假勤' },
      { question: '软件安装', answer: '找信息部门', category: '资讯' },
      { question: '已經是繁體', answer: '不用轉換' },
    ])
    const one = await app!.call<RowsMutation>('rows:convertChinese', { projectId: pid, ids: [ids[0]!] })
    expect(one.upserted.map((r) => [r.question, r.answer])).toEqual([['請假規定', '請看員工手冊']])
    const all = await app!.call<RowsMutation>('rows:convertChinese', { projectId: pid })
    expect(all.upserted.map((r) => [r.question, r.answer, r.category])).toEqual([['軟體安裝', '找資訊部門', '資訊']])
    expect(all.history.undoLabel).toBe('convert')
    expect((await check(pid)).byCode.simplifiedChinese ?? 0).toBe(0)
    await app!.call('rows:undo', { projectId: pid })
    expect((await check(pid)).byCode.simplifiedChinese).toBe(1)
    const en = await project('en', [{ question: '请假', answer: '软件' }])
    await expect(app!.call('rows:convertChinese', { projectId: en.pid })).rejects.toMatchObject({ code: 'UNSUPPORTED' })
  })

  it('re-checks after an edit: a fixed row loses its issue', async () => {
    const { pid, ids } = await project('zh-TW', [{ question: '問題', answer: '' }])
    expect((await check(pid)).errorRows).toBe(1)
    await app!.call('rows:update', { projectId: pid, changes: [{ id: ids[0]!, answer: '補上的回答' }] })
    expect((await check(pid)).rowsWithProblems).toBe(0)
  })
})
