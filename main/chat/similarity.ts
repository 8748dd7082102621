// How close an answer is to the reference answer, for the "Did it learn?" check. Chinese has no spaces between
// words, so the unit is the character: every CJK (or other non-Latin) character is one unit, a run of Latin letters
// or digits is one unit (a word or a number), and whitespace, punctuation and symbols are left out. Text is NFKC
// normalised (full-width ＡＢＣ１２３ = ABC123) and lower-cased first.
//   rougeL  ROUGE-L F1 over those units: the longest common subsequence, so order matters (the main score).
//   charF1  F1 over the bag of units (SQuAD-style token F1 on characters): order does not matter.
// Both are 0..1; two empty texts score 1, one empty text 0.

/** Longest texts compared (units); longer answers are cut (the LCS table is length x length). */
export const MAX_UNITS = 4000

const LATIN_RUN = /^[\p{Script=Latin}\p{Nd}]$/u
const SKIP = /^[\p{White_Space}\p{P}\p{S}\p{C}]$/u

export function scoreUnits(text: string): string[] {
  const norm = text.normalize('NFKC').toLowerCase()
  const out: string[] = []
  let word = ''
  for (const ch of norm) {
    if (LATIN_RUN.test(ch)) {
      word += ch
      continue
    }
    if (word) {
      out.push(word)
      word = ''
    }
    if (!SKIP.test(ch)) out.push(ch)
    if (out.length >= MAX_UNITS) return out
  }
  if (word) out.push(word)
  return out.slice(0, MAX_UNITS)
}

function f1(overlap: number, a: number, b: number): number {
  if (a === 0 && b === 0) return 1
  if (overlap === 0) return 0
  const p = overlap / a
  const r = overlap / b
  return (2 * p * r) / (p + r)
}

/** Length of the longest common subsequence (two rows of the DP table). */
export function lcsLength(a: readonly string[], b: readonly string[]): number {
  if (a.length === 0 || b.length === 0) return 0
  let prev = new Uint16Array(b.length + 1)
  let cur = new Uint16Array(b.length + 1)
  for (let i = 1; i <= a.length; i++) {
    const ai = a[i - 1]
    for (let j = 1; j <= b.length; j++) {
      cur[j] = ai === b[j - 1] ? prev[j - 1] + 1 : Math.max(prev[j], cur[j - 1])
    }
    ;[prev, cur] = [cur, prev]
  }
  return prev[b.length]
}

/** ROUGE-L F1 (beta 1) of `answer` against `reference`, on characters (see the file comment). */
export function rougeL(answer: string, reference: string): number {
  const a = scoreUnits(answer)
  const r = scoreUnits(reference)
  return f1(lcsLength(a, r), a.length, r.length)
}

/** Bag-of-characters F1 of `answer` against `reference`. */
export function charF1(answer: string, reference: string): number {
  const a = scoreUnits(answer)
  const r = scoreUnits(reference)
  const counts = new Map<string, number>()
  for (const u of r) counts.set(u, (counts.get(u) ?? 0) + 1)
  let overlap = 0
  for (const u of a) {
    const n = counts.get(u) ?? 0
    if (n > 0) {
      overlap++
      counts.set(u, n - 1)
    }
  }
  return f1(overlap, a.length, r.length)
}
