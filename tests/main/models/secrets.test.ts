// The Hugging Face token: stored encrypted (browser mode: AES-256-GCM file, 0600, key outside the data folder or from
// QT_SECRET_KEY; desktop: Electron safeStorage), and never found in settings.json, any file in plain text, any API
// answer, any push event or any log line, even through a gated download that uses it.
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { HubTokenStatus, ModelEntry } from '../../../preload/contract'
import { createSafeStorageSecretStore } from '../../../main/models/secrets/safeStorageSecretStore'
import { createFileSecretStore, SECRETS_FILE } from '../../../main/models/secrets/SecretStore'
import { startFakeHub, type FakeHub } from '../../fixtures/hub/fakeHub'
import { tinyHubFiles } from '../../fixtures/hub/tinyHubRepo'
import { tempDir } from '../../helpers/tempContext'
import { modelsApp, waitFor, type ModelsApp } from './helpers'

const TOKEN = 'hf_SecretTokenValue0123456789abcdef'

let app: ModelsApp | undefined
let hub: FakeHub | undefined
const dirs: string[] = []
afterEach(async () => {
  await app?.cleanup()
  app = undefined
  await hub?.close()
  hub = undefined
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
  vi.restoreAllMocks()
})

function allFiles(dir: string): string[] {
  const out: string[] = []
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...allFiles(p))
    else out.push(p)
  }
  return out
}

describe('the encrypted file store (browser mode)', () => {
  it('round-trips, keeps file and key private, and never writes the token in plain text', () => {
    const dir = tempDir('qt-models-')
    dirs.push(dir)
    const keyFile = join(dir, 'keys', 'secret.key')
    const store = createFileSecretStore({ dir, env: { QT_SECRET_KEY_FILE: keyFile } })
    expect(store.get('t')).toBeNull()
    store.set('t', TOKEN)
    expect(store.get('t')).toBe(TOKEN)
    expect(store.describe()).toEqual({ storage: 'encryptedFile', location: join(dir, SECRETS_FILE), keySource: 'keyFile', keyLocation: keyFile })
    expect(statSync(join(dir, SECRETS_FILE)).mode & 0o777).toBe(0o600)
    expect(statSync(keyFile).mode & 0o777).toBe(0o600)
    for (const f of allFiles(dir)) expect(readFileSync(f, 'utf8')).not.toContain('SecretTokenValue')

    // Another key (the data folder copied elsewhere) cannot read it.
    const other = createFileSecretStore({ dir, env: { QT_SECRET_KEY_FILE: join(dir, 'other.key') } })
    expect(other.get('t')).toBeNull()
    store.delete('t')
    expect(store.get('t')).toBeNull()
  })

  it('derives the key from QT_SECRET_KEY when set', () => {
    const dir = tempDir('qt-models-')
    dirs.push(dir)
    const a = createFileSecretStore({ dir, env: { QT_SECRET_KEY: 'correct horse battery staple' } })
    a.set('t', TOKEN)
    expect(a.describe().keySource).toBe('env')
    expect(createFileSecretStore({ dir, env: { QT_SECRET_KEY: 'correct horse battery staple' } }).get('t')).toBe(TOKEN)
    expect(createFileSecretStore({ dir, env: { QT_SECRET_KEY: 'wrong' } }).get('t')).toBeNull()
  })
})

describe('the safeStorage store (desktop)', () => {
  // Electron's safeStorage stand-in: a reversible transform, as the OS-keyed cipher is to us.
  const fakeSafeStorage = (available = true, backend = 'gnome_libsecret') => ({
    isEncryptionAvailable: () => available,
    getSelectedStorageBackend: () => backend,
    encryptString: (s: string) => Buffer.from(`v10${Buffer.from(s).reverse().toString('base64')}`),
    decryptString: (b: Buffer) => Buffer.from(b.toString().slice(3), 'base64').reverse().toString(),
  })

  it('stores only safeStorage ciphertext in a 0600 file', () => {
    const dir = tempDir('qt-models-')
    dirs.push(dir)
    const store = createSafeStorageSecretStore(fakeSafeStorage(), dir)
    store.set('t', TOKEN)
    expect(store.get('t')).toBe(TOKEN)
    expect(store.describe()).toMatchObject({ storage: 'safeStorage', keySource: 'os' })
    const file = store.describe().location
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect(readFileSync(file, 'utf8')).not.toContain(TOKEN)
  })

  it('falls back to the encrypted file when the OS has no keyring', () => {
    const dir = tempDir('qt-models-')
    dirs.push(dir)
    expect(createSafeStorageSecretStore(fakeSafeStorage(false), dir, { QT_SECRET_KEY: 'x' }).describe().storage).toBe('encryptedFile')
    if (process.platform === 'linux') expect(createSafeStorageSecretStore(fakeSafeStorage(true, 'basic_text'), dir, { QT_SECRET_KEY: 'x' }).describe().storage).toBe('encryptedFile')
  })
})

describe('the token never leaves the secret store', () => {
  it('not in settings.json, files, API answers, events or logs, through a gated download', async () => {
    const logged: string[] = []
    for (const m of ['log', 'info', 'warn', 'error', 'debug'] as const) {
      vi.spyOn(console, m).mockImplementation((...args: unknown[]) => void logged.push(args.map((a) => (a instanceof Error ? `${a.message} ${a.stack}` : typeof a === 'string' ? a : JSON.stringify(a))).join(' ')))
    }
    hub = await startFakeHub({ 'meta-llama/Gated': { files: await tinyHubFiles({}, false), gated: true, allowedTokens: [TOKEN] } }, { knownTokens: [TOKEN] })
    app = modelsApp({ endpoint: hub.url })

    // A malformed token is refused without echoing it.
    const bad = await app.fail('hub:setToken', { token: 'not-a-token-SecretTokenValue' })
    expect(bad.code).toBe('INVALID_ARGUMENT')

    const status = await app.call<HubTokenStatus>('hub:setToken', { token: `  ${TOKEN}  ` })
    expect(status).toMatchObject({ stored: true, storage: 'encryptedFile', endpoint: hub.url })
    const id = (await app.call<ModelEntry>('hub:download', { repoId: 'meta-llama/Gated' })).id
    await waitFor(async () => (await app!.call<ModelEntry>('models:get', { id })).status === 'ready', 20_000, 'download')
    expect(hub.requests.some((r) => r.authorization === `Bearer ${TOKEN}`)).toBe(true)
    await app.call('models:list')
    await app.call('hub:tokenStatus')
    await app.call('settings:set', { language: 'en' })
    await app.call('settings:get')

    const secret = 'SecretTokenValue'
    for (const a of app.answers) expect(a).not.toContain(secret)
    for (const e of app.events) expect(JSON.stringify(e)).not.toContain(secret)
    for (const l of logged) expect(l).not.toContain(secret)
    expect(readFileSync(join(app.dataDir, 'settings.json'), 'utf8')).not.toContain(secret)
    for (const f of allFiles(app.dataDir)) expect(readFileSync(f).includes(secret), f).toBe(false)

    expect((await app.call<HubTokenStatus>('hub:clearToken')).stored).toBe(false)
  })
})
