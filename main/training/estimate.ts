// training:estimate — what a run would do before it starts: the rows it would use (token counts with the model's
// tokenizer and chat template, the seeded train/validation split), steps, GPU memory against the chosen device
// (fits / tight / will not fit) and time (measured speed of earlier runs of this model on this device, else
// assumed from the model size and the device kind), with every problem found and what to change.
// training:start runs the same checks and refuses when one is an error.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type {
  LocalText, MemoryEstimate, PresetId, SettingProblem, TrainingEstimate, TrainingRequest, TrainingSettings,
} from '../../preload/contract'
import type { AppContext } from '../context'
import { assignValidation } from '../datasets/compiler/split'
import { TrainingSetBuilder } from '../datasets/compiler/buildTrainingSet'
import type { EngineSupervisor } from '../engine/host/EngineSupervisor'
import type { DeviceInfo } from '../engine/types'
import { AppError, notFound } from '../errors'
import { activationLayout, estimateTrainingMemory, linearParameters, type ArchitectureNumbers } from '../models/memoryEstimate'
import { parseModelConfig } from '../models/modelConfig'
import { getModel, type ModelForUse } from '../models/modelRegistry'
import { chatFormatFor } from '../tokenizer/ChatFormat'
import { loadTokenizer } from '../tokenizer/loadTokenizer'
import { presetById, resolveSettings, suggestPreset } from './presets'

const t = (zh: string, en: string): LocalText => ({ 'zh-TW': zh, en })
const GiB = 1024 ** 3
const gb = (b: number) => `${(b / GiB).toFixed(1)} GB`

/** Share of the available memory above which a run is 'tight' (allocator slack, fragmentation, other apps). */
export const TIGHT_FRACTION = 0.85

export interface RowStats {
  enabledRows: number
  /** Token count per usable row (after truncation), with the row ids. */
  lengths: number[]
  ids: number[]
  skipped: number
  skippedByReason: Record<string, number>
  truncated: number
}

/** The rows as the compiler would build them (its own TrainingSetBuilder, in memory): cached per project state,
 *  model and data settings. */
const rowCache = new Map<string, RowStats>()

export async function rowStats(ctx: AppContext, projectId: number, model: ModelForUse, s: TrainingSettings): Promise<RowStats> {
  const repos = ctx.repos()
  const project = repos.projects.get(projectId)
  if (!project) throw notFound('Project', projectId)
  const rows = repos.qaPairs.listEnabled(projectId)
  let h = 7
  for (const r of rows) h = (h * 31 + r.id * 7 + r.question.length * 3 + r.answer.length + Date.parse(r.updatedAt) % 100_000) % 1_000_000_007
  const key = [ctx.databasePath, projectId, rows.length, h, model.path, model.templateChoice, project.systemPrompt, s.maxLength, s.truncation].join('|')
  const cached = rowCache.get(key)
  if (cached) return cached
  const format = chatFormatFor(await loadTokenizer(model.path), model.templateChoice)
  const builder = new TrainingSetBuilder(format, { systemPrompt: project.systemPrompt, trainOn: s.trainOn, maxLength: s.maxLength, truncation: s.truncation })
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]
    builder.add({ id: r.id, question: r.question, answer: r.answer, enabled: true }, i)
    if ((i + 1) % 2000 === 0) await new Promise((done) => setImmediate(done))
  }
  const out: RowStats = { enabledRows: rows.length, lengths: [], ids: [], skipped: builder.problems.length, skippedByReason: {}, truncated: builder.truncatedRowIds.length }
  for (let i = 0; i < builder.store.count; i++) out.lengths.push(builder.store.length(i))
  for (const id of builder.sampleRowIds) out.ids.push(Number(id))
  for (const p of builder.problems) out.skippedByReason[p.reason] = (out.skippedByReason[p.reason] ?? 0) + 1
  if (rowCache.size > 16) rowCache.clear()
  rowCache.set(key, out)
  return out
}

/** Optimizer steps per epoch as the engine batches (rows: fixed row count; tokens: longest-first packing). */
export function stepsPerEpoch(trainLengths: readonly number[], s: TrainingSettings): number {
  if (trainLengths.length === 0) return 0
  let micro: number
  if (s.batching === 'rows') micro = Math.ceil(trainLengths.length / s.batchRows)
  else {
    const sorted = [...trainLengths].sort((a, b) => b - a)
    micro = 0
    let rows = 0
    let longest = 0
    for (const n of sorted) {
      const nl = Math.max(longest, n)
      if (rows > 0 && (rows + 1) * nl > s.tokenBudget) {
        micro++
        rows = 0
        longest = 0
      }
      rows++
      longest = Math.max(longest, n)
    }
    if (rows > 0) micro++
  }
  return Math.ceil(micro / s.gradAccum)
}

