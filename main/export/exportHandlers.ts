// export:* channels. Arguments are validated here (paths must be absolute; names cannot climb out of the folder);
// the work is in ExportService.ts (one per app context, cancelled when the context closes).
import { isAbsolute } from 'node:path'
import { z } from 'zod'
import type { ExportRequest } from '../../preload/contract'
import type { AppContext } from '../context'
import type { Handlers } from '../handlerTypes'
import { perContext } from '../perContext'
import { ExportService, type ExportServiceOptions } from './ExportService'

type ExportChannels = 'export:estimate' | 'export:start' | 'export:cancel' | 'export:jobs'

/** The context's export service (options apply to the first call). */
export const exportServiceOf = perContext(
  (ctx, options?: ExportServiceOptions) => new ExportService(ctx, options),
  (svc, ctx) => ctx.onClose(() => svc.close()),
)

const id = z.number().int().positive()
const absolutePath = z
  .string()
  .trim()
  .min(1)
  .max(4096)
  .refine((p) => isAbsolute(p), 'Give the full path of the folder (for example /home/me/exports or C:\\exports).')

export const exportRequestSchema: z.ZodType<ExportRequest> = z
  .object({
    projectId: id,
    source: z.union([
      z.object({ runId: id, checkpointId: id.optional() }).strict(),
      z.object({ adapterDir: absolutePath, modelId: id }).strict(),
    ]),
    destDir: absolutePath.optional(),
    name: z
      .string()
      .trim()
      .max(120)
      .refine((n) => !/[\\/]/.test(n) && n !== '.' && n !== '..', 'The export name cannot contain / or \\.')
      .optional(),
    outputs: z
      .object({ adapter: z.boolean(), merged: z.boolean(), gguf: z.enum(['F16', 'BF16', 'Q8_0', 'Q4_K_M', 'F32']).nullable() })
      .strict()
      .refine((o) => o.adapter || o.merged || o.gguf !== null, 'Choose at least one thing to export.'),
    selfTest: z.object({ enabled: z.boolean(), questions: z.number().int().min(1).max(20).optional() }).strict().optional(),
  })
  .strict()

export function exportHandlers(ctx: AppContext): Pick<Handlers, ExportChannels> {
  const svc = () => exportServiceOf(ctx)
  return {
    'export:estimate': { schema: exportRequestSchema, handle: (req) => svc().estimate(req) },
    'export:start': { schema: exportRequestSchema, handle: (req) => svc().start(req) },
    'export:cancel': { schema: z.object({ jobId: z.string().uuid() }).strict(), handle: ({ jobId }) => svc().cancel(jobId) },
    'export:jobs': { schema: z.object({ projectId: id.optional() }).strict(), handle: ({ projectId }) => svc().list(projectId) },
  }
}
