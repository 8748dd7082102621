// Hugging Face downloads against the local fake Hub (tests/fixtures/hub), never the internet: only the needed files,
// pinned to the listed commit, verified by size and hash; a dropped connection resumes with a Range request for
// exactly the missing bytes (checked in the server's request log); an app restart resumes too; a damaged file is
// deleted and re-fetched alone on retry; gated repos explain the license and the token; pause, resume, cancel.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { DownloadProgress, ModelEntry } from '../../../preload/contract'
import { MODEL_MARKER } from '../../../main/models/modelRegistry'
import { startFakeHub, type FakeHub } from '../../fixtures/hub/fakeHub'
import { tinyHubFiles, UNWANTED_FILES } from '../../fixtures/hub/tinyHubRepo'
import { modelsApp, waitFor, type ModelsApp } from './helpers'

const GOOD_TOKEN = 'hf_AcceptedLicenseToken1234567890'
const OTHER_TOKEN = 'hf_NotYetApprovedToken0987654321'

let hub: FakeHub
let single: Record<string, Buffer>
let sharded: Record<string, Buffer>
let app: ModelsApp | undefined

beforeAll(async () => {
  single = await tinyHubFiles({ hiddenSize: 64, numLayers: 2 })
  sharded = await tinyHubFiles({ hiddenSize: 64, numLayers: 4, shards: 3 })
})

async function startHub(): Promise<FakeHub> {
  hub = await startFakeHub(
    {
      'acme/tiny-llama': { files: single, pageSize: 4 },
      'acme/tiny-sharded': { files: sharded },
      'meta-llama/Tiny-Gated-Instruct': { files: single, gated: true, allowedTokens: [GOOD_TOKEN] },
      'acme/gpt2-tiny': { files: { ...single, 'config.json': JSON.stringify({ architectures: ['GPT2LMHeadModel'], model_type: 'gpt2' }) } },
      'acme/bin-only': {
        files: Object.fromEntries(Object.entries(single).filter(([k]) => !k.endsWith('.safetensors'))),
      },
    },
    { knownTokens: [GOOD_TOKEN, OTHER_TOKEN] },
  )
  return hub
}

afterEach(async () => {
  await app?.cleanup()
  app = undefined
  await hub?.close()
})
afterAll(async () => {
  await hub?.close()
})

async function waitDone(a: ModelsApp, id: number, status: 'ready' | 'failed' = 'ready'): Promise<ModelEntry> {
  return waitFor(async () => {
    const m = await a.call<ModelEntry>('models:get', { id })
    if (m.status !== 'downloading' && m.status !== status) throw new Error(`download ended ${m.status}: ${m.error?.message}`)
    return m.status === status ? m : null
  }, 30_000, `model ${id} ${status}`)
}

const size = (files: Record<string, Buffer>, name: string): number => files[name].length

