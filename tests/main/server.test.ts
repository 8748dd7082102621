// Browser-mode transport: token, Host check, static files, every channel reachable, SSE events.
import { mkdirSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { CHANNELS } from '../../preload/contract'
import { startServer, type RunningServer } from '../../main/server'
import { tempApp, tempDir, type TempApp } from '../helpers/tempContext'

let app: TempApp | undefined
let server: RunningServer | undefined
afterEach(async () => {
  await server?.close()
  await app?.cleanup()
  server = undefined
  app = undefined
})

async function boot(): Promise<{ base: string; token: string; staticDir: string }> {
  app = tempApp()
  const staticDir = tempDir()
  mkdirSync(join(staticDir, 'assets'))
  writeFileSync(join(staticDir, 'index.html'), '<!doctype html><title>t</title>')
  writeFileSync(join(staticDir, 'assets', 'a.js'), 'console.log(1)')
  server = await startServer({ dispatch: app.dispatch, events: app.ctx.events, staticDir, port: 0 })
  return { base: `http://127.0.0.1:${server.port}`, token: server.token, staticDir }
}

function post(base: string, channel: string, arg: unknown, token: string | null) {
  return fetch(`${base}/api/${channel}`, {
    method: 'POST',
    headers: token ? { 'x-qt-token': token, 'content-type': 'application/json' } : {},
    body: JSON.stringify({ arg }),
  })
}

/** Raw GET with a chosen Host header (fetch does not allow overriding it). */
function rawGet(port: number, path: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host } }, (res) => {
      res.resume()
      resolve(res.statusCode ?? 0)
    })
    req.on('error', reject)
    req.end()
  })
}

describe('browser-mode server', () => {
  it('binds to loopback and prints a URL carrying the token', async () => {
    await boot()
    expect(server!.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]{20,}$/)
    expect(server!.server.address()).toMatchObject({ address: '127.0.0.1' })
  })

  it('requires the token on every API call', async () => {
    const { base, token } = await boot()
    expect((await post(base, 'projects:list', undefined, null)).status).toBe(401)
    expect((await post(base, 'projects:list', undefined, token.slice(1) + 'x')).status).toBe(401)
    const ok = await post(base, 'projects:list', undefined, token)
    expect(await ok.json()).toEqual({ ok: true, value: [] })
    expect((await fetch(`${base}/api/events`)).status).toBe(401)
  })

  it('serves every contract channel (none missing from this transport)', async () => {
    const { base, token } = await boot()
    for (const channel of CHANNELS) {
      const body = (await (await post(base, channel, { surely: 'invalid' }, token)).json()) as { ok: boolean; error?: { code: string } }
      if (!body.ok) expect(body.error!.code, channel).not.toBe('UNKNOWN_CHANNEL')
    }
    const unknown = (await (await post(base, 'evil:channel', {}, token)).json()) as { error: { code: string } }
    expect(unknown.error.code).toBe('UNKNOWN_CHANNEL')
  })

  it('rejects foreign Host headers (DNS rebinding) and path traversal', async () => {
    const { base } = await boot()
    expect(await rawGet(server!.port, '/', 'evil.example:80')).toBe(421)
    expect(await rawGet(server!.port, '/', `localhost:${server!.port}`)).toBe(200)
    expect(await rawGet(server!.port, '/../../../../etc/passwd', `127.0.0.1:${server!.port}`)).toBe(404)
    expect(await rawGet(server!.port, '/%2e%2e/%2e%2e/etc/passwd', `127.0.0.1:${server!.port}`)).toBe(404)
    const index = await fetch(`${base}/`)
    expect(index.headers.get('content-security-policy')).toContain("script-src 'self'")
    expect((await fetch(`${base}/assets/a.js`)).headers.get('content-type')).toContain('javascript')
  })

  it('rejects malformed JSON bodies with a typed error', async () => {
    const { base, token } = await boot()
    const res = await fetch(`${base}/api/projects:list`, { method: 'POST', headers: { 'x-qt-token': token }, body: '{nope' })
    expect(res.status).toBe(400)
    expect(await res.json()).toMatchObject({ ok: false, error: { code: 'INVALID_ARGUMENT' } })
  })

  it('pushes events over Server-Sent Events', async () => {
    const { base, token } = await boot()
    const res = await fetch(`${base}/api/events?token=${token}`)
    const reader = res.body!.getReader()
    await reader.read() // ": connected"
    await post(base, 'projects:create', { name: 'SSE' }, token)
    let text = ''
    while (!text.includes('\n\n', text.indexOf('event: projects:changed'))) {
      const { value } = await reader.read()
      text += new TextDecoder().decode(value)
    }
    expect(text).toMatch(/event: projects:changed\ndata: \{"projectId":\d+\}/)
    await reader.cancel()
  })
})
