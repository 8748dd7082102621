// Whether a folder holds a complete PEFT adapter (what a run exports, and every checkpoint folder too).
import { existsSync } from 'node:fs'
import { join } from 'node:path'

export function adapterComplete(dir: string): boolean {
  return existsSync(join(dir, 'adapter_config.json')) && existsSync(join(dir, 'adapter_model.safetensors'))
}
