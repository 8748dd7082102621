// Per-text checks of the dataset editor: control-token strings and personal data patterns (Taiwan national
// ID and resident certificate numbers with their checksum, Taiwan mobile and landline numbers, e-mail
// addresses), plus the text normalisation used for duplicate detection.

/**
 * Control-token strings of common chat templates: Llama 3 (<|eot_id|>, <|start_header_id|>...), ChatML
 * (<|im_start|>), Llama 2 / Mistral ([INST], <<SYS>>, <s>), Gemma (<start_of_turn>), Phi (<|end|>).
 * A row that contains one would read to the tokenizer like the end of a turn if it were not neutralised.
 */
const CONTROL_TOKEN = /<\|[A-Za-z0-9_]{1,40}\|>|\[\/?INST\]|<<\/?SYS>>|<\/?s>|<(?:start|end)_of_turn>|<\/?(?:bos|eos|pad|unk)>/g

export function findControlTokens(text: string): string[] {
  if (text.indexOf('<') < 0 && text.indexOf('[') < 0) return []
  const found = new Set<string>()
  for (const m of text.matchAll(CONTROL_TOKEN)) found.add(m[0])
  return [...found]
}

// --- Taiwan national ID / resident certificate -----------------------------------------------

/** Letter values of the Taiwan ID checksum (A=10 ... with I, O, W-Z out of sequence). */
const LETTER_VALUE: Record<string, number> = {
  A: 10, B: 11, C: 12, D: 13, E: 14, F: 15, G: 16, H: 17, I: 34, J: 18, K: 19, L: 20, M: 21,
  N: 22, O: 35, P: 23, Q: 24, R: 25, S: 26, T: 27, U: 28, V: 29, W: 32, X: 30, Y: 31, Z: 33,
}

/**
 * True for a valid Taiwan national ID (A123456789: second digit 1/2), a new-style resident certificate
 * (second digit 8/9) or an old-style one (second character A-D), by the official checksum:
 * letter value n -> tens(n)*1 + ones(n)*9, then the 8 following digits weighted 8..1, plus the check digit.
 */
export function isValidTaiwanId(raw: string): boolean {
  const id = raw.toUpperCase()
  if (!/^[A-Z][A-D1289]\d{8}$/.test(id)) return false
  const n = LETTER_VALUE[id[0]!]!
  const second = /[A-D]/.test(id[1]!) ? LETTER_VALUE[id[1]!]! % 10 : Number(id[1])
  const digits = [second, ...id.slice(2).split('').map(Number)]
  let sum = Math.floor(n / 10) + (n % 10) * 9
  for (let i = 0; i < 8; i++) sum += digits[i]! * (8 - i)
  sum += digits[8]!
  return sum % 10 === 0
}

const ID_CANDIDATE = /(?<![A-Za-z0-9])[A-Za-z][A-Da-d1289]\d{8}(?![A-Za-z0-9])/g

export function findTaiwanIds(text: string): string[] {
  const out: string[] = []
  for (const m of text.matchAll(ID_CANDIDATE)) if (isValidTaiwanId(m[0])) out.push(m[0].toUpperCase())
  return out
}

// --- phone numbers ---------------------------------------------------------------------------

const MOBILE = /(?<![\d+])(?:\+?886[-\s]?|0)9\d{2}[-\s]?\d{3}[-\s]?\d{3}(?!\d)/g
const LANDLINE = /(?<![\d+])(?:\+?886[-\s]?\(?|\(0|0)([2-8]\d{0,2})\)?[-\s]?(\d{2,4})[-\s]?(\d{3,4})(?!\d)/g

/** Taiwan mobile (09xx-xxx-xxx, +886 9xx...) and landline numbers (02-2345-6789, (04)2345-6789, 037-123456...). */
export function findTaiwanPhones(text: string): string[] {
  if (!/\d{3}/.test(text)) return []
  const out: string[] = []
  const taken: [number, number][] = []
  for (const m of text.matchAll(MOBILE)) {
    out.push(m[0])
    taken.push([m.index, m.index + m[0].length])
  }
  for (const m of text.matchAll(LANDLINE)) {
    const start = m.index
    if (taken.some(([a, b]) => start < b && start + m[0].length > a)) continue
    const area = m[1]!
    const local = m[2]! + m[3]!
    const nsn = area + local
    // National significant numbers of landlines are 8 or 9 digits; Taipei (2) has 8-digit local numbers.
    if (nsn.length < 8 || nsn.length > 9) continue
    if (area === '2' && local.length !== 8) continue
    if (/^80[09]/.test(nsn)) continue // 0800 / 0809: toll-free and premium lines, not personal
    out.push(m[0])
  }
  return out
}

// --- e-mail ----------------------------------------------------------------------------------

const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g

export function findEmails(text: string): string[] {
  if (text.indexOf('@') < 0) return []
  return [...text.matchAll(EMAIL)].map((m) => m[0])
}

/** Shows enough of a personal-data match to find it, not the whole value. */
export function mask(value: string, kind: 'id' | 'phone' | 'email'): string {
  if (kind === 'email') {
    const at = value.indexOf('@')
    return `${value.slice(0, Math.min(2, at))}***${value.slice(at)}`
  }
  if (kind === 'id') return `${value.slice(0, 3)}*****${value.slice(-2)}`
  // Phone: keep the first 4 and the last 3 digits.
  const total = value.replace(/\D/g, '').length
  let i = 0
  return value.replace(/\d/g, (d) => (i++ >= 4 && i <= total - 3 ? '*' : d))
}

// --- normalisation for duplicates ------------------------------------------------------------

const STRIP = /[\s\p{P}\p{S}]+/gu

/** Case-, width-, whitespace- and punctuation-insensitive form of a text (NFKC, lower case). */
export function normalizeForDuplicates(text: string): string {
  return text.normalize('NFKC').toLowerCase().replace(STRIP, '')
}
