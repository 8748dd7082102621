// Hash history: works the same from file:// (Electron) and http:// (browser mode).
import { createRouter, createWebHashHistory, type RouteRecordRaw } from 'vue-router'
import ProjectsView from './views/ProjectsView.vue'
import DatasetView from './views/DatasetView.vue'
import ModelsView from './views/ModelsView.vue'
import TrainingView from './views/TrainingView.vue'
import ChatView from './views/ChatView.vue'
import SettingsView from './views/SettingsView.vue'

export const routes: RouteRecordRaw[] = [
  { path: '/', redirect: '/dataset' },
  { path: '/projects', name: 'projects', component: ProjectsView },
  { path: '/dataset', name: 'dataset', component: DatasetView },
  { path: '/models', name: 'models', component: ModelsView },
  { path: '/training', name: 'training', component: TrainingView },
  { path: '/chat', name: 'chat', component: ChatView },
  { path: '/settings', name: 'settings', component: SettingsView },
]

export function createAppRouter() {
  return createRouter({ history: createWebHashHistory(), routes })
}
