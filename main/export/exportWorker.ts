// Entry of the export worker process (built to out/main/exportWorker.js; run from source with `--import tsx`): one
// export per process, so merging and quantizing (seconds of CPU per tensor for an 8B model) and llama.cpp never block
// main, and a crash in a native library never takes the app down. Messages (JSON over the IPC channel):
//   main -> worker   { t: 'start', spec }             run this export
//                    { t: 'cancel' }                  stop; the runner deletes its temporary folder
//                    { t: 'answers', id, ok, value | error }   the app engine's greedy answers for the self-test
//   worker -> main   { t: 'progress', p }
//                    { t: 'engineAnswers', id, prompts }       ask main (which owns the engine host) for them
//                    { t: 'done', result } | { t: 'failed', error }
// It exits when the export ends, and cancels (cleaning up) when main goes away. Started with --quant-worker it is
// instead one of the export's K-quant helper processes (gguf/QuantPool.ts).
import { toErrorInfo } from '../errors'
import { serveQuantRequests } from './gguf/QuantPool'
import type { ExportWorkerToMain, MainToExportWorker } from './exportWorkerProtocol'
import { runExport } from './runExport'

function serveExport(): void {
  const send = (m: ExportWorkerToMain) => {
    if (process.send && process.connected) process.send(m)
  }

  const controller = new AbortController()
  const pendingAnswers = new Map<number, { resolve: (v: number[][]) => void; reject: (e: Error) => void }>()
  let nextId = 1
  let started = false

  process.on('message', (raw: unknown) => {
    const msg = raw as MainToExportWorker
    if (msg.t === 'cancel') controller.abort()
    else if (msg.t === 'answers') {
      const p = pendingAnswers.get(msg.id)
      pendingAnswers.delete(msg.id)
      if (msg.ok) p?.resolve(msg.value)
      else p?.reject(Object.assign(new Error(msg.error.message), { code: msg.error.code }))
    } else if (msg.t === 'start' && !started) {
      started = true
      runExport(msg.spec, {
        signal: controller.signal,
        onProgress: (p) => send({ t: 'progress', p }),
        engineAnswers: (_spec, format, prompts) =>
          new Promise<number[][]>((resolve, reject) => {
            const id = nextId++
            pendingAnswers.set(id, { resolve, reject })
            send({ t: 'engineAnswers', id, prompts: prompts.map((p) => p.ids), stopIds: format.stopIds })
          }),
      })
        .then((result) => send({ t: 'done', result }))
        .catch((err: unknown) => send({ t: 'failed', error: toErrorInfo(err) }))
        .finally(() => {
          process.disconnect?.()
          setTimeout(() => process.exit(0), 100).unref()
        })
    }
  })

  process.on('disconnect', () => {
    controller.abort()
    for (const p of pendingAnswers.values()) p.reject(new Error('The app closed.'))
    pendingAnswers.clear()
    if (!started) process.exit(0)
  })
}

if (process.argv.includes('--quant-worker')) serveQuantRequests()
else serveExport()
