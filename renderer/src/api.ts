// The renderer's only door to main. In Electron it uses the preload bridge (`window.api`); in browser
// mode the same contract over HTTP (token from the URL) with push events over Server-Sent Events.
// Either way callers get typed async methods that throw ApiError on failure.
import type { Api, AppErrorInfo, BridgeApi, Channel, ErrorCode, EventName, Events, Result } from '../../preload/contract'

export class ApiError extends Error {
  readonly code: ErrorCode
  readonly details?: unknown
  constructor(info: AppErrorInfo) {
    super(info.message)
    this.name = 'ApiError'
    this.code = info.code
    this.details = info.details
  }
}

type Listener = (payload: unknown) => void

const TOKEN_KEY = 'qt-token'

/** Reads the browser-mode token from ?token= (then hides it from the address bar) or from this tab's storage. */
export function readToken(loc: Location = window.location, storage: Storage = window.sessionStorage): string | null {
  const params = new URLSearchParams(loc.search)
  const fromUrl = params.get('token')
  if (fromUrl) {
    storage.setItem(TOKEN_KEY, fromUrl)
    params.delete('token')
    const rest = params.toString()
    window.history.replaceState(null, '', `${loc.pathname}${rest ? `?${rest}` : ''}${loc.hash}`)
    return fromUrl
  }
  return storage.getItem(TOKEN_KEY)
}

export function createHttpBridge(baseUrl: string, token: string | null, fetchImpl: typeof fetch = fetch.bind(window)): BridgeApi {
  const listeners = new Map<string, Set<Listener>>()
  let source: EventSource | null = null

  const ensureSource = () => {
    if (source || typeof EventSource === 'undefined') return
    source = new EventSource(`${baseUrl}/api/events?token=${encodeURIComponent(token ?? '')}`)
    for (const name of listeners.keys()) attach(name)
  }
  const attached = new Set<string>()
  const attach = (name: string) => {
    if (!source || attached.has(name)) return
    attached.add(name)
    source.addEventListener(name, (e) => {
      const payload = JSON.parse((e as MessageEvent<string>).data) as unknown
      for (const l of listeners.get(name) ?? []) l(payload)
    })
  }

  const invoke = async (channel: string, arg: unknown): Promise<Result<unknown>> => {
    let res: Response
    try {
      res = await fetchImpl(`${baseUrl}/api/${encodeURIComponent(channel)}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'x-qt-token': token ?? '' },
        body: JSON.stringify({ arg }),
      })
    } catch {
      return { ok: false, error: { code: 'NETWORK', message: 'Cannot reach the QA Tuner server. Is `npm run serve` still running?' } }
    }
    if (res.status === 401) {
      return { ok: false, error: { code: 'FORBIDDEN', message: 'This page has no valid access token. Open the URL that `npm run serve` printed.' } }
    }
    try {
      return (await res.json()) as Result<unknown>
    } catch {
      return { ok: false, error: { code: 'INTERNAL', message: `Unexpected server answer (HTTP ${res.status})` } }
    }
  }

  return new Proxy({} as BridgeApi, {
    get(_t, prop) {
      if (prop === 'on') {
        return (event: string, listener: Listener) => {
          if (!listeners.has(event)) listeners.set(event, new Set())
          listeners.get(event)!.add(listener)
          ensureSource()
          attach(event)
          return () => listeners.get(event)?.delete(listener)
        }
      }
      if (typeof prop !== 'string' || prop === 'then') return undefined
      return (arg: unknown) => invoke(prop, arg)
    },
  })
}

/** Turns a bridge (Results) into the Api callers use (values, or a thrown ApiError). */
export function unwrap(bridge: BridgeApi): Api {
  return new Proxy({} as Api, {
    get(_t, prop) {
      if (prop === 'on') return bridge.on.bind(bridge)
      if (typeof prop !== 'string' || prop === 'then') return undefined
      return async (arg: unknown) => {
        const fn = (bridge as unknown as Record<string, (a: unknown) => Promise<Result<unknown>>>)[prop]
        if (typeof fn !== 'function') throw new ApiError({ code: 'UNKNOWN_CHANNEL', message: `Unknown channel: ${prop}` })
        const r = await fn(arg)
        if (!r.ok) throw new ApiError(r.error)
        return r.value
      }
    },
  })
}

declare global {
  interface Window {
    api?: BridgeApi
  }
}

function createApi(): Api {
  if (typeof window !== 'undefined' && window.api) return unwrap(window.api)
  const base = typeof window !== 'undefined' ? window.location.origin : ''
  return unwrap(createHttpBridge(base, typeof window !== 'undefined' ? readToken() : null))
}

export const api: Api = createApi()
export const transport: 'electron' | 'browser' = typeof window !== 'undefined' && window.api ? 'electron' : 'browser'

export type { Channel, EventName, Events }
