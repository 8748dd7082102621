// Near-duplicate rows at 50,000+ rows without comparing every pair: MinHash signatures over character
// bigrams, banded LSH to find candidate pairs, then the exact Jaccard similarity of the bigram sets for
// each candidate (Broder 1997, "On the resemblance and containment of documents"; Leskovec, Rajaraman,
// Ullman, "Mining of Massive Datasets", ch. 3).
//
// 8 bands x 4 rows = 32 hashes: a pair with Jaccard 0.9 becomes a candidate with probability
// 1 - (1 - 0.9^4)^8 = 0.9998; at 0.5 with 0.40; at 0.2 with 0.013. Candidates are verified exactly, so the
// result never contains a pair below the threshold.

export const BANDS = 8
export const ROWS_PER_BAND = 4
export const NUM_HASHES = BANDS * ROWS_PER_BAND
/** A bucket bigger than this is compared against its first members only (keeps the worst case linear). */
const MAX_BUCKET_COMPARE = 64

/** murmur3's 32-bit finaliser: a good bit mixer. */
function fmix32(h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

// Hash k of a shingle: (mixed ^ xorK) * mulK (mulK odd): a distinct bijection of 32-bit values per k.
const XOR_SEEDS = new Uint32Array(NUM_HASHES)
const MUL_SEEDS = new Uint32Array(NUM_HASHES)
for (let k = 0; k < NUM_HASHES; k++) {
  XOR_SEEDS[k] = fmix32(0x9e3779b9 + k * 0x632be5ab)
  MUL_SEEDS[k] = (fmix32(0x7f4a7c15 + k * 0x2545f491) | 1) >>> 0
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

export function minhash(shingles: Uint32Array): Uint32Array {
  const sig = new Uint32Array(NUM_HASHES).fill(0xffffffff)
  for (let s = 0; s < shingles.length; s++) {
    const x = fmix32(shingles[s]!)
    for (let k = 0; k < NUM_HASHES; k++) {
      const h = Math.imul(x ^ XOR_SEEDS[k]!, MUL_SEEDS[k]!) >>> 0
      if (h < sig[k]!) sig[k] = h
    }
  }
  return sig
}

export interface NearDupItem {
  id: number
  /** Normalised text (see normalizeForDuplicates). */
  text: string
  /** MinHash signature of bigrams(text) (cache it: it only depends on the text). */
  signature: Uint32Array
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
      for (let r = 0; r < ROWS_PER_BAND; r++) key = fmix32((key ^ sig[o + r]!) >>> 0)
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
          if (jaccard(shinglesOf(i), shinglesOf(j)) >= threshold) {
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
