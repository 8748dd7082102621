// The data folder when none is given: the same folder Electron uses as userData for "QA Tuner", so the
// desktop app and browser mode see the same projects.
import { homedir } from 'node:os'
import { join } from 'node:path'

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): string {
  const home = homedir()
  if (platform === 'win32') return join(env.APPDATA ?? join(home, 'AppData', 'Roaming'), 'QA Tuner')
  if (platform === 'darwin') return join(home, 'Library', 'Application Support', 'QA Tuner')
  return join(env.XDG_CONFIG_HOME ?? join(home, '.config'), 'QA Tuner')
}