/** Tokens (padding included) of the biggest micro-batch: what sizes the activation memory. */
export function microBatchTokens(trainLengths: readonly number[], s: TrainingSettings): number {
  const longest = trainLengths.reduce((m, n) => Math.max(m, n), 0)
  if (s.batching === 'tokens') return Math.max(longest, Math.min(s.tokenBudget, trainLengths.reduce((a, n) => a + n, 0)))
  return Math.min(s.batchRows, Math.max(1, trainLengths.length)) * longest
}

export function architectureOf(model: ModelForUse): ArchitectureNumbers {
  const raw = JSON.parse(readFileSync(join(model.path, 'config.json'), 'utf8')) as unknown
  return parseModelConfig(raw, model.path)
}

/** The engine's memory for this run's settings on this device: the models domain's QLoRA estimate with the engine's
 *  activation layout for the device, the compute dtype, checkpointing and the LoRA targets, and quantization off. */
export function trainingMemory(a: ArchitectureNumbers, s: TrainingSettings, tokens: number, device: Pick<DeviceInfo, 'backend' | 'bf16'>): MemoryEstimate {
  const layout = activationLayout(a, {
    backend: device.backend, bf16Capable: device.bf16, computeDtype: s.computeDtype, gradCheckpointing: s.gradCheckpointing,
    loraTargets: s.loraTargets,
  })
  const est = estimateTrainingMemory(a, {
    tokenBudget: tokens, loraRank: s.loraR, loraTargets: s.loraTargets, layout, mode: s.gradCheckpointing ? 'trainCheckpointed' : 'train',
  })
  const parts = est.parts.map((p) => ({ ...p }))
  if (s.quant === 'none') {
    const w = parts.find((p) => p.key === 'weights')!
    w.bytes = linearParameters(a) * (device.backend === 'cpu' ? 4 : 2)
  }
  return { totalBytes: parts.reduce((x, p) => x + p.bytes, 0), parts, tokens }
}

/** tokens/s we assume before anything was measured: ~6 FLOPs per parameter and token (8 with recomputation) at a
 *  throughput typical of the device kind. CUDA is scaled from the PyTorch reference of ENGINE_FACTS §8 (8B: about
 *  6,400 tokens/s on an H200 for 4 x 512); consumer cards get a third of that. */
export function assumedTokensPerSecond(parameters: number, device: DeviceInfo, gradCheckpointing: boolean): number {
  const flopsPerToken = (gradCheckpointing ? 8 : 6) * Math.max(1, parameters)
  if (device.backend === 'cpu') return 1.5e10 / flopsPerToken
  const bigCard = device.totalBytes >= 40 * GiB
  return (bigCard ? 6400 : 2000) * (8.03e9 / Math.max(1, parameters))
}

export function pickDevice(requested: string | undefined, presetDevice: 'gpu' | 'cpu' | 'any', settingsDevice: string, list: DeviceInfo[]): string {
  if (requested) return requested
  if (presetDevice === 'cpu') return 'cpu'
  if (settingsDevice && settingsDevice !== 'auto') return settingsDevice
  const gpu = list.find((d) => d.backend === 'cuda')
  return gpu ? `cuda:${gpu.index}` : 'cpu'
}

export function deviceId(d: DeviceInfo): string {
  return d.backend === 'cpu' ? 'cpu' : `cuda:${d.index}`
}

export interface EstimateContext {
  ctx: AppContext
  engine: EngineSupervisor
  /** The run that is active now (refuses a second one). */
  activeRunId: number | null
}

