// Which LoRA adapters a project's chat can use, and where they are on disk: each finished run's exported adapter
// (runs/<id>/adapter, the best or final weights) and each of its checkpoints (a checkpoint folder is a loadable
// PEFT adapter, FORMATS.md). Runs still training are left out (their GPU is busy anyway), and so are folders that
// are gone from disk.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { ChatAdapterInfo, ChatAdapterOption, ChatAdapterRef, CheckpointInfo, ModelTemplateChoice, TrainingSettings } from '../../preload/contract'
import type { AppContext } from '../context'
import type { RunRow } from '../db/runsRepo'
import { AppError } from '../errors'
import { SUMMARY_FILE, type CompileSummary } from '../datasets/compiler/compileDataset'
import { adapterExists, runLayout } from '../training/runFiles'
import { ACTIVE_STATUSES, storedSettings, storedSummary } from '../training/runView'

export interface ResolvedAdapter {
  ref: NonNullable<ChatAdapterRef>
  dir: string
  info: ChatAdapterInfo
  run: RunRow
  /** The run's settings (model loading precision) and device. */
  settings: TrainingSettings | null
  device: string | null
}

function runOptions(run: RunRow, checkpoints: CheckpointInfo[]): ChatAdapterOption[] {
  if (ACTIVE_STATUSES.includes(run.status) || run.modelId === null) return []
  const out: ChatAdapterOption[] = []
  const summary = storedSummary(run)
  const base = { runId: run.id, runName: run.name, runStatus: run.status, modelId: run.modelId }
  if (summary.adapterDir && adapterExists(summary.adapterDir)) {
    const step = summary.adapterStep ?? run.step
    out.push({
      ...base, checkpointId: null, kind: 'adapter', adapterFrom: summary.adapterFrom, step, epoch: summary.stepsPerEpoch > 0 ? step / summary.stepsPerEpoch : run.epoch,
      valLoss: summary.adapterFrom === 'best' ? run.bestValLoss : null, createdAt: run.endedAt ?? run.createdAt,
    })
  }
  const ckpts = [...checkpoints].sort((a, b) => (a.kind === 'best' ? -1 : b.kind === 'best' ? 1 : b.step - a.step))
  for (const c of ckpts) {
    if (!adapterExists(c.path)) continue
    out.push({ ...base, checkpointId: c.id, kind: c.kind, adapterFrom: null, step: c.step, epoch: c.epoch, valLoss: c.valLoss, createdAt: c.createdAt })
  }
  return out
}

/** The adapters of a project's finished runs: newest run first, its exported adapter before its checkpoints. */
export function adapterOptions(ctx: AppContext, projectId: number): ChatAdapterOption[] {
  const repos = ctx.repos()
  const runs = repos.runs.list(projectId).sort((a, b) => b.id - a.id)
  return runs.flatMap((r) => runOptions(r, repos.checkpoints.list(r.id)))
}

export function adapterInfo(o: ChatAdapterOption): ChatAdapterInfo {
  return { runId: o.runId, runName: o.runName, checkpointId: o.checkpointId, kind: o.kind, adapterFrom: o.adapterFrom, step: o.step }
}

/** Where an adapter reference points; a plain AppError when the run, checkpoint or folder is gone. */
export function resolveAdapter(ctx: AppContext, ref: NonNullable<ChatAdapterRef>): ResolvedAdapter {
  const repos = ctx.repos()
  const run = repos.runs.get(ref.runId)
  if (!run) throw new AppError('NOT_FOUND', `Training run #${ref.runId} no longer exists. Choose another adapter (or the base model).`, { problem: 'adapterMissing' })
  if (ACTIVE_STATUSES.includes(run.status)) {
    throw new AppError('BUSY', `Training run #${run.id} is still running. Its adapter can be used once it has finished.`, { problem: 'runActive' })
  }
  if (run.modelId === null) {
    throw new AppError('NOT_FOUND', `The base model of training run #${run.id} was removed, so its adapter cannot be used. Import the model again or choose another adapter.`, {
      problem: 'adapterMissing',
    })
  }
  const option = runOptions(run, repos.checkpoints.list(run.id)).find((o) => o.checkpointId === ref.checkpointId)
  if (!option) {
    throw new AppError(
      'NOT_FOUND',
      ref.checkpointId === null
        ? `Training run #${run.id} has no exported adapter on disk (it may have stopped before its first step, or the folder was deleted). Choose one of its checkpoints or another run.`
        : `Checkpoint ${ref.checkpointId} of training run #${run.id} is gone (older checkpoints are removed as training goes on). Choose another one.`,
      { problem: 'adapterMissing' },
    )
  }
  const dir = ref.checkpointId === null ? storedSummary(run).adapterDir! : repos.checkpoints.list(run.id).find((c) => c.id === ref.checkpointId)!.path
  const stored = storedSettings(run) as Partial<ReturnType<typeof storedSettings>> | null
  return { ref, dir, info: adapterInfo(option), run, settings: stored?.settings ?? null, device: stored?.device ?? null }
}

/** The compiled training set's summary.json of a run (split row ids, template, stop ids), or null when missing. */
export function runCompileSummary(ctx: AppContext, run: RunRow): CompileSummary | null {
  try {
    return JSON.parse(readFileSync(join(runLayout(ctx.dataDir, run.id).dataDir, SUMMARY_FILE), 'utf8')) as CompileSummary
  } catch {
    return null
  }
}

/** The chat template a run was trained with (from its compile summary), or null when unknown. */
export function runTemplate(ctx: AppContext, run: RunRow): ModelTemplateChoice | null {
  const name = runCompileSummary(ctx, run)?.template?.name
  return name === 'model' || name === 'llama3' || name === 'chatml' ? name : null
}
