// The clipboard format Excel, Google Sheets and LibreOffice put on the clipboard for a block of cells:
// tab-separated values, rows ended by \r\n or \n, cells with tabs, line breaks or quotes wrapped in quotes
// with "" for a quote. parseClipboardTable reads it; toClipboardTable writes it (what Excel reads back).

/** A quoted cell starting at i: its value and the index after the closing quote, or null if it is not one. */
function readQuoted(text: string, i: number, end: number): { value: string; next: number } | null {
  let j = i + 1
  let value = ''
  while (j < end) {
    const c = text[j]
    if (c === '"') {
      if (j + 1 < end && text[j + 1] === '"') {
        value += '"'
        j += 2
        continue
      }
      const after = j + 1
      if (after >= end || text[after] === '\t' || text[after] === '\n' || text[after] === '\r') return { value, next: after }
      return null
    }
    value += c
    j++
  }
  return null
}

export function parseClipboardTable(text: string): string[][] {
  if (text === '') return []
  // One trailing line break ends the last row; it is not an empty extra row.
  let end = text.length
  if (text.endsWith('\r\n')) end -= 2
  else if (text.endsWith('\n') || text.endsWith('\r')) end -= 1
  const rows: string[][] = []
  let row: string[] = []
  let i = 0
  for (;;) {
    let cell: string
    const quoted = text[i] === '"' ? readQuoted(text, i, end) : null
    if (quoted) {
      cell = quoted.value
      i = quoted.next
    } else {
      const start = i
      while (i < end && text[i] !== '\t' && text[i] !== '\n' && text[i] !== '\r') i++
      cell = text.slice(start, i)
    }
    row.push(cell)
    if (i >= end) {
      rows.push(row)
      return rows
    }
    if (text[i] === '\t') {
      i++
      continue
    }
    i += text[i] === '\r' && text[i + 1] === '\n' ? 2 : 1
    rows.push(row)
    row = []
  }
}

function quote(cell: string): string {
  return /[\t\n\r"]/.test(cell) ? `"${cell.replace(/"/g, '""')}"` : cell
}

export function toClipboardTable(rows: string[][]): string {
  return rows.map((r) => r.map(quote).join('\t')).join('\r\n') + '\r\n'
}

/** TRUE/FALSE, 1/0, yes/no, 是/否, ✓... -> boolean; null when the text is not a recognisable flag. */
export function parseFlag(text: string): boolean | null {
  const v = text.trim().toLowerCase()
  if (['true', '1', 'yes', 'y', 'v', '✓', '✔', '是', '啟用', '启用', 'on'].includes(v)) return true
  if (['false', '0', 'no', 'n', 'x', '✗', '否', '停用', 'off', ''].includes(v)) return false
  return null
}
