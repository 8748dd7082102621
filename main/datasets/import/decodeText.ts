// Bytes of a text file -> string, with the encoding detected: BOMs (UTF-8, UTF-16), strict UTF-8, then the
// two Chinese double-byte encodings Taiwan and mainland Excel save CSV in: Big5 (CP950) and GBK (CP936).
//
// Big5 vs GBK: both use lead bytes 0x81-0xFE, so text in one usually decodes without error in the other,
// as nonsense. Each decoding is scored by the share of its Chinese characters that belong to that encoding's
// own "frequently used" block: Big5 A440-C67E (5,401 常用字) and GB2312 B0A1-F7FE (6,763 hanzi). Real text
// scores near 1 in its own encoding and about 0.5 in the other. chardet breaks ties.
import chardet from 'chardet'

export type DetectedEncoding = 'utf-8' | 'utf-8-bom' | 'utf-16le' | 'utf-16be' | 'big5' | 'gbk' | string

export interface DecodedText {
  text: string
  encoding: DetectedEncoding
}

/** Human-readable name of an encoding for the import report. */
export function encodingLabel(e: DetectedEncoding): string {
  const names: Record<string, string> = {
    'utf-8': 'UTF-8',
    'utf-8-bom': 'UTF-8 (BOM)',
    'utf-16le': 'UTF-16 LE',
    'utf-16be': 'UTF-16 BE',
    big5: 'Big5',
    gbk: 'GBK',
  }
  return names[e] ?? e
}

let big5Common: Set<string> | null = null
let gbCommon: Set<string> | null = null

function blockChars(encoding: string, leadLo: number, leadHi: number, trails: [number, number][], last: number): Set<string> {
  const dec = new TextDecoder(encoding)
  const set = new Set<string>()
  for (let lead = leadLo; lead <= leadHi; lead++) {
    for (const [lo, hi] of trails) {
      for (let trail = lo; trail <= hi; trail++) {
        if (lead * 256 + trail > last) continue
        const ch = dec.decode(Uint8Array.of(lead, trail))
        if (ch.length === 1 && ch !== '\ufffd') set.add(ch)
      }
    }
  }
  return set
}

function commonSets(): { big5: Set<string>; gb: Set<string> } {
  big5Common ??= blockChars('big5', 0xa4, 0xc6, [[0x40, 0x7e], [0xa1, 0xfe]], 0xc67e)
  gbCommon ??= blockChars('gbk', 0xb0, 0xf7, [[0xa1, 0xfe]], 0xf7fe)
  return { big5: big5Common, gb: gbCommon }
}

const HAN = /\p{Script=Han}/u

/** Share of the Han characters of `text` that are in `common` (0 when it has none). */
function score(text: string, common: Set<string>): { share: number; han: number } {
  let han = 0
  let hit = 0
  for (const ch of text) {
    if (!HAN.test(ch)) continue
    han++
    if (common.has(ch)) hit++
  }
  return { share: han ? hit / han : 0, han }
}

function tryDecode(bytes: Uint8Array, encoding: string, fatal: boolean): string | null {
  try {
    return new TextDecoder(encoding, { fatal }).decode(bytes)
  } catch {
    return null
  }
}

/** Decodes with a given encoding ('auto' or undefined: detect). Never throws; invalid bytes become U+FFFD. */
export function decodeText(bytes: Uint8Array, forced?: string): DecodedText {
  const hasBom8 = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf
  if (forced && forced !== 'auto') {
    const body = forced === 'utf-8' && hasBom8 ? bytes.subarray(3) : bytes
    const text = tryDecode(body, forced, false) ?? ''
    return { text: text.replace(/^\ufeff/, ''), encoding: forced === 'utf-8' && hasBom8 ? 'utf-8-bom' : forced }
  }
  if (hasBom8) return { text: new TextDecoder('utf-8').decode(bytes.subarray(3)), encoding: 'utf-8-bom' }
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return { text: new TextDecoder('utf-16le').decode(bytes.subarray(2)), encoding: 'utf-16le' }
  if (bytes[0] === 0xfe && bytes[1] === 0xff) return { text: new TextDecoder('utf-16be').decode(bytes.subarray(2)), encoding: 'utf-16be' }
  const utf16 = sniffUtf16(bytes)
  if (utf16) return { text: new TextDecoder(utf16).decode(bytes), encoding: utf16 }

  const utf8 = tryDecode(bytes, 'utf-8', true)
  if (utf8 !== null) return { text: utf8, encoding: 'utf-8' }

  const big5 = tryDecode(bytes, 'big5', true)
  const gbk = tryDecode(bytes, 'gbk', true)
  if (big5 !== null && gbk === null) return { text: big5, encoding: 'big5' }
  if (gbk !== null && big5 === null) return { text: gbk, encoding: 'gbk' }
  if (big5 !== null && gbk !== null) {
    const sets = commonSets()
    const sb = score(big5, sets.big5)
    const sg = score(gbk, sets.gb)
    if (Math.abs(sb.share - sg.share) > 0.05) return sb.share > sg.share ? { text: big5, encoding: 'big5' } : { text: gbk, encoding: 'gbk' }
    const guess = (chardet.detect(bytes) ?? '').toLowerCase()
    if (guess.startsWith('gb')) return { text: gbk, encoding: 'gbk' }
    return { text: big5, encoding: 'big5' }
  }
  // Neither is clean: take chardet's guess when this runtime can decode it, else the lenient decoding with
  // fewer replacement characters.
  const guess = chardet.detect(bytes)
  if (guess) {
    const text = tryDecode(bytes, guess, false)
    if (text !== null) return { text, encoding: guess.toLowerCase() }
  }
  const candidates = ['utf-8', 'big5', 'gbk'].map((e) => ({ e, text: new TextDecoder(e).decode(bytes) }))
  const bad = (s: string) => s.split('\ufffd').length
  candidates.sort((a, b) => bad(a.text) - bad(b.text))
  return { text: candidates[0]!.text, encoding: candidates[0]!.e }
}

/** UTF-16 without a BOM: many zero bytes on one side of the pairs (ASCII-range text). */
function sniffUtf16(bytes: Uint8Array): 'utf-16le' | 'utf-16be' | null {
  const n = Math.min(bytes.length, 4096) & ~1
  if (n < 4) return null
  let evenZero = 0
  let oddZero = 0
  for (let i = 0; i < n; i += 2) {
    if (bytes[i] === 0) evenZero++
    if (bytes[i + 1] === 0) oddZero++
  }
  const pairs = n / 2
  if (oddZero > pairs * 0.3 && evenZero < pairs * 0.05) return 'utf-16le'
  if (evenZero > pairs * 0.3 && oddZero < pairs * 0.05) return 'utf-16be'
  return null
}
