// The self-test's reference answers from the app's own engine, through the engine host that training and chat use:
// the base model loaded with the precision the run trained (and the chat runs) with, the exported adapter applied
// unmerged, greedy decoding until a stop token. It takes the engine like a chat does (BUSY while a run trains).
import type { EngineSupervisor } from '../engine/host/EngineSupervisor'

export interface ReferenceRequest {
  baseDir: string
  adapterDir: string
  device: string
  quant: 'nf4' | 'none'
  prompts: number[][]
  stopIds: number[]
  maxNewTokens: number
  signal?: AbortSignal
}

export async function engineHostAnswers(engine: EngineSupervisor, r: ReferenceRequest): Promise<number[][]> {
  const lease = engine.acquire({ kind: 'chat', sessionId: 'export-self-test', label: 'export self-test' })
  try {
    await engine.call('model.load', { folder: r.baseDir, device: r.device, quant: r.quant }, { signal: r.signal })
    const { adapterId } = await engine.call('adapter.load', { dir: r.adapterDir })
    try {
      const out: number[][] = []
      for (const ids of r.prompts) {
        const res = await engine.call('generate', { promptIds: ids, sampling: { maxNewTokens: r.maxNewTokens, stopIds: r.stopIds, temperature: 0 }, adapterId }, { signal: r.signal })
        out.push(res.tokens)
      }
      return out
    } finally {
      await engine.call('adapter.dispose', { adapterId }).catch(() => undefined)
    }
  } finally {
    lease.release()
  }
}
