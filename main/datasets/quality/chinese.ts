// Simplified Chinese in a zh-TW project: detection and one-click conversion with OpenCC (opencc-js).
//
// Detection uses OpenCC's character-level Simplified -> Traditional (Taiwan) conversion `cn -> tw`
// (segmentation-aware, so 皇后 and 只有 stay as they are): a text has Simplified characters when that
// conversion changes it. A precomputed set of characters the conversion can change lets the ~all-Traditional
// rows skip the converter. The fix uses `cn -> twp` (OpenCC s2twp: also Taiwan vocabulary, 软件 -> 軟體).
import OpenCC from 'opencc-js'

type Convert = (text: string) => string

let toTw: Convert | null = null
let toTwp: Convert | null = null
let candidates: Set<string> | null = null

function detector(): { convert: Convert; chars: Set<string> } {
  if (!toTw || !candidates) {
    toTw = OpenCC.Converter({ from: 'cn', to: 'tw' })
    const chars = new Set<string>()
    // CJK Unified Ideographs and Extension A: every character the conversion would change on its own.
    for (const [lo, hi] of [
      [0x3400, 0x4dbf],
      [0x4e00, 0x9fff],
    ] as const) {
      for (let cp = lo; cp <= hi; cp++) {
        const ch = String.fromCodePoint(cp)
        if (toTw(ch) !== ch) chars.add(ch)
      }
    }
    candidates = chars
  }
  return { convert: toTw, chars: candidates }
}

/**
 * The Simplified characters of a text (at most `limit`, in order of appearance), or [] when it has none.
 */
export function findSimplified(text: string, limit = 8): string[] {
  const { convert, chars } = detector()
  let any = false
  for (const ch of text) {
    if (chars.has(ch)) {
      any = true
      break
    }
  }
  if (!any) return []
  const converted = convert(text)
  if (converted === text) return []
  const found: string[] = []
  const a = [...text]
  const b = [...converted]
  if (a.length === b.length) {
    for (let i = 0; i < a.length && found.length < limit; i++) if (a[i] !== b[i] && !found.includes(a[i]!)) found.push(a[i]!)
  } else {
    for (const ch of a) if (chars.has(ch) && !found.includes(ch) && found.length < limit) found.push(ch)
  }
  return found
}

/** Simplified -> Traditional Chinese (Taiwan) with Taiwan phrases (OpenCC s2twp). */
export function toTraditionalTaiwan(text: string): string {
  if (!toTwp) toTwp = OpenCC.Converter({ from: 'cn', to: 'twp' })
  return toTwp(text)
}
