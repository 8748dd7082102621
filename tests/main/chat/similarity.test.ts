// Similarity scores of the "Did it learn?" check: character units for Chinese, words for Latin text, punctuation
// and width differences ignored; ROUGE-L cares about order, bag F1 does not; hand-computed values.
import { describe, expect, it } from 'vitest'
import { spreadSample } from '../../../main/chat/LearnCheckService'
import { charF1, lcsLength, rougeL, scoreUnits } from '../../../main/chat/similarity'

describe('scoreUnits', () => {
  it('one unit per CJK character, one per Latin word or number; no spaces, punctuation or symbols; NFKC + lower case', () => {
    expect(scoreUnits('年假有７天。')).toEqual(['年', '假', '有', '7', '天'])
    expect(scoreUnits('請登入 HR 系統，填寫 Leave Form！')).toEqual(['請', '登', '入', 'hr', '系', '統', '填', '寫', 'leave', 'form'])
    expect(scoreUnits('ＡＢＣ１２３ abc123')).toEqual(['abc123', 'abc123'])
    expect(scoreUnits('  \n\t…「」😀 ')).toEqual([])
  })
})

describe('rougeL and charF1', () => {
  it('identical answers score 1 whatever the punctuation and spacing', () => {
    expect(rougeL('到職滿一年有七天年假。', '到職滿一年，有七天年假')).toBe(1)
    expect(charF1('到職滿一年有七天年假。', '到 職 滿 一 年 有 七 天 年 假')).toBe(1)
  })

  it('unrelated answers score 0; two empty answers 1; one empty 0', () => {
    expect(rougeL('薪水五日發', '婚假八天')).toBe(0)
    expect(charF1('薪水五日發', '婚假八天')).toBe(0)
    expect(rougeL('', '')).toBe(1)
    expect(rougeL('', '年假')).toBe(0)
    expect(charF1('年假', '')).toBe(0)
  })

  it('hand-computed partial matches', () => {
    // answer 年假七天 (4), reference 到職滿一年有七天年假 (10): LCS 年..七天 = 3 (年,七,天) -> P 3/4, R 3/10, F = 2PR/(P+R)
    const p = 3 / 4
    const r = 3 / 10
    expect(lcsLength(scoreUnits('年假七天'), scoreUnits('到職滿一年有七天年假'))).toBe(3)
    expect(rougeL('年假七天', '到職滿一年有七天年假')).toBeCloseTo((2 * p * r) / (p + r), 12)
    // bag: 年 x1 (answer has 1, reference 2), 假, 七, 天 -> overlap 4 -> P 1, R 0.4
    expect(charF1('年假七天', '到職滿一年有七天年假')).toBeCloseTo((2 * 1 * 0.4) / 1.4, 12)
  })

  it('order matters to ROUGE-L, not to the bag F1', () => {
    expect(charF1('天七假年', '年假七天')).toBe(1)
    expect(rougeL('天七假年', '年假七天')).toBe(0.25)
  })

  it('is symmetric in F1 and bounded', () => {
    const a = '每月五日發放上月薪資，遇假日提前。'
    const b = '薪資每月五日發放。'
    expect(rougeL(a, b)).toBeCloseTo(rougeL(b, a), 12)
    expect(rougeL(a, b)).toBeGreaterThan(0)
    expect(rougeL(a, b)).toBeLessThan(1)
  })
})

describe('spreadSample', () => {
  it('takes everything from short lists and spreads evenly over long ones, deterministically', () => {
    expect(spreadSample([1, 2, 3], 10)).toEqual([1, 2, 3])
    const list = Array.from({ length: 100 }, (_, i) => i)
    expect(spreadSample(list, 4)).toEqual([0, 25, 50, 75])
    expect(spreadSample(list, 0)).toEqual([])
  })
})
