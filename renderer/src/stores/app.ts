// App-wide state: start-up status (ready or database error), app info and settings.
import { defineStore } from 'pinia'
import { ref } from 'vue'
import type { AppInfo, AppStatus, Settings } from '../../../preload/contract'
import { api } from '../api'
import { setLocale } from '../i18n'

export const useAppStore = defineStore('app', () => {
  const status = ref<AppStatus | null>(null)
  const info = ref<AppInfo | null>(null)
  const settings = ref<Settings | null>(null)
  const loadError = ref<string | null>(null)

  function applySettings(s: Settings): void {
    settings.value = s
    setLocale(s.language)
    const theme = s.theme === 'system' ? (window.matchMedia?.('(prefers-color-scheme: dark)').matches ? 'dark' : 'light') : s.theme
    document.documentElement.dataset.theme = theme
  }

  async function load(): Promise<void> {
    try {
      status.value = await api['app:status']()
      info.value = await api['app:info']()
      applySettings(await api['settings:get']())
    } catch (err) {
      loadError.value = err instanceof Error ? err.message : String(err)
    }
  }

  async function updateSettings(patch: Partial<Settings>): Promise<void> {
    applySettings(await api['settings:set'](patch))
  }

  api.on('settings:changed', applySettings)

  return { status, info, settings, loadError, load, updateSettings }
})
