// The engine host child process and its supervisor, for the training service and for chat: typed requests with
// ordered events, cancel, errors with codes, one resident model, generation with streamed tokens through a
// loaded adapter, crash detection (exit code/signal, what was running) and restart on the next call, the GPU hold.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { EngineStatus } from '../../../preload/contract'
import { EngineSupervisor } from '../../../main/engine/host/EngineSupervisor'
import { forkHost, type HostProcess } from '../../../main/engine/host/HostProcess'
import { describeExit, HostExitedError } from '../../../main/engine/host/protocol'
import { EngineError } from '../../../main/engine/types'
import { compileDataset } from '../../../main/datasets/compiler/compileDataset'
import { chatFormatFor } from '../../../main/tokenizer/ChatFormat'
import { loadTokenizer } from '../../../main/tokenizer/loadTokenizer'
import { tempDir } from '../../helpers/tempContext'
import { QA_ROWS, tinyModel } from '../training/helpers'
import { join } from 'node:path'
import { rmSync } from 'node:fs'

let sup: EngineSupervisor
const statuses: EngineStatus[] = []
let folder: string
const scratch = tempDir('qt-host-')

beforeAll(async () => {
  folder = await tinyModel()
  sup = new EngineSupervisor(forkHost(), { onStatus: (s) => statuses.push(s), log: () => {} })
})
afterAll(async () => {
  await sup.close()
  rmSync(scratch, { recursive: true, force: true })
})