describe('a public repo', () => {
  it('downloads only the needed files, pinned and verified, with progress events', async () => {
    await startHub()
    app = modelsApp({ endpoint: hub.url })
    const started = await app.call<ModelEntry>('hub:download', { repoId: ' https://huggingface.co/acme/tiny-llama/tree/main ' })
    expect(started).toMatchObject({ source: 'hub', repoId: 'acme/tiny-llama', status: 'downloading', deleteRemovesFiles: true })
    const done = await waitDone(app, started.id)
    expect(done.details?.architecture).toBe('LlamaForCausalLM')
    expect(done.revision).toMatch(/^[0-9a-f]{40}$/)
    expect(done.error).toBeNull()

    const files = readdirSync(done.path).sort()
    expect(files).toEqual([MODEL_MARKER, 'config.json', 'generation_config.json', 'model.safetensors', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json'].sort())
    for (const f of files.filter((x) => x !== MODEL_MARKER)) expect(readFileSync(join(done.path, f)).equals(single[f])).toBe(true)
    // Never asked for: PyTorch .bin, GGUF, ONNX, original/, consolidated.safetensors, README.
    for (const u of [...UNWANTED_FILES, 'README.md']) expect(hub.requests.some((r) => r.path.includes(encodeURIComponent(u).replace(/%2F/g, '/')) || r.file === u)).toBe(false)
    // Every file fetched from the pinned commit, once; the tree was read page by page (pageSize 4).
    expect(hub.requests.filter((r) => r.path.includes('/resolve/')).every((r) => r.path.includes(`/resolve/${done.revision}/`))).toBe(true)
    expect(hub.fileRequests('model.safetensors')).toHaveLength(1)
    expect(hub.requests.filter((r) => r.path.includes('/tree/')).length).toBeGreaterThan(1)

    const progress = app.events.filter((e) => e.event === 'models:downloadProgress').map((e) => e.payload as DownloadProgress)
    const last = progress[progress.length - 1]
    expect(last).toMatchObject({ modelId: started.id, state: 'done', doneBytes: last.totalBytes, filesDone: 6, filesTotal: 6 })
    expect(last.totalBytes).toBe(files.filter((f) => f !== MODEL_MARKER).reduce((s, f) => s + size(single, f), 0))
    expect(progress.some((p) => p.state === 'downloading' && p.bytesPerSecond > 0)).toBe(true)

    // A second download of the same repo is refused; delete removes the files.
    expect((await app.fail('hub:download', { repoId: 'acme/tiny-llama' })).code).toBe('CONFLICT')
    expect(await app.call('models:delete', { id: done.id })).toEqual({ removedFiles: true })
    expect(existsSync(done.path)).toBe(false)
  })

  it('fetches exactly the shards the index names', async () => {
    await startHub()
    app = modelsApp({ endpoint: hub.url })
    const m = await waitDone(app, (await app.call<ModelEntry>('hub:download', { repoId: 'acme/tiny-sharded' })).id)
    expect(m.details?.weightFiles).toEqual(['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors'])
    expect(hub.fileRequests('consolidated.safetensors')).toHaveLength(0)
  })
})

describe('interruptions', () => {
  it('a dropped connection resumes with a Range request; no byte is fetched twice', async () => {
    await startHub()
    hub.dropAfter('model.safetensors', 70_000, 2)
    app = modelsApp({ endpoint: hub.url })
    const m = await waitDone(app, (await app.call<ModelEntry>('hub:download', { repoId: 'acme/tiny-llama' })).id)
    const reqs = hub.fileRequests('model.safetensors')
    expect(reqs).toHaveLength(3)
    expect(reqs[0].range).toBeNull()
    expect(reqs[0].bytesSent).toBe(70_000)
    expect(reqs[1].range).toBe('bytes=70000-')
    expect(reqs[2].range).toBe('bytes=140000-')
    expect(reqs.reduce((s, r) => s + r.bytesSent, 0)).toBe(size(single, 'model.safetensors'))
    expect(readFileSync(join(m.path, 'model.safetensors')).equals(single['model.safetensors'])).toBe(true)
    expect(app.events.some((e) => e.event === 'models:downloadProgress' && (e.payload as DownloadProgress).state === 'retrying')).toBe(true)
  })

  it('after an app restart the download continues from the partial file', async () => {
    await startHub()
    hub.stallAfter('model.safetensors', 50_000)
    app = modelsApp({ endpoint: hub.url })
    const dataDir = app.dataDir
    const id = (await app.call<ModelEntry>('hub:download', { repoId: 'acme/tiny-llama' })).id
    const dir = (await app.call<ModelEntry>('models:get', { id })).path
    await waitFor(() => existsSync(join(dir, 'model.safetensors.part')) && statSync(join(dir, 'model.safetensors.part')).size === 50_000, 20_000, 'partial file')
    await app.close() // the app quits mid-file
    expect((await import('../../../main/db/openDatabase')).openDatabase(join(dataDir, 'qa-tuner.sqlite')).db.prepare('SELECT status FROM models WHERE id = ?').get(id)).toEqual({ status: 'downloading' })

    const smallBefore = hub.fileRequests('config.json').length
    app = modelsApp({ endpoint: hub.url, dataDir })
    const m = await waitDone(app, id)
    const reqs = hub.fileRequests('model.safetensors')
    expect(reqs).toHaveLength(2)
    expect(reqs[1].range).toBe('bytes=50000-')
    expect(reqs[1].bytesSent).toBe(size(single, 'model.safetensors') - 50_000)
    expect(hub.fileRequests('config.json').length).toBe(smallBefore) // done files are not fetched again
    expect(readFileSync(join(m.path, 'model.safetensors')).equals(single['model.safetensors'])).toBe(true)
  })

  it('a server that ignores Range still ends with the right file', async () => {
    await startHub()
    hub.dropAfter('model.safetensors', 30_000)
    hub.ignoreRange(true)
    app = modelsApp({ endpoint: hub.url })
    const m = await waitDone(app, (await app.call<ModelEntry>('hub:download', { repoId: 'acme/tiny-llama' })).id)
    expect(readFileSync(join(m.path, 'model.safetensors')).equals(single['model.safetensors'])).toBe(true)
  })

  it('too many failed attempts end as a resumable failure', async () => {
    await startHub()
    hub.dropAfter('model.safetensors', 0, 10)
    app = modelsApp({ endpoint: hub.url, service: { maxRetries: 2 } })
    const id = (await app.call<ModelEntry>('hub:download', { repoId: 'acme/tiny-llama' })).id
    const failed = await waitDone(app, id, 'failed')
    expect(failed.error?.code).toBe('NETWORK')
    expect((failed.error?.details as { problem: string }).problem).toBe('network')
    hub.clearFaults()
    await app.call('hub:resume', { modelId: id })
    await waitDone(app, id)
  })

  it('a damaged file is deleted with a clear error; retry fetches only that file', async () => {
    await startHub()
    hub.corrupt('model.safetensors')
    app = modelsApp({ endpoint: hub.url })
    const id = (await app.call<ModelEntry>('hub:download', { repoId: 'acme/tiny-llama' })).id
    const failed = await waitDone(app, id, 'failed')
    expect((failed.error?.details as { problem: string }).problem).toBe('hashMismatch')
    expect(failed.error?.message).toMatch(/model\.safetensors arrived damaged.*deleted.*Retry/)
    expect(existsSync(join(failed.path, 'model.safetensors.part'))).toBe(false)
    expect(existsSync(join(failed.path, 'model.safetensors'))).toBe(false)
    expect(existsSync(join(failed.path, 'config.json'))).toBe(true)

    const configFetches = hub.fileRequests('config.json').length
    await app.call('hub:resume', { modelId: id })
    const m = await waitDone(app, id)
    expect(hub.fileRequests('model.safetensors')).toHaveLength(2)
    expect(hub.fileRequests('config.json')).toHaveLength(configFetches)
    expect(readFileSync(join(m.path, 'model.safetensors')).equals(single['model.safetensors'])).toBe(true)
  })

  it('pause keeps the partial file; resume continues; cancel deletes everything', async () => {
    await startHub()
    hub.stallAfter('model.safetensors', 40_000)
    app = modelsApp({ endpoint: hub.url })
    const id = (await app.call<ModelEntry>('hub:download', { repoId: 'acme/tiny-llama' })).id
    const dir = (await app.call<ModelEntry>('models:get', { id })).path
    await waitFor(() => existsSync(join(dir, 'model.safetensors.part')) && statSync(join(dir, 'model.safetensors.part')).size === 40_000, 20_000, 'partial')
    const paused = await app.call<ModelEntry>('hub:pause', { modelId: id })
    expect(paused).toMatchObject({ status: 'failed', paused: true, error: null })
    expect(statSync(join(dir, 'model.safetensors.part')).size).toBe(40_000)
    await app.call('hub:resume', { modelId: id })
    await waitDone(app, id)
    expect(hub.fileRequests('model.safetensors')[1].range).toBe('bytes=40000-')

    hub.stallAfter('model.safetensors', 10_000)
    const second = (await app.call<ModelEntry>('hub:download', { repoId: 'acme/tiny-sharded' })).id
    const dir2 = (await app.call<ModelEntry>('models:get', { id: second })).path
    await waitFor(() => existsSync(join(dir2, 'config.json')), 20_000, 'started')
    await app.call('hub:cancel', { modelId: second })
    expect(existsSync(dir2)).toBe(false)
    expect((await app.fail('models:get', { id: second })).code).toBe('NOT_FOUND')
  })
})

describe('refusals', () => {
  it('a gated repo without a token explains the license and where to paste the token', async () => {
    await startHub()
    app = modelsApp({ endpoint: hub.url })
    const id = (await app.call<ModelEntry>('hub:download', { repoId: 'meta-llama/Tiny-Gated-Instruct' })).id
    const m = await waitDone(app, id, 'failed')
    const details = m.error?.details as { problem: string; licenseUrl: string; tokensUrl: string }
    expect(m.error?.code).toBe('FORBIDDEN')
    expect(details.problem).toBe('gated')
    expect(details.licenseUrl).toBe(`${hub.url}/meta-llama/Tiny-Gated-Instruct`)
    expect(details.tokensUrl).toBe(`${hub.url}/settings/tokens`)
    expect(m.error?.message).toMatch(/accept the license.*access token.*Paste it/)
    expect(hub.requests.some((r) => r.path.includes('/resolve/'))).toBe(false)
  })

  it('a token without access gets 403 explained; the approved token downloads', async () => {
    await startHub()
    app = modelsApp({ endpoint: hub.url })
    await app.call('hub:setToken', { token: OTHER_TOKEN })
    const id = (await app.call<ModelEntry>('hub:download', { repoId: 'meta-llama/Tiny-Gated-Instruct' })).id
    const m = await waitDone(app, id, 'failed')
    expect((m.error?.details as { problem: string }).problem).toBe('gatedNoAccess')
    expect(m.error?.message).toMatch(/does not have access.*accept the license/)

    await app.call('hub:setToken', { token: GOOD_TOKEN })
    await app.call('hub:resume', { modelId: id })
    const ok = await waitDone(app, id)
    expect(ok.details?.architecture).toBe('LlamaForCausalLM')
    const resolves = hub.requests.filter((r) => r.path.includes('/resolve/') && r.status !== 403)
    expect(resolves.length).toBeGreaterThan(0)
    expect(resolves.every((r) => r.authorization === `Bearer ${GOOD_TOKEN}`)).toBe(true)
  })

  it('an invalid token, an unknown repo, an unsupported architecture and a .bin-only repo', async () => {
    await startHub()
    app = modelsApp({ endpoint: hub.url })
    await app.call('hub:setToken', { token: 'hf_RevokedTokenAAAAAAAAAAAAAAAA' })
    let m = await waitDone(app, (await app.call<ModelEntry>('hub:download', { repoId: 'acme/tiny-llama' })).id, 'failed')
    expect((m.error?.details as { problem: string }).problem).toBe('badToken')
    await app.call('models:delete', { id: m.id })
    await app.call('hub:clearToken')

    m = await waitDone(app, (await app.call<ModelEntry>('hub:download', { repoId: 'acme/no-such-model' })).id, 'failed')
    expect((m.error?.details as { problem: string }).problem).toBe('repoNotFound')

    m = await waitDone(app, (await app.call<ModelEntry>('hub:download', { repoId: 'acme/gpt2-tiny' })).id, 'failed')
    expect((m.error?.details as { problem: string }).problem).toBe('unsupportedArchitecture')
    expect(hub.fileRequests('model.safetensors')).toHaveLength(0) // refused before the weights moved

    m = await waitDone(app, (await app.call<ModelEntry>('hub:download', { repoId: 'acme/bin-only' })).id, 'failed')
    expect((m.error?.details as { problem: string }).problem).toBe('noSafetensorsOnHub')
    expect(m.error?.message).toContain('pytorch_model.bin')

    expect((await app.fail('hub:download', { repoId: 'not a repo' })).details?.problem).toBe('badRepoId')
  })

  it('a full disk is reported before downloading', async () => {
    await startHub()
    app = modelsApp({ endpoint: hub.url })
    const { modelService } = await import('../../../main/models/modelService')
    ;(modelService(app.ctx).downloads as unknown as { opts: { reserveBytes: number } }).opts.reserveBytes = 1e18
    const m = await waitDone(app, (await app.call<ModelEntry>('hub:download', { repoId: 'acme/tiny-llama' })).id, 'failed')
    expect(m.error?.code).toBe('DISK_FULL')
    expect(hub.fileRequests('model.safetensors')).toHaveLength(0)
  })
})
