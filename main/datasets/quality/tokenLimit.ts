// The "over the model's token limit" check of the quality report. Token counts come from the training-set
// compiler's counter (main/datasets/tokenCounts.ts) for the project's chosen model; without a chosen model
// the report says so instead of guessing a tokenizer.
import type { Project, QaPair } from '../../../preload/contract'
import type { TokenStage } from './checkDataset'

export type TokenCounter = (project: Project, rows: QaPair[]) => Promise<TokenStage>

/** Used until a counter is wired in: no model -> 'noModel'; a model -> 'unavailable' with the reason. */
export const noTokenCounter: TokenCounter = async (project) => {
  if (project.modelId === null) return { status: { state: 'noModel' }, over: new Map() }
  return { status: { state: 'unavailable', reason: 'Token counting is not available in this build.' }, over: new Map() }
}