describe('engine host supervisor', () => {
  it('starts the host on first use, reports devices and status', async () => {
    expect(sup.status().host.state).toBe('stopped')
    const devices = await sup.devices()
    expect(devices[0]).toMatchObject({ backend: 'cpu', index: 0 })
    const s = sup.status()
    expect(s.host.state).toBe('ready')
    expect(s.host.pid).toBeGreaterThan(0)
    expect(s.host.pid).not.toBe(process.pid)
    expect(s.backends).toContain('cpu')
    expect(statuses.map((x) => x.host.state)).toContain('starting')
  })

  it('engine errors come back as EngineError with the engine\'s code; unknown methods are refused', async () => {
    const err = await sup.call('model.load', { folder: join(scratch, 'nope'), device: 'cpu' }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(EngineError)
    expect((err as EngineError).code).toMatch(/NOT_FOUND|IO|BAD_FILE/)
    const bad = await sup.call('trainer.step' as never, { trainerId: 999, k: 1 } as never).catch((e: unknown) => e)
    expect((bad as EngineError).code).toBe('DISPOSED')
    const unknown = await (sup as unknown as { call(m: string, p: unknown): Promise<unknown> }).call('format.disk', {}).catch((e: unknown) => e)
    expect((unknown as EngineError).message).toMatch(/Unknown engine host method: format.disk/)
  })

  it('loads one resident model (reused when identical), trains, and generates through an adapter with streamed tokens (the chat path)', async () => {
    const progress: number[] = []
    const m = await sup.call('model.load', { folder, device: 'cpu', quant: 'none' }, { onEvent: (p) => progress.push(p.fraction) })
    expect(m.reused).toBe(false)
    expect(m.config.numLayers).toBe(2)
    expect(progress.length).toBeGreaterThan(0)
    expect(sup.status().model).toEqual({ folder, device: 'cpu' })
    expect((await sup.call('model.load', { folder, device: 'cpu', quant: 'none' })).reused).toBe(true)

    const rows = QA_ROWS.slice(0, 4).map(([question, answer], i) => ({ id: i + 1, question, answer, enabled: true }))
    await compileDataset(rows, { modelDir: folder, outDir: join(scratch, 'data'), systemPrompt: '', validationFraction: 0 })
    const t = await sup.call('trainer.create', {
      config: { lora: { r: 8, alpha: 16, dropout: 0, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] }, lr: 1e-2, schedule: 'constant', totalSteps: 60, batchRows: 4, neftuneAlpha: 0 },
      trainSet: join(scratch, 'data', 'train.qtds'),
    })
    const steps: number[] = []
    const r = await sup.call('trainer.step', { trainerId: t.trainerId, k: 60 }, { onEvent: (s) => steps.push(s.step) })
    expect(r).toEqual({ steps: 60, cancelled: false, stepCount: 60 })
    expect(steps).toEqual(Array.from({ length: 60 }, (_, i) => i + 1)) // every step once, in order, before the answer
    const adapterDir = join(scratch, 'adapter')
    await sup.call('trainer.exportAdapter', { trainerId: t.trainerId, dir: adapterDir })
    await sup.call('trainer.dispose', { trainerId: t.trainerId })
    await sup.call('adapter.dispose', { adapterId: t.adapterId })

    // Chat: hold the engine, load the adapter, generate greedily with streamed tokens.
    const lease = sup.acquire({ kind: 'chat', sessionId: 's1', label: 'HR chat' })
    expect(sup.status().holder).toEqual({ kind: 'chat', sessionId: 's1', label: 'HR chat' })
    const { adapterId } = await sup.call('adapter.load', { dir: adapterDir })
    const format = chatFormatFor(await loadTokenizer(folder), 'model')
    const { ids } = format.encode([{ role: 'user', content: QA_ROWS[0][0] }], { addGenerationPrompt: true })
    const streamed: number[] = []
    const out = await sup.call('generate', { promptIds: Array.from(ids), sampling: { maxNewTokens: 40, stopIds: format.stopIds }, adapterId }, { onEvent: ({ token }) => streamed.push(token) })
    expect(streamed).toEqual(out.tokens)
    expect(out.finish).toBe('stop')
    expect(format.tokenizer.decode(out.tokens, { skipSpecialTokens: true })).toBe(QA_ROWS[0][1])

    // Cancel: an aborted generation returns what it has.
    const ac = new AbortController()
    const cancelled = await sup.call('generate', { promptIds: Array.from(ids), sampling: { maxNewTokens: 100000, temperature: 1, seed: 3 }, adapterId }, {
      signal: ac.signal,
      onEvent: ({ token }) => {
        if (token >= 0) ac.abort()
      },
    })
    expect(cancelled.finish).toBe('cancelled')
    expect(cancelled.tokens.length).toBeLessThan(100000)

    // While chat holds the engine, training cannot take it (and is told who has it).
    expect(() => sup.acquire({ kind: 'training', runId: 7 })).toThrow(/in use by the chat "HR chat"/)
    lease.release()
    expect(sup.status().holder).toBeNull()
    const training = sup.acquire({ kind: 'training', runId: 7 })
    expect(() => sup.acquire({ kind: 'chat', sessionId: 's2', label: 'x' })).toThrow(/in use by training run #7/)
    training.release()
    await sup.call('adapter.dispose', { adapterId })
  })

  it('a host killed mid-request: the request rejects with the exit reason, status says what was running, the next call restarts it', async () => {
    const pid = sup.pid!
    const pending = sup.call('generate', { promptIds: [1, 2, 3], sampling: { maxNewTokens: 1_000_000, temperature: 1 } }, {
      onEvent: () => {
        if (sup.pid === pid) process.kill(pid, 'SIGKILL')
      },
    })
    const err = await pending.catch((e: unknown) => e)
    expect(err).toBeInstanceOf(HostExitedError)
    expect((err as HostExitedError).exit).toMatchObject({ signal: 'SIGKILL', during: 'generate' })
    expect((err as Error).message).toMatch(/killed \(SIGKILL\)/)
    const s = sup.status()
    expect(s.host.state).toBe('crashed')
    expect(s.model).toBeNull()
    expect(s.host.lastExit?.during).toBe('generate')
    const restartsBefore = s.host.restarts
    expect((await sup.devices(0))[0].backend).toBe('cpu')
    expect(sup.status().host.state).toBe('ready')
    expect(sup.status().host.restarts).toBe(restartsBefore + 1)
    expect(sup.pid).not.toBe(pid)
    expect(await sup.call('model.status', undefined)).toBeNull() // a fresh host: nothing resident
  })

  it('a host that exits with a code: the code is reported in words', () => {
    expect(describeExit(134, null)).toMatch(/aborted/)
    expect(describeExit(null, 'SIGSEGV')).toMatch(/driver fault/)
    expect(describeExit(3221225477, null)).toMatch(/access violation/)
    expect(describeExit(7, null)).toBe('it exited with code 7')
  })

  it('a host that cannot start rejects calls with ENGINE_UNAVAILABLE and the supervisor stays usable', async () => {
    let exitListener: ((c: number | null, s: string | null) => void) | null = null
    const broken: HostProcess = {
      pid: 123456,
      send: () => {},
      onMessage: () => {},
      onExit: (l) => {
        exitListener = l
        setTimeout(() => exitListener?.(1, null), 10)
      },
      kill: () => {},
    }
    const s = new EngineSupervisor(() => broken, { log: () => {} })
    const err = await s.call('devices', undefined).catch((e: unknown) => e)
    expect((err as EngineError).code).toBe('ENGINE_UNAVAILABLE')
    expect((err as Error).message).toMatch(/stopped while starting: it exited with code 1/)
    expect(s.status().host.state).toBe('crashed')
    await s.close()
  })
})
