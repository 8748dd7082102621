// Simplified Chinese in a zh-TW project: detection and one-click conversion with OpenCC (opencc-js).
//
// A character is reported as Simplified when OpenCC's Simplified -> Traditional (Taiwan) conversion changes
// it AND it is not a Traditional character itself, i.e. not in Big5 (the Traditional character set of
// Taiwan, read from this runtime's big5 decoder). That keeps characters both scripts share (台, 里, 后, 只,
// 干, 面...) from being flagged, which a plain "does s2tw change the text" test would do (新台幣 -> 新臺幣).
// The fix uses `cn -> twp` (OpenCC s2twp: also Taiwan vocabulary, 软件 -> 軟體).
import OpenCC from 'opencc-js'

type Convert = (text: string) => string

let toTwp: Convert | null = null
let simplifiedOnly: Set<string> | null = null

function big5Hanzi(): Set<string> {
  const dec = new TextDecoder('big5')
  const set = new Set<string>()
  // Standard Big5 (and ETEN) lead bytes; the HKSCS extension (0x81-0xA0) is left out.
  for (let lead = 0xa4; lead <= 0xf9; lead++) {
    for (const [lo, hi] of [
      [0x40, 0x7e],
      [0xa1, 0xfe],
    ] as const) {
      for (let trail = lo; trail <= hi; trail++) {
        const ch = dec.decode(Uint8Array.of(lead, trail))
        if (ch.length === 1 && ch !== '\ufffd') set.add(ch)
      }
    }
  }
  return set
}

function simplifiedSet(): Set<string> {
  if (!simplifiedOnly) {
    const toTw = OpenCC.Converter({ from: 'cn', to: 'tw' })
    const traditional = big5Hanzi()
    const chars = new Set<string>()
    // CJK Unified Ideographs and Extension A.
    for (const [lo, hi] of [
      [0x3400, 0x4dbf],
      [0x4e00, 0x9fff],
    ] as const) {
      for (let cp = lo; cp <= hi; cp++) {
        const ch = String.fromCodePoint(cp)
        if (!traditional.has(ch) && toTw(ch) !== ch) chars.add(ch)
      }
    }
    simplifiedOnly = chars
  }
  return simplifiedOnly
}

/** The Simplified characters of a text (at most `limit`, distinct, in order of appearance), or []. */
export function findSimplified(text: string, limit = 8): string[] {
  const set = simplifiedSet()
  const found: string[] = []
  for (const ch of text) {
    if (set.has(ch) && !found.includes(ch)) {
      found.push(ch)
      if (found.length >= limit) break
    }
  }
  return found
}

/** Simplified -> Traditional Chinese (Taiwan) with Taiwan phrases (OpenCC s2twp). */
export function toTraditionalTaiwan(text: string): string {
  if (!toTwp) toTwp = OpenCC.Converter({ from: 'cn', to: 'twp' })
  return toTwp(text)
}
