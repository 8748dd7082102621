// Runs as the contract shows them, from the runs row and its JSON columns (whose shapes this file owns):
//   settings_json = { settings: TrainingSettings, device: 'cpu' | 'cuda:<n>' }
//   summary_json  = RunSummary + { stepsPerEpoch }
//   error         = AppErrorInfo
import type { AppErrorInfo, CheckpointInfo, Run, RunDetail, RunStatus, RunSummary, TrainingSettings } from '../../preload/contract'
import type { Repos } from '../db/repos'
import type { RunRow } from '../db/runsRepo'

export const ACTIVE_STATUSES: readonly RunStatus[] = ['queued', 'preparing', 'loading', 'training', 'evaluating']
export const RESUMABLE_STATUSES: readonly RunStatus[] = ['stopped', 'failed', 'interrupted']

export interface StoredSettings {
  settings: TrainingSettings
  device: string
}

/** Besides the public summary: steps per epoch, and the process that runs (or last ran) it. */
export type StoredSummary = RunSummary & { stepsPerEpoch: number; ownerPid?: number }

export function emptySummary(): StoredSummary {
  return {
    stopReason: null, verdict: null, adapterDir: null, adapterFrom: null, adapterStep: null, bestStep: null, data: null, trainSeconds: 0,
    meanTokensPerSecond: null, peakMemoryBytes: null, resumeOffered: false, resumes: 0, stepsPerEpoch: 0,
  }
}

export function storedSettings(row: RunRow): StoredSettings {
  return row.settings as unknown as StoredSettings
}

export function storedSummary(row: RunRow): StoredSummary {
  return { ...emptySummary(), ...(row.summary as Partial<StoredSummary>) }
}

export function toRun(row: RunRow, checkpoints: CheckpointInfo[]): Run {
  const s = storedSettings(row)
  const summary = storedSummary(row)
  const { stepsPerEpoch, ownerPid: _owner, ...publicSummary } = summary
  const resumable = RESUMABLE_STATUSES.includes(row.status) && row.modelId !== null
  const latest = checkpoints.reduce((m, c) => Math.max(m, c.step), 0)
  return {
    id: row.id,
    projectId: row.projectId,
    modelId: row.modelId,
    modelName: row.modelName,
    snapshotId: row.snapshotId,
    name: row.name,
    status: row.status,
    preset: row.preset,
    device: s.device ?? '',
    settings: s.settings,
    outputDir: row.outputDir,
    error: (row.error as AppErrorInfo | null) ?? null,
    step: row.step,
    totalSteps: row.totalSteps,
    stepsPerEpoch,
    epoch: row.epoch,
    bestValLoss: row.bestValLoss,
    lastTrainLoss: row.lastTrainLoss,
    summary: publicSummary,
    active: ACTIVE_STATUSES.includes(row.status),
    resumable,
    resumeFromStep: resumable ? latest : null,
    createdAt: row.createdAt,
    startedAt: row.startedAt,
    endedAt: row.endedAt,
  }
}

export function runView(repos: Repos, row: RunRow): Run {
  return toRun(row, repos.checkpoints.list(row.id))
}

export function runDetail(repos: Repos, row: RunRow): RunDetail {
  const checkpoints = repos.checkpoints.list(row.id)
  return { ...toRun(row, checkpoints), checkpoints }
}
