// The engine host's message protocol: main <-> the child process that owns the native engine (and the GPU).
//
//   main -> host   { t: 'req', id, method, params }      call a method (HostMethods below)
//                  { t: 'cancel', id }                    cancel request `id` (a step(k) stops between steps,
//                                                         generation returns its tokens so far, loading stops)
//   host -> main   { t: 'ready', pid, engineVersion, backends }   once, after start
//                  { t: 'event', id, data }               progress of request `id` (HostMethods[m]['event'])
//                  { t: 'res', id, ok: true, value }      the result
//                  { t: 'res', id, ok: false, error }     { code, message, file?, line? } (EngineError codes)
//
// Objects (the model, trainers, adapters) live in the host and are named by numeric handles. One model is
// resident at a time: 'model.load' of another folder/device/precision replaces it (every trainer and adapter
// of the old one is freed). Events of one request arrive in order, before its response.
import type {
  ComputeDtype, DeviceInfo, EngineErrorCode, GenerateResult, LoadProgress, LoraConfig, MemoryReport, ModelConfig, PeftMeta, Quant,
  SamplingConfig, StepMetrics, TrainConfig,
} from '../types'

export interface ModelLoadParams {
  folder: string
  device: string // 'cpu' | 'cuda:<n>'
  quant?: Quant
  doubleQuant?: boolean
  computeDtype?: ComputeDtype
}

export interface ResidentModel extends Required<ModelLoadParams> {
  config: ModelConfig
  memory: MemoryReport
}

export interface TrainerInfo {
  trainerId: number
  /** The adapter being trained (usable for generation between steps). */
  adapterId: number
  stepsPerEpoch: number
  totalSteps: number
  warmupSteps: number
  stepCount: number
}

/** A step's metrics with the engine's memory in use right after it. */
export interface StepEvent extends StepMetrics {
  memoryBytes: number
  deviceTotalBytes: number
}

export interface HostMethods {
  devices: { params: void; result: DeviceInfo[]; event: never }
  /** Loads (or keeps, when the same folder/device/precision is resident) the one model. */
  'model.load': { params: ModelLoadParams; result: ResidentModel & { reused: boolean }; event: LoadProgress }
  'model.unload': { params: void; result: void; event: never }
  'model.status': { params: void; result: ResidentModel | null; event: never }
  'adapter.load': { params: { dir: string }; result: { adapterId: number; config: LoraConfig }; event: never }
  'adapter.dispose': { params: { adapterId: number }; result: void; event: never }
  /** Streams each new token id as an event ({ token }), then resolves with all of them. */
  generate: {
    params: { promptIds: number[]; sampling?: SamplingConfig; adapterId?: number | null }
    result: GenerateResult
    event: { token: number }
  }
  'trainer.create': { params: { config: TrainConfig; trainSet: string }; result: TrainerInfo; event: never }
  /** k optimizer steps; each step's metrics as an event. Cancelled: stops between steps. */
  'trainer.step': { params: { trainerId: number; k: number }; result: { steps: number; cancelled: boolean; stepCount: number }; event: StepEvent }
  'trainer.evaluate': { params: { trainerId: number; set: string }; result: { loss: number }; event: never }
  'trainer.saveCheckpoint': { params: { trainerId: number; dir: string }; result: void; event: never }
  'trainer.loadCheckpoint': { params: { trainerId: number; dir: string }; result: { stepCount: number }; event: never }
  'trainer.exportAdapter': { params: { trainerId: number; dir: string; meta?: PeftMeta }; result: void; event: never }
  /** Frees the optimizer state; the trained adapter stays usable (adapterId) until 'adapter.dispose'. */
  'trainer.dispose': { params: { trainerId: number }; result: void; event: never }
}

export type HostMethod = keyof HostMethods
export type HostParams<M extends HostMethod> = HostMethods[M]['params']
export type HostResult<M extends HostMethod> = HostMethods[M]['result']
export type HostEvent<M extends HostMethod> = HostMethods[M]['event']

export const HOST_METHODS: readonly HostMethod[] = [
  'devices', 'model.load', 'model.unload', 'model.status', 'adapter.load', 'adapter.dispose', 'generate', 'trainer.create', 'trainer.step',
  'trainer.evaluate', 'trainer.saveCheckpoint', 'trainer.loadCheckpoint', 'trainer.exportAdapter', 'trainer.dispose',
]

export interface WireError {
  code: EngineErrorCode | 'HOST_EXITED' | 'UNKNOWN_METHOD'
  message: string
  file?: string
  line?: number
}

export type ToHost = { t: 'req'; id: number; method: string; params: unknown } | { t: 'cancel'; id: number }

export type FromHost =
  | { t: 'ready'; pid: number; engineVersion: string; backends: string[] }
  | { t: 'event'; id: number; data: unknown }
  | { t: 'res'; id: number; ok: true; value: unknown }
  | { t: 'res'; id: number; ok: false; error: WireError }

/** How the host died: exit code and/or signal, and a plain reading of them. */
export interface HostExit {
  code: number | null
  signal: string | null
  reason: string
  /** Methods that were running. */
  during: string | null
  at: string
}

/** Every request pending when the host died rejects with this. */
export class HostExitedError extends Error {
  readonly code = 'HOST_EXITED'
  constructor(readonly exit: HostExit) {
    super(`The engine process stopped unexpectedly: ${exit.reason}`)
    this.name = 'HostExitedError'
  }
}

/** A plain explanation of an exit code / signal. */
export function describeExit(code: number | null, signal: string | null): string {
  if (signal === 'SIGKILL') return 'it was killed (SIGKILL): by hand, or by the system when memory ran out'
  if (signal === 'SIGSEGV' || signal === 'SIGBUS' || signal === 'SIGILL') return `it crashed (${signal}), often a GPU driver fault`
  if (signal === 'SIGABRT' || code === 134) return 'it aborted (out of memory or an internal error)'
  if (signal) return `it was stopped by ${signal}`
  if (code === 3221225477 || code === -1073741819) return 'it crashed (access violation), often a GPU driver fault'
  if (code === 3221225725 || code === -1073741571) return 'it ran out of stack'
  return `it exited with code ${code ?? 'unknown'}`
}
