// An export request (project + run or adapter folder + outputs) turned into a complete ExportSpec: the adapter
// folder (the run's exported adapter, or a checkpoint, which is a loadable PEFT folder too), the base model folder
// and the chat template the run trained with, the system prompt and a few training questions from the dataset
// snapshot the run used, training facts for the READMEs, and the device/precision the app chats with (for the
// self-test's reference answers).
import { join } from 'node:path'
import type { ExportRequest, Run } from '../../preload/contract'
import type { AppContext } from '../context'
import { loadSnapshot } from '../datasets/snapshots'
import { AppError, notFound } from '../errors'
import { getModel } from '../models/modelRegistry'
import { trainingServiceOf } from '../training/trainingHandlers'
import { folderName, type ExportSpec } from './runExport'
import { adapterComplete } from './adapterFolder'

/** Training questions asked by the self-test (default). */
export const DEFAULT_SELF_TEST_QUESTIONS = 5
/** Tokens generated per self-test answer at most. */
export const SELF_TEST_MAX_NEW_TOKENS = 96
/** Leading tokens the two answers must share. */
export const SELF_TEST_COMPARE_TOKENS = 8

export function defaultExportDir(ctx: AppContext): string {
  return join(ctx.dataDir, 'exports')
}

/** n rows spread over the list (first, last and evenly between), in order. */
export function spreadPick<T>(rows: T[], n: number): T[] {
  if (rows.length <= n) return rows
  const idx = new Set<number>()
  for (let i = 0; i < n; i++) idx.add(Math.round((i * (rows.length - 1)) / Math.max(1, n - 1)))
  return [...idx].sort((a, b) => a - b).map((i) => rows[i])
}

function fmt(n: number | null | undefined, digits = 4): string {
  return n === null || n === undefined || !Number.isFinite(n) ? '—' : Number(n.toPrecision(digits)).toString()
}

function trainingFacts(run: Run): [string, string][] {
  const s = run.settings
  const facts: [string, string][] = [
    ['Training run', `${run.name || `run ${run.id}`} (#${run.id}), ${run.status}, ${run.endedAt ?? run.createdAt}`],
    ['Steps', `${run.step} of ${run.totalSteps} (epoch ${fmt(run.epoch, 3)})`],
    ['Optimizer', `AdamW, learning rate ${fmt(s.lr)}, ${s.schedule} schedule, warmup ${fmt(s.warmupEpochs, 3)} epoch, weight decay ${fmt(s.weightDecay)}`],
    ['Batching', s.batching === 'tokens' ? `token budget ${s.tokenBudget}` : `${s.batchRows} rows per batch, gradient accumulation ${s.gradAccum}`],
    ['Base precision in training', s.quant === 'nf4' ? `NF4${s.doubleQuant ? ' + double quantization' : ''}` : '16-bit'],
    ['Regularisation', `LoRA dropout ${s.loraDropout}, NEFTune alpha ${s.neftuneAlpha}`],
    ['Trained on', s.trainOn === 'answers' ? 'answers only' : 'whole conversations'],
  ]
  if (run.bestValLoss !== null) facts.push(['Best validation loss', fmt(run.bestValLoss)])
  if (run.summary.adapterFrom) facts.push(['Adapter', `${run.summary.adapterFrom} (step ${run.summary.adapterStep ?? '—'})`])
  return facts
}

export interface ResolvedExport {
  spec: ExportSpec
  runId: number | null
}

export function resolveExport(ctx: AppContext, req: ExportRequest): ResolvedExport {
  const repos = ctx.repos()
  const project = repos.projects.get(req.projectId)
  if (!project) throw notFound('Project', req.projectId)
  let adapterDir: string
  let modelId: number
  let run: Run | null = null
  let systemPrompt = project.systemPrompt
  let rows: { question: string; answer: string }[] | null = null
  let training: [string, string][] = []
  let device = 'cpu'
  let quant: 'nf4' | 'none' = 'nf4'

  if ('runId' in req.source) {
    const detail = trainingServiceOf(ctx).get(req.source.runId)
    if (detail.projectId !== req.projectId) throw notFound('Run', req.source.runId)
    run = detail
    if (detail.modelId === null) throw new AppError('NOT_FOUND', `The base model of run #${detail.id} was removed from the app. Import it again, then export.`)
    modelId = detail.modelId
    if (req.source.checkpointId !== undefined) {
      const cp = detail.checkpoints.find((c) => c.id === (req.source as { checkpointId: number }).checkpointId)
      if (!cp) throw notFound('Checkpoint', req.source.checkpointId)
      adapterDir = cp.path
    } else if (detail.summary.adapterDir && adapterComplete(detail.summary.adapterDir)) {
      adapterDir = detail.summary.adapterDir
    } else {
      const best = detail.checkpoints.find((c) => c.kind === 'best') ?? [...detail.checkpoints].sort((a, b) => b.step - a.step)[0]
      if (!best) {
        throw new AppError('NOT_FOUND', `Run #${detail.id} has no trained adapter yet (${detail.status}). Export a run that has finished, or one with a checkpoint.`)
      }
      adapterDir = best.path
    }
    if (!adapterComplete(adapterDir)) {
      throw new AppError('NOT_FOUND', `The adapter of run #${detail.id} is missing or incomplete (${adapterDir}). It may have been deleted; train again or pick a checkpoint.`)
    }
    if (detail.snapshotId !== null) {
      try {
        const snap = loadSnapshot(repos, detail.snapshotId)
        systemPrompt = snap.snapshot.systemPrompt
        rows = snap.rows.map((r) => ({ question: r.question, answer: r.answer }))
      } catch {
        /* the snapshot is gone: use the project's current prompt and rows */
      }
    }
    training = trainingFacts(detail)
    device = detail.device || 'cpu'
    quant = detail.settings.quant
  } else {
    adapterDir = req.source.adapterDir
    modelId = req.source.modelId
    if (!adapterComplete(adapterDir)) {
      throw new AppError('NOT_FOUND', `${adapterDir} is not a LoRA adapter folder (it needs adapter_config.json and adapter_model.safetensors).`)
    }
  }

  const model = getModel(ctx, modelId)
  const row = repos.models.get(modelId)
  if (rows === null) rows = repos.qaPairs.listEnabled(req.projectId).map((r) => ({ question: r.question, answer: r.answer }))
  const usable = rows.filter((r) => r.question.trim() !== '' && r.answer.trim() !== '')
  const n = Math.max(1, Math.min(20, req.selfTest?.questions ?? DEFAULT_SELF_TEST_QUESTIONS))
  const name = folderName(req.name?.trim() || `${project.name} - ${run ? run.name || `run ${run.id}` : 'adapter'} - ${new Date().toISOString().slice(0, 10)}`)
  const spec: ExportSpec = {
    name,
    destDir: req.destDir?.trim() || defaultExportDir(ctx),
    base: { dir: model.path, name: model.name, repoId: row?.repoId ?? null },
    adapterDir,
    template: model.templateChoice,
    systemPrompt,
    training,
    outputs: { adapter: req.outputs.adapter, merged: req.outputs.merged, gguf: req.outputs.gguf },
    selfTest:
      req.outputs.gguf && req.selfTest?.enabled !== false && usable.length > 0
        ? {
            questions: spreadPick(usable, n).map((r) => ({ question: r.question, reference: r.answer })),
            maxNewTokens: SELF_TEST_MAX_NEW_TOKENS,
            compareTokens: SELF_TEST_COMPARE_TOKENS,
            device,
            quant,
          }
        : null,
  }
  return { spec, runId: run?.id ?? null }
}
