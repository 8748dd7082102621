// AppError: the one error type that crosses the process boundary with a stable code.
// Anything else thrown inside a handler becomes INTERNAL (its message is kept, the stack is logged).
import type { AppErrorInfo, ErrorCode } from '../preload/contract'

export class AppError extends Error {
  readonly code: ErrorCode
  readonly details?: unknown

  constructor(code: ErrorCode, message: string, details?: unknown) {
    super(message)
    this.name = 'AppError'
    this.code = code
    this.details = details
  }
}

export function toErrorInfo(err: unknown): AppErrorInfo {
  if (err instanceof AppError) {
    return err.details === undefined ? { code: err.code, message: err.message } : { code: err.code, message: err.message, details: err.details }
  }
  if (err && typeof err === 'object' && 'code' in err && typeof (err as { code: unknown }).code === 'string') {
    const code = (err as { code: string }).code
    if (code === 'ENOSPC') return { code: 'DISK_FULL', message: 'The disk is full. Free some space and try again.' }
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
      return { code: 'FORBIDDEN', message: `Permission denied: ${String((err as { message?: unknown }).message ?? code)}` }
    }
  }
  const message = err instanceof Error ? err.message : String(err)
  return { code: 'INTERNAL', message }
}

export function notFound(what: string, id: number | string): AppError {
  return new AppError('NOT_FOUND', `${what} ${id} does not exist (it may have been deleted).`)
}
