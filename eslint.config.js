import tseslint from 'typescript-eslint'
import pluginVue from 'eslint-plugin-vue'

export default tseslint.config(
  { ignores: ['.scratch*/**', 'out/**', 'dist/**', 'node_modules/**', 'native/build/**', 'test-results/**', 'playwright-report/**'] },
  ...tseslint.configs.recommended,
  ...pluginVue.configs['flat/recommended'],
  {
    files: ['**/*.vue'],
    languageOptions: { parserOptions: { parser: tseslint.parser } },
  },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'vue/max-attributes-per-line': 'off',
      'vue/singleline-html-element-content-newline': 'off',
      'vue/html-self-closing': 'off',
      'vue/multi-word-component-names': 'error',
      // Only main/index.ts, main/window.ts and main/ipc.ts may import 'electron'.
      'no-restricted-imports': ['error', { paths: [{ name: 'electron', message: "Only main/index.ts, main/window.ts, main/ipc.ts and preload/index.ts import 'electron'." }] }],
    },
  },
  {
    files: ['main/index.ts', 'main/window.ts', 'main/ipc.ts', 'preload/index.ts', 'main/engine/host/utilityHost.ts', 'tests/**'],
    rules: { 'no-restricted-imports': 'off' },
  },
)
