// CSV / TSV parser (RFC 4180 with Excel's habits) that keeps the line number where each record starts, so
// the import report can say "line 12". Quoted fields may contain delimiters, "" and line breaks. A quote
// inside an unquoted field is kept as a literal character (他說"好"), as Excel reads it. Problems that make
// the file ambiguous are reported, not guessed around: a quoted field that never closes, and text after a
// closing quote.

export interface DelimitedRecord {
  /** 1-based line where the record starts. */
  line: number
  cells: string[]
}

export interface DelimitedProblem {
  code: 'badQuote'
  line: number
  detail: string
}

export interface DelimitedResult {
  records: DelimitedRecord[]
  problems: DelimitedProblem[]
}

/** Picks the delimiter of the first line (outside quotes): tab, comma or semicolon, by count. */
export function sniffDelimiter(text: string): string {
  const counts: Record<string, number> = { ',': 0, '\t': 0, ';': 0 }
  let inQuotes = false
  for (let i = 0; i < text.length && i < 65536; i++) {
    const c = text[i]!
    if (c === '"') inQuotes = !inQuotes
    else if (!inQuotes && (c === '\n' || c === '\r')) break
    else if (!inQuotes && c in counts) counts[c]!++
  }
  if (counts['\t']! > counts[',']! && counts['\t']! >= counts[';']!) return '\t'
  if (counts[';']! > counts[',']!) return ';'
  return ','
}

export function parseDelimited(text: string, delimiter: string, maxProblems = 20): DelimitedResult {
  const records: DelimitedRecord[] = []
  const problems: DelimitedProblem[] = []
  const n = text.length
  const d = delimiter.charCodeAt(0)
  const QUOTE = 34
  const CR = 13
  const LF = 10
  let i = 0
  let line = 1

  while (i < n) {
    const recordLine = line
    const cells: string[] = []
    // One record.
    for (;;) {
      let cell: string
      if (text.charCodeAt(i) === QUOTE) {
        const quoteLine = line
        i++
        let start = i
        let value = ''
        let closed = false
        while (i < n) {
          const c = text.charCodeAt(i)
          if (c === QUOTE) {
            if (text.charCodeAt(i + 1) === QUOTE) {
              value += text.slice(start, i + 1)
              i += 2
              start = i
              continue
            }
            value += text.slice(start, i)
            i++
            closed = true
            break
          }
          if (c === LF) line++
          else if (c === CR && text.charCodeAt(i + 1) !== LF) line++
          i++
        }
        if (!closed) {
          problems.push({ code: 'badQuote', line: quoteLine, detail: 'unclosed' })
          return { records, problems }
        }
        // After the closing quote: a delimiter, a line break or the end; spaces are tolerated.
        let j = i
        while (j < n && (text.charCodeAt(j) === 32 || text.charCodeAt(j) === 9) && text.charCodeAt(j) !== d) j++
        const next = text.charCodeAt(j)
        if (j < n && next !== d && next !== CR && next !== LF) {
          if (problems.length < maxProblems) problems.push({ code: 'badQuote', line, detail: 'textAfterQuote' })
          // Skip to the end of the field to keep counting lines correctly.
          while (j < n && text.charCodeAt(j) !== d && text.charCodeAt(j) !== CR && text.charCodeAt(j) !== LF) j++
        }
        i = j
        cell = value
      } else {
        const start = i
        while (i < n) {
          const c = text.charCodeAt(i)
          if (c === d || c === CR || c === LF) break
          i++
        }
        cell = text.slice(start, i)
      }
      cells.push(cell)
      const c = text.charCodeAt(i)
      if (i < n && c === d) {
        i++
        continue
      }
      // End of record: line break or end of text.
      if (c === CR) i += text.charCodeAt(i + 1) === LF ? 2 : 1
      else if (c === LF) i++
      if (i <= n) line++
      break
    }
    records.push({ line: recordLine, cells })
  }
  return { records, problems }
}
