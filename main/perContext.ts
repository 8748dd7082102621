// One instance of a service per AppContext: `of(ctx, ...options)` makes it on the first call (those options apply),
// keeps it, then runs `start` (close hooks, recovery of work left by a previous process), so anything `start`
// triggers already finds the same instance through `of`. Later calls return it and ignore their options.
import type { AppContext } from './context'

export function perContext<T, A extends unknown[]>(
  create: (ctx: AppContext, ...options: A) => T,
  start?: (value: T, ctx: AppContext) => void,
): (ctx: AppContext, ...options: A) => T {
  const made = new WeakMap<AppContext, T>()
  return (ctx, ...options) => {
    const existing = made.get(ctx)
    if (existing !== undefined) return existing
    const value = create(ctx, ...options)
    made.set(ctx, value)
    start?.(value, ctx)
    return value
  }
}
