// Talking to the Hugging Face Hub (or any server that answers like it: QT_HF_ENDPOINT, a mirror, the tests' fake
// Hub): the repo's commit and gating (modelInfo), its file listing with sizes and LFS sha256 (listFiles, the tree
// API), which files a fine-tune needs, and the Hub's errors as plain problems (gated, bad token, not found).
// The access token is only ever put in an Authorization header; it never appears in a message or a log.
import { HubApiError, listFiles, modelInfo } from '@huggingface/hub'
import type { AppError } from '../../errors'
import { modelProblem } from '../modelProblem'

export const DEFAULT_HUB_ENDPOINT = 'https://huggingface.co'

/** The Hub base URL: QT_HF_ENDPOINT, else HF_ENDPOINT (as the Python tools use), else huggingface.co. */
export function hubEndpoint(env: NodeJS.ProcessEnv = process.env): string {
  const v = (env.QT_HF_ENDPOINT || env.HF_ENDPOINT || DEFAULT_HUB_ENDPOINT).trim()
  return v.replace(/\/+$/, '')
}

/** owner/name as the Hub allows them. */
export const REPO_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}\/[A-Za-z0-9_.][A-Za-z0-9_.-]{0,95}$/

export function isRepoId(s: string): boolean {
  return REPO_ID_PATTERN.test(s) && !s.includes('..') && !s.includes('--')
}

/** A pasted URL (https://huggingface.co/org/name/tree/main) or "org/name" -> "org/name". */
export function normalizeRepoId(input: string): string {
  let s = input.trim()
  const m = /^https?:\/\/[^/]+\/([^/?#]+\/[^/?#]+)/.exec(s)
  if (m) s = m[1]
  return s.replace(/\/+$/, '')
}

export interface HubFile {
  path: string
  size: number
  /** sha256 of the content (LFS files: lfs.oid). */
  sha256: string | null
  /** git blob sha1 (small files stored in git). */
  gitOid: string | null
}

const SMALL_FILES = new Set([
  'config.json',
  'generation_config.json',
  'special_tokens_map.json',
  'chat_template.jinja',
  'chat_template.json',
  'model.safetensors.index.json',
])

/** Top-level files a fine-tune needs: configs, tokenizer files, chat template, safetensors weights + index. */
export function isWantedFile(path: string): boolean {
  if (path.includes('/')) return false // original/ (Meta's .pth), onnx/, gguf folders ...
  if (SMALL_FILES.has(path)) return true
  if (/^tokenizer[^/]*\.(json|model)$/.test(path)) return true
  return path.endsWith('.safetensors') && !/^(consolidated|adapter_)/.test(path)
}

/** The weights to fetch: the shards the index names, else model.safetensors, else every top-level safetensors file. */
export function selectWeightFiles(all: HubFile[], index: { weight_map?: Record<string, unknown> } | null): HubFile[] {
  const safetensors = all.filter((f) => isWantedFile(f.path) && f.path.endsWith('.safetensors'))
  if (index?.weight_map) {
    const names = new Set(Object.values(index.weight_map).filter((v): v is string => typeof v === 'string'))
    return safetensors.filter((f) => names.has(f.path))
  }
  const single = safetensors.find((f) => f.path === 'model.safetensors')
  return single ? [single] : safetensors
}

export interface HubContext {
  endpoint: string
  repoId: string
  token: string | null
}

/** A problem for an HTTP error answer of the Hub. `errorCode` is its X-Error-Code header. */
export function hubHttpProblem(status: number, errorCode: string | null, serverMessage: string, c: HubContext, file?: string): AppError {
  const repoUrl = `${c.endpoint}/${c.repoId}`
  const tokensUrl = `${c.endpoint}/settings/tokens`
  const what = file ? `${file} of ${c.repoId}` : c.repoId
  if (errorCode === 'GatedRepo' || (status === 401 && !c.token && errorCode !== 'RepoNotFound')) {
    if (!c.token) {
      return modelProblem(
        'FORBIDDEN',
        'gated',
        `${c.repoId} is a gated model: its license must be accepted before downloading. 1) Open ${repoUrl}, log in and accept the license (Meta and some others review the request; wait for the approval e-mail). ` +
          `2) Create an access token with "Read" permission at ${tokensUrl}. 3) Paste it into "Hugging Face access token" on this page, then press Retry.`,
        { status, licenseUrl: repoUrl, tokensUrl, hasToken: false },
      )
    }
    return modelProblem(
      'FORBIDDEN',
      'gatedNoAccess',
      `Your Hugging Face account does not have access to ${c.repoId} yet. Open ${repoUrl} while logged in with the account the token belongs to, accept the license (or wait until the request is approved), then press Retry. ` +
        `If you accepted it with another account, create a token for that account at ${tokensUrl}.`,
      { status, licenseUrl: repoUrl, tokensUrl, hasToken: true },
    )
  }
  if (errorCode === 'RepoNotFound' || (status === 404 && !file)) {
    return modelProblem(
      'NOT_FOUND',
      'repoNotFound',
      `${c.repoId} was not found on ${c.endpoint}. Check the spelling (owner/name, as in the address ${repoUrl}).` +
        (c.token ? ' If it is a private repo, the saved token must belong to an account that can see it.' : ' If it is a private repo, paste an access token first.'),
      { status, repoUrl },
    )
  }
  if (errorCode === 'RevisionNotFound') {
    return modelProblem('NOT_FOUND', 'revisionNotFound', `${c.repoId} has no such branch, tag or commit. Leave the revision empty to download the main branch.`, { status })
  }
  if (status === 401) {
    return modelProblem(
      'FORBIDDEN',
      'badToken',
      `${c.endpoint} refused the saved access token (it is invalid, expired or was revoked). Create a new token at ${tokensUrl}, paste it on this page, then press Retry.`,
      { status, tokensUrl },
    )
  }
  if (status === 403) {
    return modelProblem('FORBIDDEN', 'gatedNoAccess', `${c.endpoint} does not allow downloading ${what} (HTTP 403${serverMessage ? `: ${serverMessage}` : ''}). Open ${repoUrl} to check its license terms, then press Retry.`, {
      status,
      licenseUrl: repoUrl,
      tokensUrl,
      hasToken: c.token !== null,
    })
  }
  if (status === 404) {
    return modelProblem('NOT_FOUND', 'server', `${what} is no longer on the server (HTTP 404). The repo changed while downloading: cancel and download it again.`, { status })
  }
  return modelProblem('NETWORK', 'server', `The Hugging Face server answered HTTP ${status} for ${what}${serverMessage ? ` (${serverMessage.slice(0, 200)})` : ''}. Try again later.`, {
    status,
    retryable: status >= 500 || status === 429,
  })
}

export function networkProblem(err: unknown, c: HubContext): AppError {
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause
  const why = cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err))
  return modelProblem('NETWORK', 'network', `Cannot reach ${c.endpoint} (${why}). Check the internet connection (or the QT_HF_ENDPOINT / proxy setting), then press Retry: the download resumes where it stopped.`, {
    retryable: true,
  })
}

