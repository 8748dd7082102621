// The clipboard block format of Excel / Google Sheets: parse what they copy, write what they paste.
import { describe, expect, it } from 'vitest'
import { parseClipboardTable, parseFlag, toClipboardTable } from '../../renderer/src/composables/clipboardTable'

describe('clipboard TSV', () => {
  it('reads a block copied from Excel: CRLF rows, a trailing line break, quoted multi-line cells with ""', () => {
    const excel = '請假\t"先申請\r\n再休假"\t假勤\r\n他說"好"\t"引號""裡"""\t\r\n'
    expect(parseClipboardTable(excel)).toEqual([
      ['請假', '先申請\r\n再休假', '假勤'],
      ['他說"好"', '引號"裡"', ''],
    ])
  })
  it('reads Google Sheets (LF, no trailing break), single cells and empty cells', () => {
    expect(parseClipboardTable('a\tb\nc\td')).toEqual([
      ['a', 'b'],
      ['c', 'd'],
    ])
    expect(parseClipboardTable('一個值')).toEqual([['一個值']])
    expect(parseClipboardTable('\t\n')).toEqual([['', '']])
    expect(parseClipboardTable('')).toEqual([])
    expect(parseClipboardTable('a\n\nb\n')).toEqual([['a'], [''], ['b']])
  })
  it('keeps a quote that does not wrap the whole cell', () => {
    expect(parseClipboardTable('"部分"引號\tx')).toEqual([['"部分"引號', 'x']])
  })
  it('round-trips through toClipboardTable', () => {
    const rows = [
      ['問題', '多行\n回答', 'tab\there'],
      ['"quoted"', '', '結尾'],
    ]
    expect(parseClipboardTable(toClipboardTable(rows))).toEqual(rows)
  })
  it('reads enabled flags', () => {
    expect(['TRUE', '1', '是', 'yes', '✓'].map(parseFlag)).toEqual([true, true, true, true, true])
    expect(['FALSE', '0', '否', 'no', ''].map(parseFlag)).toEqual([false, false, false, false, false])
    expect(parseFlag('maybe')).toBeNull()
  })
})
