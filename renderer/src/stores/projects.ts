// Projects and which one is open. The open project is remembered in settings (lastProjectId).
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import type { Language, Project } from '../../../preload/contract'
import { api } from '../api'
import { useAppStore } from './app'

export const useProjectsStore = defineStore('projects', () => {
  const projects = ref<Project[]>([])
  const loaded = ref(false)
  const currentId = ref<number | null>(null)
  const current = computed(() => projects.value.find((p) => p.id === currentId.value) ?? null)

  async function refresh(): Promise<void> {
    projects.value = await api['projects:list']()
    loaded.value = true
    const app = useAppStore()
    const remembered = app.settings?.lastProjectId ?? null
    if (currentId.value === null || !projects.value.some((p) => p.id === currentId.value)) {
      currentId.value = projects.value.some((p) => p.id === remembered) ? remembered : (projects.value[0]?.id ?? null)
    }
  }

  async function select(id: number): Promise<void> {
    currentId.value = id
    await useAppStore().updateSettings({ lastProjectId: id })
  }

  async function create(name: string, language: Language): Promise<Project> {
    const p = await api['projects:create']({ name, language })
    await refresh()
    await select(p.id)
    return p
  }

  async function rename(id: number, name: string): Promise<void> {
    await api['projects:rename']({ id, name })
    await refresh()
  }

  async function remove(id: number): Promise<void> {
    await api['projects:delete']({ id })
    if (currentId.value === id) currentId.value = null
    await refresh()
  }

  api.on('projects:changed', () => void refresh())

  return { projects, loaded, currentId, current, refresh, select, create, rename, remove }
})
