// A small byte-level BPE trainer (the algorithm of GPT-2 / Hugging Face's BpeTrainer): start from the 256 byte
// symbols, repeatedly merge the most frequent adjacent pair over the pre-tokenized corpus (ties: the smaller pair
// in code-unit order, so training is deterministic). Pair counts are updated incrementally, only for the words a
// merge touches. Used for the tiny test/demo tokenizer; not meant for large corpora.
export interface BpeResult {
  /** token → id: the 256 byte symbols first (id = byte value), then one id per learned merge. */
  vocab: Map<string, number>
  /** Merges in rank order. */
  merges: Array<[string, string]>
}

const SEP = '\u0001' // never a byte-level symbol

/**
 * Trains merges until the vocabulary has `vocabSize` entries (or no pair occurs any more).
 * `words` are pre-tokens already written as byte-level symbols, with their counts.
 */
export function trainByteLevelBpe(words: Map<string, number>, vocabSize: number): BpeResult {
  const vocab = new Map<string, number>()
  // Byte symbols by byte value (GPT-2's byte-to-unicode mapping).
  let n = 0
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)
    vocab.set(String.fromCharCode(printable ? b : 256 + n++), b)
  }
  const merges: Array<[string, string]> = []

  const entries = [...words.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
  const symbols: string[][] = entries.map(([w]) => Array.from(w))
  const counts: number[] = entries.map(([, c]) => c)
  const pairCount = new Map<string, number>()
  const pairWords = new Map<string, Set<number>>()

  const addPairs = (w: number, sign: 1 | -1) => {
    const s = symbols[w]
    for (let i = 0; i + 1 < s.length; i++) {
      const key = s[i] + SEP + s[i + 1]
      const c = (pairCount.get(key) ?? 0) + sign * counts[w]
      if (c <= 0) pairCount.delete(key)
      else pairCount.set(key, c)
      if (sign > 0) {
        let set = pairWords.get(key)
        if (!set) pairWords.set(key, (set = new Set()))
        set.add(w)
      }
    }
  }
  for (let w = 0; w < symbols.length; w++) addPairs(w, 1)

  while (vocab.size < vocabSize && pairCount.size > 0) {
    let bestKey = ''
    let bestCount = 0
    for (const [key, c] of pairCount) {
      if (c > bestCount || (c === bestCount && key < bestKey)) {
        bestKey = key
        bestCount = c
      }
    }
    const [a, b] = bestKey.split(SEP) as [string, string]
    const merged = a + b
    merges.push([a, b])
    if (!vocab.has(merged)) vocab.set(merged, vocab.size)
    for (const w of pairWords.get(bestKey) ?? []) {
      const s = symbols[w]
      let has = false
      for (let i = 0; i + 1 < s.length; i++) if (s[i] === a && s[i + 1] === b) has = true
      if (!has) continue
      addPairs(w, -1)
      const out: string[] = []
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          out.push(merged)
          i++
        } else out.push(s[i])
      }
      symbols[w] = out
      addPairs(w, 1)
    }
    pairWords.delete(bestKey)
  }
  return { vocab, merges }
}
