// The push-event half of a fake renderer api (renderer/src/api) for store and component tests: `on` registers a
// listener and returns its unsubscribe function, as the real api does; `emit` delivers a payload to the event's
// listeners. Create it inside vi.hoisted so the vi.mock factory can use it.
export type Listener = (payload: unknown) => void

export interface FakeApiEvents {
  on(event: string, listener: Listener): () => void
  emit(event: string, payload: unknown): void
  /** Forgets every listener (between tests). */
  clear(): void
}

export function fakeApiEvents(): FakeApiEvents {
  const listeners = new Map<string, Set<Listener>>()
  return {
    on(event, listener) {
      if (!listeners.has(event)) listeners.set(event, new Set())
      listeners.get(event)!.add(listener)
      return () => void listeners.get(event)!.delete(listener)
    },
    emit(event, payload) {
      for (const l of listeners.get(event) ?? []) l(payload)
    },
    clear: () => listeners.clear(),
  }
}
