// Checks options before they reach the native engine, with messages a user can act on. Each function returns
// the object to pass to the addon (only known fields, camelCase) or throws EngineError INVALID_ARGUMENT.
// The engine checks again; these exist so the common mistakes get a clear message from one place.
import {
  EngineError, LORA_TARGETS, type LoadOptions, type LoraOptions, type ModelConfig, type SamplingConfig, type TrainConfig,
} from './types'

function fail(message: string): never {
  throw new EngineError('INVALID_ARGUMENT', message)
}

function isInt(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x)
}

function checkInt(name: string, x: unknown, min: number, max: number, hint = ''): void {
  if (x === undefined) return
  if (!isInt(x) || x < min || x > max) fail(`${name} must be a whole number from ${min} to ${max} (got ${String(x)}).${hint ? ' ' + hint : ''}`)
}

function checkNumber(name: string, x: unknown, ok: (v: number) => boolean, rule: string, hint = ''): void {
  if (x === undefined) return
  if (typeof x !== 'number' || !Number.isFinite(x) || !ok(x)) fail(`${name} must be ${rule} (got ${String(x)}).${hint ? ' ' + hint : ''}`)
}

function checkBool(name: string, x: unknown): void {
  if (x !== undefined && typeof x !== 'boolean') fail(`${name} must be true or false (got ${String(x)}).`)
}

function checkOneOf(name: string, x: unknown, allowed: readonly string[]): void {
  if (x !== undefined && !allowed.includes(x as string)) fail(`${name} must be one of ${allowed.join(', ')} (got ${String(x)}).`)
}

function pick<T extends object>(o: T, keys: (keyof T)[]): Partial<T> {
  const out: Partial<T> = {}
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k]
  return out
}

export function checkLoadOptions(o: LoadOptions): object {
  if (!o || typeof o !== 'object') fail('Load options are required ({ folder: "<model folder>" }).')
  if (typeof o.folder !== 'string' || o.folder.trim() === '') fail('Choose a model folder (a Hugging Face folder with config.json and *.safetensors).')
  if (o.device !== undefined && (typeof o.device !== 'string' || !/^(cpu|cuda:\d+)$/.test(o.device))) {
    fail(`device must be "cpu" or "cuda:<n>" such as "cuda:0" (got ${String(o.device)}).`)
  }
  checkOneOf('quant', o.quant, ['nf4', 'none'])
  checkBool('doubleQuant', o.doubleQuant)
  checkOneOf('computeDtype', o.computeDtype, ['auto', 'bf16', 'fp16', 'fp32'])
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') fail('onProgress must be a function.')
  return pick(o, ['folder', 'device', 'quant', 'doubleQuant', 'computeDtype'])
}

export function checkLora(o: LoraOptions | undefined, prefix = 'LoRA'): object {
  if (o === undefined) return {}
  if (!o || typeof o !== 'object') fail(`${prefix} settings must be an object.`)
  checkInt(`${prefix} rank r`, o.r, 1, 1024, 'Common values are 8 to 64 (the tutorial uses 32).')
  checkNumber(`${prefix} alpha`, o.alpha, (v) => v > 0, 'greater than 0', 'PEFT\'s default is 8.')
  checkNumber(`${prefix} dropout`, o.dropout, (v) => v >= 0 && v < 1, 'from 0 up to (not including) 1', 'The tutorial uses 0.1.')
  if (o.targets !== undefined) {
    if (!Array.isArray(o.targets) || o.targets.length === 0) fail(`${prefix} targets must list at least one of ${LORA_TARGETS.join(', ')}.`)
    for (const t of o.targets) if (!(LORA_TARGETS as readonly string[]).includes(t)) fail(`${prefix} target "${String(t)}" is unknown; choose from ${LORA_TARGETS.join(', ')}.`)
    if (new Set(o.targets).size !== o.targets.length) fail(`${prefix} targets list a module twice.`)
  }
  checkInt(`${prefix} seed`, o.seed, 0, Number.MAX_SAFE_INTEGER)
  return pick(o, ['r', 'alpha', 'dropout', 'targets', 'seed'])
}

