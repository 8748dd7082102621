// Seeded train/validation split by row id: a row's side depends only on (id, seed), so it never changes when rows
// are added, edited or reordered, and one row is never on both sides.
import type { RowId } from './rows'

/** 32-bit hash of (row id, seed): FNV-1a over the UTF-16 units, then murmur3's finaliser for good spread. */
export function splitHash(rowId: RowId, seed: number): number {
  const s = `${seed}:${typeof rowId === 'number' ? 'n' : 's'}:${rowId}`
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/**
 * true = validation. A row goes to validation when hash / 2^32 < fraction. With fraction > 0 and at least two rows,
 * validation gets at least one row (the one closest to the threshold) and training keeps at least one.
 */
export function assignValidation(rowIds: readonly RowId[], seed: number, fraction: number): boolean[] {
  const n = rowIds.length
  const hashes = rowIds.map((id) => splitHash(id, seed))
  const limit = fraction * 2 ** 32
  const isVal = hashes.map((h) => h < limit)
  if (fraction > 0 && n >= 2) {
    const count = isVal.filter(Boolean).length
    if (count === 0) {
      let best = 0
      for (let i = 1; i < n; i++) if (hashes[i] < hashes[best]) best = i
      isVal[best] = true
    } else if (count === n) {
      let worst = 0
      for (let i = 1; i < n; i++) if (hashes[i] > hashes[worst]) worst = i
      isVal[worst] = false
    }
  }
  return isVal
}
