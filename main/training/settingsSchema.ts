// zod schemas for training requests, generated from the advanced panel's field list (presets.ts), so the ranges the
// UI shows and the ranges main accepts are one list. Semantic problems (learning rate 0, a dataset that is empty,
// a batch that will not fit) are not schema errors: the estimate reports them with a message that says what to do.
import { z } from 'zod'
import type { PresetId, SettingField, TrainingSettings } from '../../preload/contract'
import { PRESETS, SETTING_FIELDS } from './presets'

function fieldSchema(f: SettingField): z.ZodType {
  switch (f.kind) {
    case 'boolean':
      return z.boolean()
    case 'choice':
      return z.enum(f.options!.map((o) => o.value) as [string, ...string[]])
    case 'multi':
      return z
        .array(z.enum(f.options!.map((o) => o.value) as [string, ...string[]]))
        .min(1, 'Choose at least one')
        .refine((a) => new Set(a).size === a.length, 'Each one only once')
    case 'integer':
    case 'number': {
      let n = f.kind === 'integer' ? z.number().int() : z.number()
      n = n.refine(Number.isFinite, 'Must be a finite number') as unknown as typeof n
      if (f.min !== undefined) n = n.min(f.min)
      if (f.max !== undefined) n = n.max(f.max)
      return n
    }
  }
}

const shape: Record<string, z.ZodType> = {}
for (const f of SETTING_FIELDS) shape[f.key] = fieldSchema(f)

/** Changes on top of a preset: every key optional, unknown keys refused. */
export const settingsChangesSchema = z.object(shape).partial().strict() as unknown as z.ZodType<Partial<TrainingSettings>>

export const presetIdSchema = z.enum(PRESETS.map((p) => p.id) as [PresetId, ...PresetId[]])

export const deviceSchema = z.string().regex(/^(cpu|cuda:\d{1,2})$/, 'Use "cpu" or "cuda:<n>", e.g. "cuda:0"')

export const trainingRequestSchema = z
  .object({
    projectId: z.number().int().positive(),
    modelId: z.number().int().positive().optional(),
    preset: presetIdSchema,
    settings: settingsChangesSchema.optional(),
    device: deviceSchema.optional(),
    name: z.string().max(120).optional(),
  })
  .strict()
