import { resolve } from 'node:path'
import { defineConfig } from 'electron-vite'
import vue from '@vitejs/plugin-vue'

// Three builds: main (Node/Electron main process, plus the plain-Node entries: browser-mode server,
// engine host child process, command-line tools), preload (CommonJS so the renderer can stay sandboxed)
// and renderer (Vue). Dependencies of main stay external (node_modules); the renderer bundles its own.
export default defineConfig({
  main: {
    build: {
      outDir: 'out/main',
      externalizeDeps: true,
      rollupOptions: {
        input: {
          index: resolve(__dirname, 'main/index.ts'),
          serve: resolve(__dirname, 'main/serve.ts'),
          start: resolve(__dirname, 'main/start.ts'),
          engineHost: resolve(__dirname, 'main/engine/host/engineHostMain.ts'),
          finetune: resolve(__dirname, 'main/cli/finetune.ts'),
          exportWorker: resolve(__dirname, 'main/export/exportWorker.ts'),
        },
      },
    },
  },
  preload: {
    build: {
      outDir: 'out/preload',
      externalizeDeps: true,
      rollupOptions: {
        input: { index: resolve(__dirname, 'preload/index.ts') },
        output: { format: 'cjs', entryFileNames: '[name].cjs' },
      },
    },
  },
  renderer: {
    root: resolve(__dirname, 'renderer'),
    build: {
      outDir: resolve(__dirname, 'out/renderer'),
      rollupOptions: { input: resolve(__dirname, 'renderer/index.html') },
    },
    plugins: [vue()],
  },
})
