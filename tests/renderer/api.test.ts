// The renderer's HTTP transport: every channel goes to /api/<channel> with the token; failures become ApiError.
import { describe, expect, it, vi } from 'vitest'
import { CHANNELS } from '../../preload/contract'
import { ApiError, createHttpBridge, readToken, unwrap } from '../../renderer/src/api'

describe('renderer api', () => {
  it('posts every channel to /api/<channel> with the token header', async () => {
    const fetchImpl = vi.fn(async (_url: string, _init: RequestInit) => new Response(JSON.stringify({ ok: true, value: 42 })))
    const api = unwrap(createHttpBridge('http://127.0.0.1:9', 'tok', fetchImpl as unknown as typeof fetch))
    for (const channel of CHANNELS) {
      await expect((api as unknown as Record<string, (a: unknown) => Promise<unknown>>)[channel]!({ x: 1 })).resolves.toBe(42)
    }
    expect(fetchImpl).toHaveBeenCalledTimes(CHANNELS.length)
    const [url, init] = fetchImpl.mock.calls[0]!
    expect(url).toBe(`http://127.0.0.1:9/api/${encodeURIComponent(CHANNELS[0]!)}`)
    expect((init.headers as Record<string, string>)['x-qt-token']).toBe('tok')
  })

  it('throws ApiError with the code from the server', async () => {
    const fetchImpl = async () => new Response(JSON.stringify({ ok: false, error: { code: 'NOT_FOUND', message: 'gone' } }))
    const api = unwrap(createHttpBridge('', 'tok', fetchImpl as unknown as typeof fetch))
    const err = await api['projects:get']({ id: 1 }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ApiError)
    expect(err).toMatchObject({ code: 'NOT_FOUND', message: 'gone' })
  })

  it('explains a missing token and an unreachable server', async () => {
    const unauthorized = async () => new Response('{}', { status: 401 })
    const api = unwrap(createHttpBridge('', null, unauthorized as unknown as typeof fetch))
    await expect(api['projects:list']()).rejects.toMatchObject({ code: 'FORBIDDEN' })
    const down = async () => {
      throw new TypeError('fetch failed')
    }
    await expect(unwrap(createHttpBridge('', 't', down as unknown as typeof fetch))['projects:list']()).rejects.toMatchObject({ code: 'NETWORK' })
  })

  it('moves the token from the URL into session storage', () => {
    window.history.replaceState(null, '', '/?token=abc123#/dataset')
    expect(readToken(window.location, window.sessionStorage)).toBe('abc123')
    expect(window.location.search).toBe('')
    expect(window.location.hash).toBe('#/dataset')
    expect(readToken(window.location, window.sessionStorage)).toBe('abc123')
  })
})
