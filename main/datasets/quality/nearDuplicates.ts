// Near-duplicate rows at 50,000+ rows without comparing every pair: MinHash-style signatures over
// character bigrams, banded LSH to find candidate pairs, then the exact Jaccard similarity of the bigram sets
// for each candidate (Broder 1997; Leskovec, Rajaraman, Ullman, "Mining of Massive Datasets", ch. 3).
//
// Signatures use one-permutation hashing with optimal densification (Li, Owen, Zhang 2012; Shrivastava 2017):
// one hash per bigram split into 48 bins, empty bins filled from other bins by a fixed probe sequence, so
// P[sig_a[k] = sig_b[k]] is (about) the Jaccard similarity, as with 48 independent MinHashes, at 1/48 of
// the hashing cost. 8 bands x 6 rows: a pair with Jaccard 0.9 becomes a candidate with probability
// 1 - (1 - 0.9^6)^8 = 0.998 (0.95: 0.99999); at 0.5 with 0.12. Candidates are verified exactly, so the
// result never contains a pair below the threshold.

export const BANDS = 8
export const ROWS_PER_BAND = 6
export const NUM_HASHES = BANDS * ROWS_PER_BAND
/** A bucket bigger than this is compared against its first members only (keeps the worst case linear). */
const MAX_BUCKET_COMPARE = 64

/** murmur3's 32-bit finaliser: a good bit mixer (int32 in, int32 out: stays in V8's small-integer path). */
function fmix32(h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h | 0
}

/** Sorted unique character bigrams of a text, each as one 32-bit number (two UTF-16 code units). */
export function bigrams(text: string): Uint32Array {
  if (text.length < 2) return text.length ? Uint32Array.of(text.charCodeAt(0)) : new Uint32Array(0)
  const out = new Uint32Array(text.length - 1)
  for (let i = 0; i < out.length; i++) out[i] = ((text.charCodeAt(i) << 16) | text.charCodeAt(i + 1)) >>> 0
  out.sort()
  let n = 0
  for (let i = 0; i < out.length; i++) if (i === 0 || out[i] !== out[n - 1]) out[n++] = out[i]!
  return out.slice(0, n)
}

export function jaccard(a: Uint32Array, b: Uint32Array): number {
  if (a.length === 0 && b.length === 0) return 1
  let i = 0
  let j = 0
  let inter = 0
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) {
      inter++
      i++
      j++
    } else if (a[i]! < b[j]!) i++
    else j++
  }
  return inter / (a.length + b.length - inter)
}

const EMPTY = 0x7fffffff

/**
 * One-permutation MinHash signature (NUM_HASHES values) of the set of character bigrams of a text, read
 * straight from the string (repeated bigrams do not change a minimum).
 */
export function signature(text: string): Int32Array {
  const sig = new Int32Array(NUM_HASHES).fill(EMPTY)
  const n = text.length
  if (n === 0) return sig
  let prev = text.charCodeAt(0)
  for (let i = n === 1 ? 0 : 1; i < n; i++) {
    const cur = n === 1 ? 0 : text.charCodeAt(i)
    const h = fmix32(((prev << 16) | cur) ^ 0x5bd1e995)
    prev = cur
    const bin = Math.imul(h >>> 16, NUM_HASHES) >>> 16 // h's high bits scaled to [0, NUM_HASHES)
    const v = fmix32(h + 0x27d4eb2f) // value within the bin, independent of the bin index
    if (v < sig[bin]!) sig[bin] = v
  }
  // Optimal densification: an empty bin copies the first non-empty bin of its own probe sequence.
  const filled = sig.slice()
  for (let k = 0; k < NUM_HASHES; k++) {
    if (sig[k] !== EMPTY) continue
    for (let attempt = 1; ; attempt++) {
      const from = Math.imul(fmix32(Math.imul(k + 1, 0x9e3779b1) + attempt) >>> 16, NUM_HASHES) >>> 16
      if (sig[from] !== EMPTY) {
        filled[k] = sig[from]!
        break
      }
    }
  }
  return filled
}

export interface NearDupItem {
  id: number
  /** Normalised text (see normalizeForDuplicates). */
  text: string
  /** signature(text) (cache it: it only depends on the text). */
  signature: Int32Array
}

/**
 * Groups of items whose bigram Jaccard similarity is at least `threshold` (transitively joined).
 * Items with fewer than `minBigrams` bigrams are left out (too short for a meaningful similarity).
 * Returns, for each item in a group, the id of another member (its nearest earlier one when possible).
 */
export function findNearDuplicates(items: NearDupItem[], threshold = 0.9, minBigrams = 4): Map<number, number> {
  const n = items.length
  const parent = new Int32Array(n).map((_, i) => i)
  const find = (i: number): number => {
    while (parent[i] !== i) {
      parent[i] = parent[parent[i]!]!
      i = parent[i]!
    }
    return i
  }
  const shingleCache = new Map<number, Uint32Array>()
  const shinglesOf = (i: number): Uint32Array => {
    let s = shingleCache.get(i)
    if (!s) {
      s = bigrams(items[i]!.text)
      shingleCache.set(i, s)
    }
    return s
  }
  const partner = new Map<number, number>()
  const eligible = items.map((it) => it.text.length - 1 >= minBigrams)

  for (let band = 0; band < BANDS; band++) {
    const buckets = new Map<number, number[]>()
    for (let i = 0; i < n; i++) {
      if (!eligible[i]) continue
      const sig = items[i]!.signature
      const o = band * ROWS_PER_BAND
      let key = band + 1
      for (let r = 0; r < ROWS_PER_BAND; r++) key = fmix32(key ^ sig[o + r]!)
      const list = buckets.get(key)
      if (list) list.push(i)
      else buckets.set(key, [i])
    }
    for (const members of buckets.values()) {
      if (members.length < 2) continue
      const limit = Math.min(members.length, MAX_BUCKET_COMPARE)
      for (let x = 0; x < members.length; x++) {
        const i = members[x]!
        for (let y = 0; y < Math.min(x, limit); y++) {
          const j = members[y]!
          if (find(i) === find(j) && partner.has(i)) continue
          const a = shinglesOf(i)
          const b = shinglesOf(j)
          // |A n B| / |A u B| <= min/max: sets of very different sizes cannot reach the threshold.
          if (Math.min(a.length, b.length) < threshold * Math.max(a.length, b.length)) continue
          if (jaccard(a, b) >= threshold) {
            const ri = find(i)
            const rj = find(j)
            if (ri !== rj) parent[Math.max(ri, rj)] = Math.min(ri, rj)
            if (!partner.has(i)) partner.set(i, j)
            if (!partner.has(j)) partner.set(j, i)
          }
        }
      }
    }
  }
  const out = new Map<number, number>()
  for (const [i, j] of partner) out.set(items[i]!.id, items[j]!.id)
  return out
}
