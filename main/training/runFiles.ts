// A run's folder: <data dir>/runs/<id>/
//   data/train.qtds, data/val.qtds, data/summary.json   the compiled training set (compileDataset)
//   checkpoints/step-00000120, checkpoints/epoch-0003   resumable engine checkpoints (atomic folders, FORMATS.md)
//   checkpoints/best                                    the checkpoint with the lowest validation loss
//   adapter/                                            the exported PEFT adapter (best or final)
//   run.json                                            settings, summary and verdict (written atomically)
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { writeFileAtomic } from '../datasets/compiler/writeFileAtomic'

export interface RunLayout {
  root: string
  dataDir: string
  trainSet: string
  valSet: string
  checkpoints: string
  best: string
  adapter: string
  runJson: string
}

export function runLayout(dataDir: string, runId: number): RunLayout {
  const root = join(dataDir, 'runs', String(runId))
  const data = join(root, 'data')
  const checkpoints = join(root, 'checkpoints')
  return {
    root,
    dataDir: data,
    trainSet: join(data, 'train.qtds'),
    valSet: join(data, 'val.qtds'),
    checkpoints,
    best: join(checkpoints, 'best'),
    adapter: join(root, 'adapter'),
    runJson: join(root, 'run.json'),
  }
}

export function checkpointDir(layout: RunLayout, kind: 'step' | 'epoch', n: number): string {
  return join(layout.checkpoints, kind === 'step' ? `step-${String(n).padStart(8, '0')}` : `epoch-${String(n).padStart(4, '0')}`)
}

/** The optimizer step a checkpoint folder holds (its trainer_state.json), or null when it is missing or unreadable. */
export function checkpointStep(dir: string): number | null {
  try {
    const state = JSON.parse(readFileSync(join(dir, 'trainer_state.json'), 'utf8')) as { step?: unknown; format?: unknown }
    return state.format === 'qatuner-checkpoint' && typeof state.step === 'number' && Number.isInteger(state.step) ? state.step : null
  } catch {
    return null
  }
}

export function adapterExists(dir: string): boolean {
  return existsSync(join(dir, 'adapter_config.json')) && existsSync(join(dir, 'adapter_model.safetensors'))
}

/** JSON written to a temporary name, flushed, then renamed: never half-written. */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, [`${JSON.stringify(value, null, 2)}\n`])
}