export async function estimateTraining(e: EstimateContext, req: TrainingRequest): Promise<TrainingEstimate & { modelForUse: ModelForUse | null; deviceInfo: DeviceInfo | null }> {
  const { ctx } = e
  const repos = ctx.repos()
  const project = repos.projects.get(req.projectId)
  if (!project) throw notFound('Project', req.projectId)
  const preset = presetById(req.preset)
  if (!preset) throw new AppError('INVALID_ARGUMENT', `Unknown preset "${req.preset}". Choose one of tutorial, small, medium, large, demo.`)
  const s = resolveSettings(req.preset, req.settings)
  const problems: SettingProblem[] = []
  const err = (code: SettingProblem['code'], message: LocalText, field?: SettingProblem['field']) => problems.push({ code, severity: 'error', message, ...(field ? { field } : {}) })
  const warn = (code: SettingProblem['code'], message: LocalText, field?: SettingProblem['field']) => problems.push({ code, severity: 'warning', message, ...(field ? { field } : {}) })

  if (e.activeRunId !== null) {
    err('runActive', t(`訓練 #${e.activeRunId} 還在進行中。請等它結束，或先停止它。`, `Run #${e.activeRunId} is still active. Wait until it finishes or stop it first.`))
  }
  const holder = e.engine.holder
  if (holder && holder.kind === 'chat') {
    err('gpuBusy', t(`引擎正被對話「${holder.label}」使用中。請先結束對話再開始訓練。`, `The engine is in use by the chat "${holder.label}". Close the chat before training.`))
  }
  if (!(s.lr > 0)) {
    err('lrZero', t('學習率是 0：模型不會有任何改變。請設成大於 0 的值（教學用 5e-5，小型資料集建議 2e-4）。', 'The learning rate is 0: the model would not change at all. Set it above 0 (the tutorial uses 5e-5; 2e-4 suits small datasets).'), 'lr')
  }

  // The model.
  let model: ModelForUse | null = null
  const modelId = req.modelId ?? project.modelId
  if (modelId === null || modelId === undefined) {
    err('noModel', t('這個專案還沒有選模型。請到「模型」頁選一個（沒有 GPU 可用內建的示範小模型）。', 'This project has no model yet. Choose one on the Models page (without a GPU, use the bundled demo model).'))
  } else {
    try {
      model = getModel(ctx, modelId)
    } catch (x) {
      if (!(x instanceof AppError)) throw x
      err('modelUnusable', t(`模型無法使用：${x.message}`, x.message))
    }
  }

  // Devices (the engine host reports them).
  let devices: DeviceInfo[] = []
  try {
    devices = await e.engine.devices()
  } catch (x) {
    err('engineUnavailable', t(`訓練引擎無法啟動：${(x as Error).message}`, `The training engine cannot start: ${(x as Error).message}`))
  }
  const wanted = pickDevice(req.device, preset.device, ctx.settings.get().device, devices)
  const device = devices.find((d) => deviceId(d) === wanted) ?? null
  if (!device && devices.length > 0) {
    err('deviceMissing', t(`找不到裝置 ${wanted}。可用的有：${devices.map(deviceId).join('、')}。`, `There is no device ${wanted}. Available: ${devices.map(deviceId).join(', ')}.`))
  }

  // The rows.
  let stats: RowStats | null = null
  const enabledRows = repos.qaPairs.listEnabled(req.projectId).length
  if (enabledRows === 0) {
    err('emptyDataset', t('這個專案沒有啟用中的問答。請在資料集編輯器新增或啟用一些問答再訓練。', 'This project has no enabled Q&A rows. Add rows, or enable some, in the dataset editor, then train.'))
  } else if (model) {
    stats = await rowStats(ctx, req.projectId, model, s)
    if (stats.lengths.length === 0) {
      const reasons = Object.entries(stats.skippedByReason).map(([k, n]) => `${k}: ${n}`).join(', ')
      err('allRowsSkipped', t(`啟用中的 ${enabledRows} 筆全部會被略過（${reasons}）。請在資料集編輯器修正這些列${s.truncation === 'skip' ? '，或把「超長時」改為截斷' : ''}。`,
        `All ${enabledRows} enabled rows would be skipped (${reasons}). Fix them in the dataset editor${s.truncation === 'skip' ? ', or set "When too long" to cut' : ''}.`))
    }
  }

  if (stats && stats.lengths.length > 0 && stats.skipped > 0) {
    const reasons = Object.entries(stats.skippedByReason).map(([k, n]) => `${k}: ${n}`).join(', ')
    warn('someRowsSkipped', t(`${stats.skipped} 筆會被略過（${reasons}），其餘 ${stats.lengths.length} 筆會用來訓練。可在資料集編輯器修正。`,
      `${stats.skipped} rows will be left out (${reasons}); the other ${stats.lengths.length} are used. Fix them in the dataset editor.`))
  }
  if (stats && stats.truncated > 0) {
    warn('rowsTruncated', t(`${stats.truncated} 筆超過最大長度 ${s.maxLength}，答案結尾會被截掉。可調高最大長度。`,
      `${stats.truncated} rows are longer than the max length ${s.maxLength}; their answers' ends are cut. Raise the max length to keep them whole.`), 'maxLength')
  }
  const lengths = stats?.lengths ?? []
  const ids = stats?.ids ?? []
  const isVal = assignValidation(ids, s.splitSeed, s.validationFraction)
  const trainLengths = lengths.filter((_, i) => !isVal[i])
  const valRows = lengths.length - trainLengths.length
  if (stats && lengths.length > 0 && trainLengths.length === 0) {
    err('noTrainRows', t('所有可用的列都被分到驗證集了。請把驗證集比例調低。', 'Every usable row went to validation. Lower the validation share.'), 'validationFraction')
  }
  if (stats && lengths.length > 0 && valRows === 0 && (s.earlyStoppingPatience > 0 || s.exportAdapter === 'best')) {
    warn('noValidation', t('沒有驗證資料：無法提早停止，也無法挑出最佳版本，會輸出最後一步的結果。資料多於 1 筆時可把驗證集比例調高。',
      'No validation rows: early stopping and picking the best version need them, so the final step is exported. With more than one row, raise the validation share.'), 'validationFraction')
  }
  const maxTokens = lengths.reduce((m, n) => Math.max(m, n), 0)
  if (s.batching === 'tokens' && maxTokens > s.tokenBudget) {
    err('tokenBudgetTooSmall', t(`每批 token 預算（${s.tokenBudget}）小於最長的一筆（${maxTokens} 個 token）。請把預算調到至少 ${maxTokens}，或調低最大長度。`,
      `The token budget per batch (${s.tokenBudget}) is smaller than the longest row (${maxTokens} tokens). Raise it to at least ${maxTokens} or lower the max length.`), 'tokenBudget')
  }
  const spe = stepsPerEpoch(trainLengths, s)
  const total = spe > 0 ? Math.max(1, Math.round(s.epochs * spe)) : 0
  const warmup = Math.floor(s.warmupEpochs * spe)

  // Memory.
  let memory: TrainingEstimate['memory'] = { estimate: null, availableBytes: null, fit: 'unknown' }
  if (model && device && trainLengths.length > 0) {
    const arch = architectureOf(model)
    const tokens = microBatchTokens(trainLengths, s)
    const est = trainingMemory(arch, s, tokens, device)
    let available = device.freeBytes
    const resident = e.engine.status().model
    if (resident && resident.device === deviceId(device)) {
      try {
        const r = await e.engine.call('model.status', undefined)
        if (r) available += r.memory.weightsBytes + r.memory.loraBytes + r.memory.activationsBytes
      } catch {
        /* the host restarted: nothing resident */
      }
    }
    const fit = est.totalBytes <= available * TIGHT_FRACTION ? 'fits' : est.totalBytes <= available ? 'tight' : 'wontFit'
    memory = { estimate: est, availableBytes: available, fit }
    const where = device.backend === 'cpu' ? t('記憶體', 'RAM') : t(`GPU（${device.name}）`, `the GPU (${device.name})`)
    if (fit === 'wontFit') {
      let hint: LocalText
      const fitsWith = (x: Partial<TrainingSettings>) => trainingMemory(arch, { ...s, ...x }, microBatchTokens(trainLengths, { ...s, ...x }), device).totalBytes <= available * TIGHT_FRACTION
      if (s.batching === 'rows') {
        let rows = s.batchRows - 1
        while (rows >= 1 && !fitsWith({ batchRows: rows })) rows--
        hint = rows >= 1
          ? t(`請把每批筆數調到 ${rows} 以下（可用梯度累積 ${Math.ceil(s.batchRows / rows)} 維持相同效果）。`, `Lower the rows per batch to ${rows} or fewer (gradient accumulation ${Math.ceil(s.batchRows / rows)} keeps the same effective batch).`)
          : t('連每批 1 筆都放不下：請調低最大長度、開啟梯度檢查點與 NF4 量化，或改用較小的模型。', 'Even one row per batch does not fit: lower the max length, turn on gradient checkpointing and NF4, or pick a smaller model.')
      } else {
        let budget = s.tokenBudget
        while (budget > maxTokens && !fitsWith({ tokenBudget: budget })) budget = Math.floor(budget * 0.75)
        hint = budget >= maxTokens && fitsWith({ tokenBudget: budget })
          ? t(`請把每批 token 預算調到 ${budget} 以下。`, `Lower the token budget to ${budget} or less.`)
          : t('連最長的一筆都放不下：請調低最大長度、開啟梯度檢查點與 NF4 量化，或改用較小的模型。', 'Even the longest row alone does not fit: lower the max length, turn on gradient checkpointing and NF4, or pick a smaller model.')
      }
      err('wontFit', {
        'zh-TW': `預估需要 ${gb(est.totalBytes)}，${where['zh-TW']}只有 ${gb(available)} 可用。${hint['zh-TW']}`,
        en: `This needs about ${gb(est.totalBytes)} but ${where.en} has ${gb(available)} available. ${hint.en}`,
      }, s.batching === 'rows' ? 'batchRows' : 'tokenBudget')
    } else if (fit === 'tight') {
      warn('tight', {
        'zh-TW': `預估需要 ${gb(est.totalBytes)}，接近${where['zh-TW']}可用的 ${gb(available)}：可能因記憶體不足而失敗。關掉其他使用 GPU 的程式，或調低批次大小。`,
        en: `This needs about ${gb(est.totalBytes)}, close to the ${gb(available)} ${where.en} has available: it may run out of memory. Close other programs using the GPU or lower the batch size.`,
      })
    }
  }

  // Time.
  let time: TrainingEstimate['time'] = { seconds: null, tokensPerSecond: null, basis: 'unknown', note: t('選好模型與裝置後才能估計時間。', 'Choose a model and a device to estimate the time.') }
  if (model && device && trainLengths.length > 0) {
    const measured = repos.runMetrics.measuredSpeed(model.id, deviceId(device))
    const tps = measured ?? assumedTokensPerSecond(model.details.parameters, device, s.gradCheckpointing)
    const trainTokens = trainLengths.reduce((a, n) => a + n, 0)
    const valTokens = lengths.reduce((a, n) => a + n, 0) - trainTokens
    const evals = valRows > 0 ? Math.ceil(s.epochs) + (s.evalEverySteps > 0 ? Math.floor(total / s.evalEverySteps) : 0) : 0
    const seconds = (s.epochs * trainTokens + (evals * valTokens) / 3) / tps
    time = {
      seconds,
      tokensPerSecond: tps,
      basis: measured !== null ? 'measured' : 'assumed',
      note: measured !== null
        ? t(`依這個模型先前在此裝置上實測的速度（每秒 ${Math.round(tps)} 個 token）。`, `From this model's measured speed on this device in earlier runs (${Math.round(tps)} tokens/s).`)
        : t(`依模型大小與裝置類型推算（約每秒 ${Math.round(tps)} 個 token）；第一次訓練後會改用實測速度。`, `Assumed from the model size and device kind (about ${Math.round(tps)} tokens/s); after a first run the measured speed is used.`),
    }
    if (device.backend === 'cpu' && model.details.parameters > 50e6) {
      warn('slowOnCpu', t(`在 CPU 上訓練 ${(model.details.parameters / 1e9).toFixed(1)}B 參數的模型會非常慢。請使用 NVIDIA GPU。`,
        `Training a ${(model.details.parameters / 1e9).toFixed(1)}B-parameter model on the CPU is very slow. Use an NVIDIA GPU.`))
    }
  }

  const deviceOut = device ? { id: deviceId(device), backend: device.backend, index: device.index, name: device.name, totalBytes: device.totalBytes, freeBytes: device.freeBytes } : null
  const suggested: PresetId = suggestPreset(lengths.length, device?.backend ?? null, model?.source === 'demo')
  return {
    projectId: req.projectId,
    model: model ? { id: model.id, name: model.name } : null,
    device: deviceOut,
    settings: s,
    data: {
      enabledRows,
      usableRows: lengths.length,
      skippedRows: stats?.skipped ?? 0,
      truncatedRows: stats?.truncated ?? 0,
      trainRows: trainLengths.length,
      validationRows: valRows,
      meanTokens: lengths.length ? lengths.reduce((a, n) => a + n, 0) / lengths.length : 0,
      maxTokens,
      trainTokens: trainLengths.reduce((a, n) => a + n, 0),
    },
    steps: { perEpoch: spe, total, warmup },
    memory,
    time,
    problems,
    canStart: !problems.some((p) => p.severity === 'error'),
    suggestedPreset: suggested,
    modelForUse: model,
    deviceInfo: device,
  }
}
