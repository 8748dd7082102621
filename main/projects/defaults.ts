import type { Language } from '../../preload/contract'

/** The tutorial's system prompt for zh-TW projects (ENGINE_FACTS §1); a plain English one otherwise. */
export const DEFAULT_SYSTEM_PROMPT: Record<Language, string> = {
  'zh-TW': '你是一個zh-tw版本的聊天機器人',
  en: 'You are a helpful assistant. Answer using the company knowledge you were trained on.',
}
