import { createApp } from 'vue'
import { createPinia } from 'pinia'
import App from './App.vue'
import { i18n } from './i18n'
import { createAppRouter } from './router'
import './styles/base.css'

createApp(App).use(createPinia()).use(createAppRouter()).use(i18n).mount('#app')
