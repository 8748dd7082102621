// Secrets (the Hugging Face access token) behind one small interface, never in settings.json and never logged.
//   Desktop app: Electron's safeStorage (OS keychain / DPAPI / libsecret), safeStorageSecretStore.ts, created by
//                main/index.ts.
//   Browser mode, CLI, tests: createFileSecretStore below: an AES-256-GCM encrypted file (0600) whose key comes from
//                the QT_SECRET_KEY environment variable (a passphrase, scrypt-derived) or from a random 32-byte key
//                file (0600) kept outside the data folder (QT_SECRET_KEY_FILE, default ~/.qa-tuner/secret.key), so a
//                copy of the data folder alone does not reveal the token.
import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import type { HubTokenStatus } from '../../../preload/contract'
import { AppError } from '../../errors'

export type SecretStorageInfo = Pick<HubTokenStatus, 'storage' | 'location' | 'keySource' | 'keyLocation'>

export interface SecretStore {
  describe(): SecretStorageInfo
  get(name: string): string | null
  set(name: string, value: string): void
  delete(name: string): void
}

export const SECRETS_FILE = 'secrets.enc.json'

/** Writes a file only the owner can read, atomically (temporary name, then rename). */
export function writePrivateFile(path: string, data: string | Buffer): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
  const tmp = `${path}.tmp-${process.pid}`
  writeFileSync(tmp, data, { mode: 0o600 })
  chmodSync(tmp, 0o600)
  renameSync(tmp, path)
}

interface EncryptedEntry {
  iv: string
  tag: string
  data: string
}

interface SecretsFile {
  version: 1
  /** scrypt salt when the key is derived from QT_SECRET_KEY. */
  salt: string
  entries: Record<string, EncryptedEntry>
}

export interface FileSecretStoreOptions {
  /** Folder of the encrypted file (the data folder). */
  dir: string
  env?: NodeJS.ProcessEnv
}

export function defaultKeyFile(env: NodeJS.ProcessEnv = process.env): string {
  return env.QT_SECRET_KEY_FILE || join(homedir(), '.qa-tuner', 'secret.key')
}

export function createFileSecretStore(opts: FileSecretStoreOptions): SecretStore {
  const env = opts.env ?? process.env
  const file = join(opts.dir, SECRETS_FILE)
  const passphrase = env.QT_SECRET_KEY && env.QT_SECRET_KEY.length > 0 ? env.QT_SECRET_KEY : null
  const keyFile = defaultKeyFile(env)

  const read = (): SecretsFile => {
    if (!existsSync(file)) return { version: 1, salt: randomBytes(16).toString('base64'), entries: {} }
    try {
      const v = JSON.parse(readFileSync(file, 'utf8')) as SecretsFile
      if (v && v.version === 1 && typeof v.salt === 'string' && v.entries && typeof v.entries === 'object') return v
    } catch {
      /* fall through */
    }
    throw new AppError('INTERNAL', `The secrets file ${file} is damaged. Delete it and enter the Hugging Face token again.`)
  }

  const key = (salt: string, create: boolean): Buffer | null => {
    if (passphrase) return scryptSync(passphrase, Buffer.from(salt, 'base64'), 32)
    if (existsSync(keyFile)) {
      const hex = readFileSync(keyFile, 'utf8').trim()
      if (/^[0-9a-f]{64}$/.test(hex)) return Buffer.from(hex, 'hex')
      throw new AppError('INTERNAL', `The key file ${keyFile} is damaged. Delete it and ${file}, then enter the Hugging Face token again.`)
    }
    if (!create) return null
    const fresh = randomBytes(32)
    writePrivateFile(keyFile, `${fresh.toString('hex')}\n`)
    return fresh
  }

  return {
    describe: () => ({
      storage: 'encryptedFile',
      location: file,
      keySource: passphrase ? 'env' : 'keyFile',
      keyLocation: passphrase ? 'QT_SECRET_KEY' : keyFile,
    }),
    get(name) {
      const f = read()
      const e = f.entries[name]
      if (!e) return null
      const k = key(f.salt, false)
      if (!k) return null
      try {
        const d = createDecipheriv('aes-256-gcm', k, Buffer.from(e.iv, 'base64'))
        d.setAuthTag(Buffer.from(e.tag, 'base64'))
        return Buffer.concat([d.update(Buffer.from(e.data, 'base64')), d.final()]).toString('utf8')
      } catch {
        // Wrong key (QT_SECRET_KEY changed, key file replaced): the secret is unreadable, as if never stored.
        return null
      }
    },
    set(name, value) {
      const f = read()
      const k = key(f.salt, true)
      if (!k) throw new AppError('INTERNAL', `Cannot create the key file ${keyFile}. Set QT_SECRET_KEY_FILE to a writable path or QT_SECRET_KEY to a passphrase.`)
      const iv = randomBytes(12)
      const c = createCipheriv('aes-256-gcm', k, iv)
      const data = Buffer.concat([c.update(value, 'utf8'), c.final()])
      f.entries[name] = { iv: iv.toString('base64'), tag: c.getAuthTag().toString('base64'), data: data.toString('base64') }
      writePrivateFile(file, JSON.stringify(f))
    },
    delete(name) {
      if (!existsSync(file)) return
      const f = read()
      if (!(name in f.entries)) return
      delete f.entries[name]
      writePrivateFile(file, JSON.stringify(f))
    },
  }
}