/** Checks a training config; totalSteps/warmupSteps may come from epochs via stepsPerEpoch (when known). */
export function checkTrainConfig(c: TrainConfig, stepsPerEpoch?: number): { native: Record<string, unknown>; totalSteps: number; warmupSteps: number } {
  if (!c || typeof c !== 'object') fail('Training settings are required.')
  checkNumber('Learning rate', c.lr, (v) => v > 0 && v <= 1, 'greater than 0 and at most 1', 'The tutorial uses 5e-5.')
  checkNumber('beta1', c.beta1, (v) => v >= 0 && v < 1, 'from 0 up to (not including) 1')
  checkNumber('beta2', c.beta2, (v) => v >= 0 && v < 1, 'from 0 up to (not including) 1')
  checkNumber('eps', c.eps, (v) => v > 0, 'greater than 0')
  checkNumber('Weight decay', c.weightDecay, (v) => v >= 0, '0 or more')
  checkNumber('Max grad norm', c.maxGradNorm, () => true, 'a number (0 or less turns clipping off)')
  checkInt('Gradient accumulation', c.gradAccum, 1, 1024)
  checkOneOf('schedule', c.schedule, ['cosine_with_restarts', 'cosine', 'linear', 'constant'])
  checkNumber('Number of cycles', c.numCycles, (v) => v > 0, 'greater than 0')
  checkBool('tokenBudgetBatching', c.tokenBudgetBatching)
  checkInt('Batch size (rows)', c.batchRows, 1, 65536)
  checkInt('Token budget', c.tokenBudget, 1, 1 << 30)
  checkBool('groupByLength', c.groupByLength)
  checkBool('shuffle', c.shuffle)
  checkInt('Max length', c.maxLength, 0, 1 << 24, '0 uses the training set\'s own longest sample.')
  checkNumber('NEFTune alpha', c.neftuneAlpha, (v) => v >= 0, '0 or more', '0 turns it off; 5 is the common default.')
  checkBool('gradCheckpointing', c.gradCheckpointing)
  checkInt('Seed', c.seed, 0, Number.MAX_SAFE_INTEGER)
  const lora = checkLora(c.lora)

  if (c.totalSteps !== undefined && c.epochs !== undefined) fail('Give the training length as totalSteps or as epochs, not both.')
  if (c.totalSteps === undefined && c.epochs === undefined) fail('Set the training length: totalSteps or epochs.')
  if (c.warmupSteps !== undefined && c.warmupEpochs !== undefined) fail('Give the warmup as warmupSteps or as warmupEpochs, not both.')
  checkInt('Total steps', c.totalSteps, 1, 1e9)
  checkNumber('Epochs', c.epochs, (v) => v > 0, 'greater than 0')
  checkInt('Warmup steps', c.warmupSteps, 0, 1e9)
  checkNumber('Warmup epochs', c.warmupEpochs, (v) => v >= 0, '0 or more')
  const spe = stepsPerEpoch ?? 1
  const totalSteps = c.totalSteps ?? Math.max(1, Math.round((c.epochs as number) * spe))
  const warmupSteps = c.warmupSteps ?? (c.warmupEpochs !== undefined ? Math.floor(c.warmupEpochs * spe) : 0)
  const resolved = stepsPerEpoch !== undefined || (c.totalSteps !== undefined && c.warmupEpochs === undefined)
  if (resolved && warmupSteps > totalSteps) fail(`The warmup (${warmupSteps} steps) is longer than the whole training (${totalSteps} steps).`)

  const native: Record<string, unknown> = pick(c, ['lr', 'beta1', 'beta2', 'eps', 'weightDecay', 'maxGradNorm', 'gradAccum', 'schedule', 'numCycles',
    'tokenBudgetBatching', 'batchRows', 'tokenBudget', 'groupByLength', 'shuffle', 'maxLength', 'neftuneAlpha', 'gradCheckpointing', 'seed'])
  native.lora = lora
  native.totalSteps = totalSteps
  native.warmupSteps = warmupSteps
  return { native, totalSteps, warmupSteps }
}

export function checkIds(name: string, ids: ArrayLike<number>, config: ModelConfig, allowEmpty = false): Int32Array {
  if (!ids || typeof ids !== 'object' || typeof ids.length !== 'number') fail(`${name} must be an array of token ids.`)
  if (!allowEmpty && ids.length === 0) fail(`${name} is empty: give at least one token id.`)
  const out = new Int32Array(ids.length)
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]
    if (!isInt(id) || id < 0 || id >= config.vocabSize) fail(`${name}[${i}] = ${String(id)} is not a token id of this model (0 to ${config.vocabSize - 1}). Was the text encoded with this model's tokenizer?`)
    out[i] = id
  }
  return out
}

export function checkSampling(s: SamplingConfig | undefined, config: ModelConfig): object {
  if (s === undefined) return {}
  if (!s || typeof s !== 'object') fail('Sampling settings must be an object.')
  checkInt('maxNewTokens', s.maxNewTokens, 1, 1 << 20)
  checkNumber('Temperature', s.temperature, (v) => v >= 0, '0 or more', '0 means greedy decoding.')
  checkInt('topK', s.topK, 0, config.vocabSize, '0 turns it off.')
  checkNumber('topP', s.topP, (v) => v > 0 && v <= 1, 'greater than 0 and at most 1', '1 turns it off.')
  checkNumber('Repetition penalty', s.repetitionPenalty, (v) => v > 0, 'greater than 0', '1 turns it off.')
  checkInt('Seed', s.seed, 0, Number.MAX_SAFE_INTEGER)
  const out: Record<string, unknown> = pick(s, ['maxNewTokens', 'temperature', 'topK', 'topP', 'repetitionPenalty', 'seed'])
  if (s.stopIds !== undefined) out.stopIds = Array.from(checkIds('stopIds', s.stopIds, config, true))
  return out
}

export function checkFolder(name: string, folder: unknown): string {
  if (typeof folder !== 'string' || folder.trim() === '') fail(`${name} must be a folder path.`)
  return folder
}