export interface RepoListing {
  /** Commit the listing (and every download) is pinned to. */
  revision: string
  gated: boolean
  files: HubFile[]
  /** Files the repo has that a fine-tune does not use (for the summary). */
  skipped: string[]
}

/** Commit, gating and the top-level file listing of a model repo. */
export async function listRepo(c: HubContext, revision = 'main', signal?: AbortSignal): Promise<RepoListing> {
  let lastErrorCode: string | null = null
  // Keeps the X-Error-Code header of failed answers (HubApiError only keeps the status and body); cancellable.
  const recordingFetch: typeof fetch = async (input, init) => {
    const res = await fetch(input, { ...init, signal })
    if (!res.ok) lastErrorCode = res.headers.get('x-error-code')
    return res
  }
  const creds = c.token ? { accessToken: c.token } : {}
  const toProblem = (err: unknown): AppError => {
    if (err instanceof HubApiError) {
      const data = err.data as { error?: unknown; message?: unknown } | undefined
      const msg = typeof data?.error === 'string' ? data.error : typeof data?.message === 'string' ? data.message : ''
      return hubHttpProblem(err.statusCode, lastErrorCode, msg, c)
    }
    if (err instanceof TypeError && /access token/i.test(err.message)) {
      return modelProblem('INVALID_ARGUMENT', 'badToken', 'The saved Hugging Face token is not a valid token (it must start with "hf_"). Paste it again.', {})
    }
    return networkProblem(err, c)
  }
  let info: { sha?: string; gated?: unknown }
  try {
    info = await modelInfo({ name: c.repoId, hubUrl: c.endpoint, revision, additionalFields: ['sha'], fetch: recordingFetch, ...creds })
  } catch (err) {
    throw toProblem(err)
  }
  const sha = typeof info.sha === 'string' && /^[0-9a-f]{40}$/.test(info.sha) ? info.sha : revision
  const files: HubFile[] = []
  const skipped: string[] = []
  try {
    for await (const e of listFiles({ repo: { type: 'model', name: c.repoId }, revision: sha, recursive: false, hubUrl: c.endpoint, fetch: recordingFetch, ...creds })) {
      if (e.type !== 'file') continue
      if (!isWantedFile(e.path)) {
        skipped.push(e.path)
        continue
      }
      files.push({ path: e.path, size: e.lfs?.size ?? e.size, sha256: e.lfs?.oid ?? null, gitOid: e.lfs ? null : (e.oid ?? null) })
    }
  } catch (err) {
    throw toProblem(err)
  }
  return { revision: sha, gated: info.gated !== false && info.gated !== undefined && info.gated !== null, files, skipped }
}

/** The URL of one file at a commit. */
export function resolveUrl(c: HubContext, revision: string, path: string): string {
  return `${c.endpoint}/${c.repoId}/resolve/${encodeURIComponent(revision)}/${path.split('/').map(encodeURIComponent).join('/')}`
}
