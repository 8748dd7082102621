// One file of a Hub download, resumable: bytes go to "<name>.part"; an attempt after an interruption asks for the
// rest with an HTTP Range header (bytes already on disk are never fetched again) and feeds the existing part
// through the hash first. When the size is reached the content is checked (sha256 for LFS files, the git blob
// sha1 for small ones); a mismatch deletes the part. Only then is the part renamed to its real name.
import { createHash, type Hash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { open, rename, rm, stat, truncate } from 'node:fs/promises'
import { AppError } from '../../errors'
import { modelProblem } from '../modelProblem'
import { hubHttpProblem, networkProblem, resolveUrl, type HubContext, type HubFile } from './hubClient'

export interface FileAttemptOptions {
  ctx: HubContext
  revision: string
  file: HubFile
  /** Final path; the part is `${dest}.part`. */
  dest: string
  signal: AbortSignal
  /** Bytes of this file on disk: after each received chunk (network true) and when an attempt starts (false). */
  onPosition: (bytes: number, network: boolean) => void
  /** No data for this long aborts the attempt (retryable); default 60 s. */
  stallMs?: number
}

export class RetryableDownloadError extends Error {
  readonly problem: AppError
  constructor(problem: AppError) {
    super(problem.message)
    this.problem = problem
  }
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size
  } catch {
    return 0
  }
}

function newHashes(file: HubFile, size: number): { sha256: Hash | null; git: Hash | null } {
  const git = file.sha256 === null && file.gitOid ? createHash('sha1').update(`blob ${size}\0`) : null
  return { sha256: file.sha256 ? createHash('sha256') : null, git }
}

async function hashExisting(path: string, bytes: number, h: { sha256: Hash | null; git: Hash | null }): Promise<void> {
  if (bytes === 0 || (!h.sha256 && !h.git)) return
  await new Promise<void>((resolveHash, reject) => {
    const s = createReadStream(path, { start: 0, end: bytes - 1 })
    s.on('data', (chunk) => {
      h.sha256?.update(chunk)
      h.git?.update(chunk)
    })
    s.on('end', () => resolveHash())
    s.on('error', reject)
  })
}

/**
 * One attempt at (the rest of) a file. Resolves when the file is complete and verified; throws
 * RetryableDownloadError for interruptions worth retrying, an AppError (problem) otherwise, or the signal's reason.
 */
