// Settings file for plain Node (browser mode, CLI, tests): `conf` writes settings.json atomically.
import Conf from 'conf'
import { createSettingsStore, type SettingsStore } from './settingsStore'

export function createConfSettings(dataDir: string): SettingsStore {
  const conf = new Conf<Record<string, unknown>>({ cwd: dataDir, configName: 'settings', projectName: 'qa-tuner' })
  return createSettingsStore(conf)
}
