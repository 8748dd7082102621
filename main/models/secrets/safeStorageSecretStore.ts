// The desktop app's secret store: Electron's safeStorage encrypts each secret with a key held by the OS (macOS
// Keychain, Windows DPAPI, libsecret/kwallet on Linux); the ciphertext lives in a 0600 file in the data folder.
// Only main/index.ts creates it and passes Electron's `safeStorage` in, so this file does not import 'electron'.
// Where the OS offers no real key (Linux without a keyring: backend 'basic_text'), it falls back to the encrypted
// file store of browser mode and says so.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { AppError } from '../../errors'
import { createFileSecretStore, writePrivateFile, type SecretStore } from './SecretStore'

/** The part of Electron's safeStorage this store uses. */
export interface SafeStorageLike {
  isEncryptionAvailable(): boolean
  encryptString(plainText: string): Buffer
  decryptString(encrypted: Buffer): string
  getSelectedStorageBackend?(): string
}

export const SAFE_SECRETS_FILE = 'secrets.safestorage.json'

export function createSafeStorageSecretStore(safeStorage: SafeStorageLike, dir: string, env: NodeJS.ProcessEnv = process.env): SecretStore {
  const backend = process.platform === 'linux' ? safeStorage.getSelectedStorageBackend?.() : undefined
  if (!safeStorage.isEncryptionAvailable() || backend === 'basic_text') return createFileSecretStore({ dir, env })
  const file = join(dir, SAFE_SECRETS_FILE)
  const read = (): Record<string, string> => {
    if (!existsSync(file)) return {}
    try {
      const v = JSON.parse(readFileSync(file, 'utf8')) as unknown
      return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, string>) : {}
    } catch {
      throw new AppError('INTERNAL', `The secrets file ${file} is damaged. Delete it and enter the Hugging Face token again.`)
    }
  }
  return {
    describe: () => ({ storage: 'safeStorage', location: file, keySource: 'os', keyLocation: null }),
    get(name) {
      const v = read()[name]
      if (typeof v !== 'string') return null
      try {
        return safeStorage.decryptString(Buffer.from(v, 'base64'))
      } catch {
        return null // encrypted under another OS user or keyring: as if never stored
      }
    },
    set(name, value) {
      const all = read()
      all[name] = safeStorage.encryptString(value).toString('base64')
      writePrivateFile(file, JSON.stringify(all))
    },
    delete(name) {
      const all = read()
      if (!(name in all)) return
      delete all[name]
      writePrivateFile(file, JSON.stringify(all))
    },
  }
}
