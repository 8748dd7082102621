// Browser mode: the same contract over HTTP from plain Node, for headless GPU servers and e2e tests.
//
//   GET  /, /assets/...      the built renderer (public: it holds no data)
//   POST /api/<channel>      body {"arg": ...}, header `x-qt-token: <token>`; answers a contract Result
//   GET  /api/events?token=  push events as Server-Sent Events (`event: <name>` / `data: <json>`)
//
// Bound to 127.0.0.1 by default. Every API call needs the random token printed with the URL; the Host
// header must name this server (no DNS rebinding); responses carry the renderer's CSP.
import { timingSafeEqual, randomBytes } from 'node:crypto'
import { createReadStream, existsSync, statSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { extname, join, normalize, resolve, sep } from 'node:path'
import { CONTENT_SECURITY_POLICY } from './csp'
import type { Dispatch } from './dispatch'
import type { EventBus } from './events'

export interface ServerOptions {
  dispatch: Dispatch
  events: EventBus
  /** Folder of the built renderer (out/renderer). */
  staticDir: string
  host?: string
  port?: number
  /** Fixed token (tests); a random one otherwise. */
  token?: string
  /** Largest request body accepted, in bytes (imports send whole files). */
  maxBodyBytes?: number
}

export interface RunningServer {
  url: string
  token: string
  port: number
  server: Server
  close(): Promise<void>
}

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
  '.ttf': 'font/ttf',
}

export function newToken(): string {
  return randomBytes(24).toString('base64url')
}

function sameToken(given: string | null | undefined, token: string): boolean {
  if (!given) return false
  const a = Buffer.from(given)
  const b = Buffer.from(token)
  return a.length === b.length && timingSafeEqual(a, b)
}

function isLoopback(host: string): boolean {
  return host === '127.0.0.1' || host === 'localhost' || host === '::1'
}

function send(res: ServerResponse, status: number, body: string, type = 'application/json; charset=utf-8'): void {
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' })
  res.end(body)
}

function sendError(res: ServerResponse, status: number, code: string, message: string): void {
  send(res, status, JSON.stringify({ ok: false, error: { code, message } }))
}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolveBody, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > limit) {
        reject(Object.assign(new Error(`Request body over ${limit} bytes`), { status: 413 }))
        req.destroy()
        return
      }
      chunks.push(c)
    })
    req.on('end', () => resolveBody(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}

export function startServer(opts: ServerOptions): Promise<RunningServer> {
  const host = opts.host ?? '127.0.0.1'
  const token = opts.token ?? newToken()
  const staticRoot = resolve(opts.staticDir)
  const maxBody = opts.maxBodyBytes ?? 256 * 1024 * 1024
  const sseClients = new Set<ServerResponse>()
  let allowedHosts = new Set<string>()

  const offEvents = opts.events.onAny((event, payload) => {
    const frame = `event: ${event}\ndata: ${JSON.stringify(payload)}\n\n`
    for (const res of sseClients) res.write(frame)
  })
  const heartbeat = setInterval(() => {
    for (const res of sseClients) res.write(': ping\n\n')
  }, 15_000)
  heartbeat.unref()

  function serveStatic(pathname: string, res: ServerResponse): void {
    let rel: string
    try {
      rel = decodeURIComponent(pathname)
    } catch {
      return sendError(res, 400, 'INVALID_ARGUMENT', 'Bad path')
    }
    if (rel === '/' || rel === '') rel = '/index.html'
    const file = normalize(join(staticRoot, rel))
    if (!file.startsWith(staticRoot + sep) || !existsSync(file) || !statSync(file).isFile()) {
      return send(res, 404, 'Not found', 'text/plain; charset=utf-8')
    }
    res.writeHead(200, {
      'Content-Type': MIME[extname(file)] ?? 'application/octet-stream',
      'Content-Security-Policy': CONTENT_SECURITY_POLICY,
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
      'Cache-Control': rel === '/index.html' ? 'no-store' : 'public, max-age=3600',
    })
    createReadStream(file).pipe(res)
  }

  const server = createServer((req, res) => {
    const hostHeader = (req.headers.host ?? '').toLowerCase()
    // On loopback, a page from another site reaching us through DNS rebinding carries a foreign Host.
    if (isLoopback(host) && !allowedHosts.has(hostHeader)) return sendError(res, 421, 'FORBIDDEN', 'Unexpected Host header')
    const url = new URL(req.url ?? '/', `http://${hostHeader}`)

    if (!url.pathname.startsWith('/api/')) {
      if (req.method !== 'GET' && req.method !== 'HEAD') return sendError(res, 405, 'FORBIDDEN', 'Method not allowed')
      return serveStatic(url.pathname, res)
    }

    if (url.pathname === '/api/events') {
      if (!sameToken(url.searchParams.get('token'), token)) return sendError(res, 401, 'FORBIDDEN', 'Missing or wrong token')
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive' })
      res.write(': connected\n\n')
      sseClients.add(res)
      req.on('close', () => sseClients.delete(res))
      return
    }

    const headerToken = req.headers['x-qt-token']
    if (!sameToken(Array.isArray(headerToken) ? headerToken[0] : headerToken, token)) {
      return sendError(res, 401, 'FORBIDDEN', 'Missing or wrong token')
    }
    if (req.method !== 'POST') return sendError(res, 405, 'FORBIDDEN', 'Use POST')
    const channel = decodeURIComponent(url.pathname.slice('/api/'.length))
    readBody(req, maxBody)
      .then(async (body) => {
        let arg: unknown
        try {
          arg = body ? (JSON.parse(body) as { arg?: unknown }).arg : undefined
        } catch {
          return sendError(res, 400, 'INVALID_ARGUMENT', 'The request body is not valid JSON')
        }
        const result = await opts.dispatch(channel, arg)
        send(res, 200, JSON.stringify(result))
      })
      .catch((err: { status?: number; message?: string }) => {
        if (!res.headersSent) sendError(res, err.status ?? 500, 'INVALID_ARGUMENT', err.message ?? 'Bad request')
      })
  })
  server.requestTimeout = 0 // imports and exports may take long; SSE stays open

  return new Promise((resolveServer, reject) => {
    server.once('error', reject)
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject)
      const port = (server.address() as AddressInfo).port
      const shownHost = host.includes(':') ? `[${host}]` : host
      allowedHosts = new Set([`${shownHost}:${port}`, `localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`])
      if (!isLoopback(host)) console.warn(`[server] Listening on ${host}: anyone who can reach this address and has the token can use the app.`)
      resolveServer({
        url: `http://${shownHost}:${port}/?token=${token}`,
        token,
        port,
        server,
        close: () =>
          new Promise<void>((done) => {
            offEvents()
            clearInterval(heartbeat)
            for (const res of sseClients) res.end()
            sseClients.clear()
            server.close(() => done())
            server.closeAllConnections()
          }),
      })
    })
  })
}
