import { defineConfig } from 'vitest/config'
import vue from '@vitejs/plugin-vue'

// Two projects: main-process services, the native engine and tools in plain Node (real SQLite files,
// the real addon); renderer stores and components in happy-dom.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'node',
          environment: 'node',
          include: ['tests/main/**/*.test.ts', 'tests/native/**/*.test.ts', 'tests/fixtures/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          pool: 'forks',
          server: { deps: { inline: ['electron-store'] } },
        },
      },
      {
        plugins: [vue()],
        test: {
          name: 'renderer',
          environment: 'happy-dom',
          include: ['tests/renderer/**/*.test.ts'],
        },
      },
    ],
  },
})
