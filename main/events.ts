// Typed push-event bus inside main. Transports (main/ipc.ts, main/server.ts) subscribe with onAny and
// forward to the renderer; services emit.
import type { EventName, Events } from '../preload/contract'

type AnyListener = (event: EventName, payload: unknown) => void

export class EventBus {
  private readonly listeners = new Set<AnyListener>()

  emit<E extends EventName>(event: E, payload: Events[E]): void {
    for (const l of this.listeners) {
      try {
        l(event, payload)
      } catch (err) {
        console.error(`[events] listener failed for ${event}:`, err)
      }
    }
  }

  onAny(listener: AnyListener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }
}
