// vue-i18n setup: zh-TW first, English second. All user-visible text goes through these messages.
import { createI18n } from 'vue-i18n'
import type { Language } from '../../../preload/contract'
import { en } from './en'
import { zhTW } from './zh-TW'

export type Messages = typeof zhTW

export const i18n = createI18n<[Messages], Language, false>({
  legacy: false,
  locale: 'zh-TW',
  fallbackLocale: 'en',
  messages: { 'zh-TW': zhTW, en },
  datetimeFormats: {
    'zh-TW': { short: { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' } },
    en: { short: { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' } },
  },
})

export function setLocale(lang: Language): void {
  i18n.global.locale.value = lang
  document.documentElement.lang = lang
}
