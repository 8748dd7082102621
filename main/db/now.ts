/** ISO-8601 UTC timestamp used for every *_at column. */
export function nowIso(): string {
  return new Date().toISOString()
}
