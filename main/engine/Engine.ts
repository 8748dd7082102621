// The engine's entry points: what is compiled in, which devices exist, model/training-set inspection and
// model loading. Plain Node (no Electron): used by the engine host, the CLI and the tests.
import { Model } from './Model'
import { addon, native, nativeSync, Operations } from './native'
import { EngineError, type DatasetInfo, type DeviceInfo, type LoadOptions, type ModelInspection } from './types'
import { checkFolder, checkLoadOptions } from './validate'

/** The engine build's version string. */
export function engineVersion(): string {
  return addon().version
}

/** Backends compiled into the addon: ['cpu'] or ['cpu', 'cuda']. */
export function backends(): string[] {
  return nativeSync(() => addon().backends())
}

/** The CPU first, then each CUDA device (async: the first CUDA query can take a while). */
export function devices(): Promise<DeviceInfo[]> {
  return native(addon().devices())
}

/** Reads config.json and the safetensors headers of a model folder (no weights). */
export async function inspectModel(folder: string): Promise<ModelInspection> {
  return native(addon().inspectModel(checkFolder('Model folder', folder)))
}

/** Counts of a training-set file (*.qtds, native/engine/FORMATS.md). */
export async function inspectDataset(path: string): Promise<DatasetInfo> {
  if (typeof path !== 'string' || path.trim() === '') throw new EngineError('INVALID_ARGUMENT', 'Choose a training-set file (*.qtds).')
  return native(addon().inspectDataset(path))
}

/** Loads a Hugging Face model folder onto a device (NF4-quantized by default). Cancel with options.signal. */
export async function loadModel(options: LoadOptions): Promise<Model> {
  const opts = checkLoadOptions(options)
  const ops = new Operations()
  const onProgress = options.onProgress
  const handle = await ops.run(options.signal, (token) => addon().loadModel(opts, onProgress, token))
  return new Model(handle)
}
