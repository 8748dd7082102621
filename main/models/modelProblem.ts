// Model problems: every reason a folder or a download cannot be used, as an AppError whose details.problem names
// the case (the UI shows a localized headline per problem and the plain English message with the exact fix).
import type { ErrorCode } from '../../preload/contract'
import { AppError } from '../errors'

export type ModelProblemCode =
  // local folders
  | 'relativePath'
  | 'notFound'
  | 'notFolder'
  | 'gguf'
  | 'noConfig'
  | 'badConfig'
  | 'unsupportedArchitecture'
  | 'quantized'
  | 'binOnly'
  | 'noWeights'
  | 'missingShards'
  | 'badWeights'
  | 'unsupportedDtype'
  | 'noTokenizer'
  | 'badTokenizer'
  | 'vocabMismatch'
  | 'noTemplate'
  // downloads
  | 'gated'
  | 'gatedNoAccess'
  | 'badToken'
  | 'repoNotFound'
  | 'revisionNotFound'
  | 'noSafetensorsOnHub'
  | 'hashMismatch'
  | 'sizeMismatch'
  | 'network'
  | 'diskFull'
  | 'server'

export interface ModelProblemDetails {
  problem: ModelProblemCode
  [key: string]: unknown
}

export function modelProblem(code: ErrorCode, problem: ModelProblemCode, message: string, extra: Record<string, unknown> = {}): AppError {
  return new AppError(code, message, { ...extra, problem } satisfies ModelProblemDetails)
}

export function problemOf(err: unknown): ModelProblemCode | null {
  if (!(err instanceof AppError)) return null
  const d = err.details as { problem?: unknown } | undefined
  return typeof d?.problem === 'string' ? (d.problem as ModelProblemCode) : null
}
