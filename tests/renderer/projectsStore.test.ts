// The projects store against an in-memory fake of the contract: remembers the open project in settings,
// falls back to the first project when the remembered one is gone.
import { createPinia, setActivePinia } from 'pinia'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import type { Project, Settings } from '../../preload/contract'

const state = vi.hoisted(() => ({
  projects: [] as Project[],
  settings: { language: 'zh-TW', theme: 'light', lastProjectId: null, modelsDir: '', device: 'auto' } as Settings,
  nextId: 1,
}))

vi.mock('../../renderer/src/api', () => {
  const project = (id: number, name: string): Project => ({
    id, name, language: 'zh-TW', systemPrompt: '', modelId: null, createdAt: '2026-01-01T00:00:00Z', updatedAt: '2026-01-01T00:00:00Z', rowCount: 0,
  })
  return {
    api: {
      on: () => () => {},
      'projects:list': async () => [...state.projects],
      'projects:create': async ({ name }: { name: string }) => {
        const p = project(state.nextId++, name)
        state.projects.push(p)
        return p
      },
      'projects:delete': async ({ id }: { id: number }) => {
        state.projects = state.projects.filter((p) => p.id !== id)
      },
      'projects:rename': async ({ id, name }: { id: number; name: string }) => {
        state.projects.find((p) => p.id === id)!.name = name
      },
      'settings:set': async (patch: Partial<Settings>) => (state.settings = { ...state.settings, ...patch }),
      'settings:get': async () => state.settings,
      'app:status': async () => ({ state: 'ready', firstRun: false }),
      'app:info': async () => ({}),
    },
  }
})

const { useProjectsStore } = await import('../../renderer/src/stores/projects')
const { useAppStore } = await import('../../renderer/src/stores/app')

describe('projects store', () => {
  beforeEach(() => {
    setActivePinia(createPinia())
    state.projects = []
    state.nextId = 1
    state.settings = { ...state.settings, lastProjectId: null }
  })

  it('opens a created project and remembers it in settings', async () => {
    await useAppStore().load()
    const store = useProjectsStore()
    await store.create('HR', 'zh-TW')
    await store.create('Support', 'en')
    expect(store.current?.name).toBe('Support')
    expect(state.settings.lastProjectId).toBe(2)
  })

  it('reopens the remembered project, and falls back to the first when it was deleted', async () => {
    state.projects = []
    const store = useProjectsStore()
    await store.create('A', 'zh-TW')
    await store.create('B', 'zh-TW')
    state.settings.lastProjectId = 1
    setActivePinia(createPinia())
    await useAppStore().load()
    const fresh = useProjectsStore()
    await fresh.refresh()
    expect(fresh.current?.name).toBe('A')
    await fresh.remove(1)
    expect(fresh.current?.name).toBe('B')
  })
})