export async function downloadFileAttempt(o: FileAttemptOptions): Promise<void> {
  const { file, dest } = o
  const part = `${dest}.part`
  let have = await sizeOf(part)
  if (have > file.size) {
    await truncate(part, 0)
    have = 0
  }
  const headers: Record<string, string> = { 'Accept-Encoding': 'identity' }
  if (o.ctx.token) headers.Authorization = `Bearer ${o.ctx.token}`
  if (have > 0) headers.Range = `bytes=${have}-`

  // The attempt has its own controller: the user's signal, or a stall, aborts it.
  const attempt = new AbortController()
  const onAbort = (): void => attempt.abort(o.signal.reason)
  if (o.signal.aborted) throw o.signal.reason
  o.signal.addEventListener('abort', onAbort, { once: true })
  let stalled = false
  let timer: NodeJS.Timeout | undefined
  const arm = (): void => {
    clearTimeout(timer)
    timer = setTimeout(() => {
      stalled = true
      attempt.abort(new Error('stalled'))
    }, o.stallMs ?? 60_000)
  }
  const interrupted = (err: unknown): never => {
    if (o.signal.aborted) throw o.signal.reason
    if (stalled) throw new RetryableDownloadError(modelProblem('NETWORK', 'network', `No data from ${o.ctx.endpoint} for a while while downloading ${file.path}; retrying.`, { retryable: true }))
    throw new RetryableDownloadError(networkProblem(err, o.ctx))
  }

  try {
    arm()
    let res: Response
    try {
      res = await fetch(resolveUrl(o.ctx, o.revision, file.path), { headers, signal: attempt.signal, redirect: 'follow' })
    } catch (err) {
      return interrupted(err)
    }
    if (res.status === 416 && have === file.size) {
      await res.body?.cancel()
    } else if (!res.ok) {
      let message = res.headers.get('x-error-message') ?? ''
      try {
        const text = await res.text()
        if (!message) message = (JSON.parse(text) as { error?: string }).error ?? ''
      } catch {
        /* not JSON */
      }
      const p = hubHttpProblem(res.status, res.headers.get('x-error-code'), message, o.ctx, file.path)
      if ((p.details as { retryable?: boolean }).retryable) throw new RetryableDownloadError(p)
      throw p
    } else {
      let start = 0
      if (res.status === 206) {
        const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '')
        start = m ? Number(m[1]) : -1
      }
      if (start !== have) {
        await res.body?.cancel()
        if (res.status === 206) throw new RetryableDownloadError(modelProblem('NETWORK', 'server', `The server answered an unexpected byte range for ${file.path}.`, { retryable: true }))
        // 200 although part of the file is here: the server ignored the Range header, so start this file over.
        clearTimeout(timer)
        await truncate(part, 0)
        return await downloadFileAttempt(o)
      }
      const hashes = newHashes(file, file.size)
      await hashExisting(part, have, hashes)
      o.onPosition(have, false)
      const fh = await open(part, have > 0 ? 'a' : 'w')
      try {
        if (!res.body) throw new RetryableDownloadError(modelProblem('NETWORK', 'server', `Empty answer for ${file.path}.`, { retryable: true }))
        const reader = res.body.getReader()
        for (;;) {
          let chunk: Awaited<ReturnType<typeof reader.read>>
          try {
            chunk = await reader.read()
          } catch (err) {
            return interrupted(err)
          }
          if (chunk.done) break
          arm()
          const bytes = chunk.value
          if (have + bytes.length > file.size) throw new RetryableDownloadError(modelProblem('NETWORK', 'sizeMismatch', `The server sent more than the ${file.size} bytes of ${file.path}.`, { retryable: true }))
          await fh.write(bytes)
          hashes.sha256?.update(bytes)
          hashes.git?.update(bytes)
          have += bytes.length
          o.onPosition(have, true)
        }
      } finally {
        await fh.close()
      }
      if (have < file.size) {
        throw new RetryableDownloadError(modelProblem('NETWORK', 'network', `The connection closed after ${have} of ${file.size} bytes of ${file.path}; resuming.`, { retryable: true }))
      }
      const got = hashes.sha256 ? hashes.sha256.digest('hex') : hashes.git ? hashes.git.digest('hex') : null
      const want = file.sha256 ?? file.gitOid
      if (got !== null && want !== null && got !== want.toLowerCase()) {
        await rm(part, { force: true })
        throw modelProblem(
          'IMPORT_FAILED',
          'hashMismatch',
          `${file.path} arrived damaged: its ${file.sha256 ? 'sha256' : 'git hash'} is ${got.slice(0, 12)}…, the Hub lists ${want.slice(0, 12)}…. The damaged file was deleted; press Retry to download it again (a proxy or a disk problem can cause this).`,
          { file: file.path, expected: want, actual: got },
        )
      }
    }
    const final = await sizeOf(part)
    if (final !== file.size) {
      await rm(part, { force: true })
      throw modelProblem('IMPORT_FAILED', 'sizeMismatch', `${file.path} has ${final} bytes instead of ${file.size}; it was deleted. Press Retry.`, { file: file.path })
    }
    await rename(part, dest)
  } catch (err) {
    if (err instanceof RetryableDownloadError || err instanceof AppError) throw err
    if (o.signal.aborted) throw o.signal.reason
    throw err
  } finally {
    clearTimeout(timer)
    o.signal.removeEventListener('abort', onAbort)
  }
}
