// The one typed contract between the renderer and the main process.
//
// Every request/response channel (`domain:verb`) and every push event (`domain:event`) is declared
// here once. main/ipc.ts (Electron) and main/server.ts (browser mode) serve it; preload/index.ts and
// renderer/src/api.ts consume it. The renderer imports this file with `import type` only; preload and
// main also read the runtime channel lists at the bottom.
//
// Requests return a `Result`: transports never throw across the process boundary, the client turns
// `{ ok: false }` into a thrown `ApiError` with a stable `code`.

// ---------------------------------------------------------------------------------------------
// Shared value types
// ---------------------------------------------------------------------------------------------

export type Language = 'zh-TW' | 'en'

export type ErrorCode =
  | 'UNKNOWN_CHANNEL'
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'FORBIDDEN'
  | 'DB_CORRUPT'
  | 'DB_TOO_NEW'
  | 'DB_UNAVAILABLE'
  | 'IMPORT_FAILED'
  | 'ENGINE_ERROR'
  | 'OUT_OF_MEMORY'
  | 'BUSY'
  | 'CANCELLED'
  | 'DISK_FULL'
  | 'NETWORK'
  | 'UNSUPPORTED'
  | 'INTERNAL'

/** A failure that crossed the process boundary. `message` is plain language for the user. */
export interface AppErrorInfo {
  code: ErrorCode
  message: string
  /** Optional structured detail (field issues, paths, ...). */
  details?: unknown
}

export type Result<T> = { ok: true; value: T } | { ok: false; error: AppErrorInfo }

export interface AppInfo {
  name: string
  version: string
  /** 'electron' when running in the desktop shell, 'browser' in browser mode. */
  mode: 'electron' | 'browser'
  platform: string
  dataDir: string
  databasePath: string
  /** Engine backends compiled into the native addon, e.g. ['cpu', 'cuda']. */
  engineBackends: string[]
}

/** Start-up state. When the database cannot be opened the app shows an error page instead of the shell. */
export type AppStatus =
  | { state: 'ready'; firstRun: boolean }
  | { state: 'database-error'; code: 'DB_CORRUPT' | 'DB_TOO_NEW' | 'DB_UNAVAILABLE'; message: string; path: string }

export interface Settings {
  language: Language
  theme: 'system' | 'light' | 'dark'
  lastProjectId: number | null
  /** Folder where downloaded and imported models are kept (empty = inside the data directory). */
  modelsDir: string
  /** Preferred engine device: 'auto' picks the first CUDA GPU, else the CPU. */
  device: 'auto' | 'cpu' | `cuda:${number}`
}

export interface Project {
  id: number
  name: string
  language: Language
  systemPrompt: string
  modelId: number | null
  createdAt: string
  updatedAt: string
  /** Number of Q&A rows (all, enabled or not). */
  rowCount: number
}

export interface QaPair {
  id: number
  projectId: number
  question: string
  answer: string
  category: string
  enabled: boolean
  position: number
  createdAt: string
  updatedAt: string
}

// ---------------------------------------------------------------------------------------------
// Dataset editor (rows, undo history, quality checks, import/export, snapshots)
// ---------------------------------------------------------------------------------------------

/** The editable fields of a row. */
export interface QaFields {
  question: string
  answer: string
  category: string
  enabled: boolean
}

/** What an undoable step did (shown as "Undo: <label>"). */
export type EditLabel = 'edit' | 'insert' | 'delete' | 'paste' | 'clear' | 'toggle' | 'import' | 'convert'

export interface EditHistory {
  canUndo: boolean
  canRedo: boolean
  undoLabel: EditLabel | null
  redoLabel: EditLabel | null
}

/** The answer to every row mutation: rows inserted or changed (their new state), ids removed, the history. */
export interface RowsMutation {
  upserted: QaPair[]
  deletedIds: number[]
  history: EditHistory
  /** For undo/redo: the step that was undone or redone (null when there was nothing to do). */
  label: EditLabel | null
}

export type IssueCode =
  | 'emptyQuestion'
  | 'emptyAnswer'
  | 'duplicate'
  | 'sameQuestion'
  | 'nearDuplicate'
  | 'overTokenLimit'
  | 'controlToken'
  | 'simplifiedChinese'
  | 'nationalId'
  | 'phone'
  | 'email'

export interface RowIssue {
  code: IssueCode
  severity: 'error' | 'warning'
  field?: 'question' | 'answer' | 'category'
  /** Short evidence: the control token, the simplified characters, a masked ID, "612 / 512" tokens... */
  detail?: string
  /** The other row of a duplicate pair. */
  relatedId?: number
}

export type TokenLimitStatus =
  | { state: 'noModel' }
  | { state: 'unavailable'; reason: string }
  | { state: 'checked'; modelName: string; limit: number; overCount: number; maxTokens: number }

export interface QualityReport {
  projectId: number
  /** Rows checked (enabled rows; disabled rows are parked and not checked). */
  checkedRows: number
  disabledRows: number
  rowsWithProblems: number
  errorRows: number
  warningRows: number
  byCode: Partial<Record<IssueCode, number>>
  tokenLimit: TokenLimitStatus
  /** Only rows that have issues. */
  rows: { id: number; issues: RowIssue[] }[]
  durationMs: number
}

export type ImportFormat = 'csv' | 'tsv' | 'xlsx' | 'jsonl' | 'json'
export type ImportEncoding = 'auto' | 'utf-8' | 'big5' | 'gbk' | 'utf-16le' | 'utf-16be'

/** Column index (0-based) of each field in the file's table, or null when the file has no such column. */
export interface ImportMapping {
  question: number | null
  answer: number | null
  category: number | null
  enabled: number | null
}

export interface ImportOptions {
  encoding?: ImportEncoding
  /** XLSX: the sheet to read (default: the first sheet with data). */
  sheet?: string
  /** Override the header detection. */
  hasHeader?: boolean
  /** Skip rows whose question or answer is empty (default true). */
  skipIncomplete?: boolean
  /** Skip rows identical to an existing row or to an earlier row of the file (default true). */
  skipDuplicates?: boolean
  /** 'append' (default) adds after the existing rows; 'replace' replaces them all (one undoable step). */
  mode?: 'append' | 'replace'
}

/** A problem that makes the whole file unusable: nothing is imported. */
export interface ImportProblem {
  code: 'empty' | 'binary' | 'badQuote' | 'fieldCount' | 'badJson' | 'badXlsx' | 'oldXls' | 'tooLarge' | 'noRows' | 'unmapped' | 'unknownShape'
  /** 1-based line (CSV/JSONL), row (XLSX) or item (JSON array) number, when it applies. */
  line?: number
  detail?: string
}

export type SkipReason =
  | 'blank'
  | 'emptyQuestion'
  | 'emptyAnswer'
  | 'duplicateInFile'
  | 'duplicateExisting'
  | 'tooLong'
  | 'multiTurn'
  | 'unknownShape'

export interface ImportPreview {
  fileName: string
  format: ImportFormat
  /** Detected (or chosen) text encoding; null for XLSX. */
  encoding: string | null
  /** XLSX: all sheet names and the one read. */
  sheets: string[] | null
  sheet: string | null
  /** JSONL/JSON: which record shape was recognised. */
  shape: 'table' | 'qa' | 'messages' | 'alpaca' | null
  hasHeader: boolean
  columns: string[]
  sampleRows: string[][]
  totalRecords: number
  mapping: ImportMapping
  /** True when the columns were recognised by name (e.g. question/answer): the file imports without a mapping step. */
  autoMapped: boolean
  /** How line numbers count: CSV/JSONL lines, XLSX rows, JSON array items. */
  lineKind: 'line' | 'row' | 'item'
  problems: ImportProblem[]
}

export interface ImportReport {
  /** False: the file was refused and nothing changed (see problems). */
  ok: boolean
  fileName: string
  format: ImportFormat | null
  encoding: string | null
  lineKind: 'line' | 'row' | 'item'
  added: number
  /** Rows removed first (mode 'replace'). */
  replaced: number
  skipped: number
  skippedByReason: Partial<Record<SkipReason, number>>
  /** The first skipped rows with their line numbers (at most 500). */
  skippedRows: { line: number; reason: SkipReason; detail?: string }[]
  problems: ImportProblem[]
  durationMs: number
  history: EditHistory | null
}

export type ExportFormat = 'csv' | 'xlsx' | 'jsonl'

export interface ExportedFile {
  fileName: string
  mimeType: string
  dataBase64: string
  rowCount: number
}

export interface DatasetSnapshot {
  id: number
  projectId: number
  /** sha256 (hex) of the snapshot's canonical serialisation (system prompt + enabled rows in order). */
  contentHash: string
  rowCount: number
  systemPrompt: string
  createdAt: string
  /** Training runs that used this snapshot. */
  runs: { id: number; name: string; status: string; createdAt: string }[]
}

export interface SnapshotRow {
  id: number
  question: string
  answer: string
  category: string
}

export interface SnapshotDiff {
  snapshot: DatasetSnapshot
  systemPromptChanged: boolean
  currentSystemPrompt: string
  /** Enabled rows now that were not in the snapshot. */
  added: SnapshotRow[]
  /** Rows of the snapshot that are gone now, or disabled (`disabled: true`). */
  removed: (SnapshotRow & { disabled: boolean })[]
  modified: { id: number; before: SnapshotRow; after: SnapshotRow }[]
  unchanged: number
}

// ---------------------------------------------------------------------------------------------
// Models: local folders, Hugging Face downloads, the bundled demo model
// ---------------------------------------------------------------------------------------------

export type ModelSource = 'local' | 'hub' | 'demo'
export type ModelStatus = 'ready' | 'downloading' | 'failed'
/** Chat template used for training and chat: the model's own, or a built-in one. */
export type ModelTemplateChoice = 'model' | 'llama3' | 'chatml'

/** GPU memory estimate, by part (main/models/memoryEstimate.ts documents each formula). */
export interface MemoryEstimate {
  totalBytes: number
  parts: { key: 'weights' | 'embeddings' | 'lora' | 'activations' | 'kvCache' | 'overhead'; bytes: number }[]
  /** Training: the token budget per micro-batch; chat: the context length. */
  tokens: number
}

export interface ModelDetails {
  architecture: string
  family: 'llama' | 'mistral' | 'qwen2'
  parameters: number
  /** max_position_embeddings. */
  contextLength: number
  /** Stored dtype of the weights (BF16, F16, F32). */
  dtype: string
  hiddenSize: number
  numLayers: number
  numHeads: number
  numKvHeads: number
  intermediateSize: number
  vocabSize: number
  tieEmbeddings: boolean
  /** rope_scaling type ('llama3', 'linear', ...) or null. */
  ropeScaling: string | null
  weightFiles: string[]
  weightBytes: number
  tokenizer: { vocabSize: number; bos: string | null; eos: string | null }
  template: {
    /** File holding the model's own chat template, or null when it ships none. */
    modelTemplateFile: string | null
    /** Whether the model's own template is usable (renders a Q&A and ends answers with a control token). */
    modelTemplateUsable: boolean
    /** Built-in templates whose control tokens this tokenizer has. */
    suggested: ('llama3' | 'chatml')[]
    /** The template training and chat use; null when none fits. */
    choice: ModelTemplateChoice | null
    warnings: string[]
  }
  memory: { training: MemoryEstimate; chat: MemoryEstimate }
}

export interface DownloadProgress {
  modelId: number
  repoId: string
  state: 'starting' | 'downloading' | 'retrying' | 'verifying' | 'done' | 'failed' | 'paused' | 'cancelled'
  totalBytes: number
  doneBytes: number
  bytesPerSecond: number
  /** Seconds left at the current speed; null when unknown. */
  etaSeconds: number | null
  /** The file being fetched. */
  file: string | null
  filesDone: number
  filesTotal: number
}

export interface ModelEntry {
  id: number
  name: string
  source: ModelSource
  path: string
  repoId: string | null
  revision: string | null
  architecture: string
  /** Bytes on disk (the folder's files). */
  sizeBytes: number
  status: ModelStatus
  addedAt: string
  /** Null while downloading or when the folder could not be read. */
  details: ModelDetails | null
  /** Progress of a running (or the last) download. */
  download: DownloadProgress | null
  /** Why the model failed or cannot be used (details.problem names the case). */
  error: AppErrorInfo | null
  /** A download the user paused (status 'failed', resumable). */
  paused: boolean
  /** The folder is gone or unreadable (moved, deleted, drive not mounted). */
  missing: boolean
  /** True: delete removes the files (downloads, the demo); false: it only unregisters an imported folder. */
  deleteRemovesFiles: boolean
  /** Projects that use this model. */
  usedByProjects: number
}

/** A folder checked before import. */
export interface ModelFolderReport {
  path: string
  suggestedName: string
  sizeBytes: number
  details: ModelDetails
  /** Id of the model already registered for this folder, if any. */
  registeredId: number | null
}

export interface HubPreset {
  repoId: string
  label: string
  family: 'llama' | 'mistral' | 'qwen2'
  /** Approximate download size (16-bit safetensors). */
  approxBytes: number
  /** The repo asks users to accept a license first (null: not known). */
  gated: boolean | null
  /** The model of the original tutorial. */
  tutorial: boolean
  /** Traditional Chinese focused. */
  zhTW: boolean
}

export interface HubTokenStatus {
  stored: boolean
  /** 'safeStorage': encrypted by the OS keychain (desktop app); 'encryptedFile': AES-256-GCM file (browser mode). */
  storage: 'safeStorage' | 'encryptedFile'
  /** File holding the encrypted token. */
  location: string
  /** Where the encryption key comes from. */
  keySource: 'os' | 'env' | 'keyFile'
  keyLocation: string | null
  /** Hugging Face endpoint in use (QT_HF_ENDPOINT). */
  endpoint: string
}

export interface ComputeDevice {
  backend: 'cpu' | 'cuda'
  index: number
  name: string
  totalBytes: number
  freeBytes: number
}

// ---------------------------------------------------------------------------------------------
// Training: presets and settings, estimates, runs and their metrics, the engine host
// ---------------------------------------------------------------------------------------------

/** Text the UI shows as is, in both languages (presets, setting explanations, problems, verdicts). */
export interface LocalText {
  'zh-TW': string
  en: string
}

export type RunStatus = 'queued' | 'preparing' | 'loading' | 'training' | 'evaluating' | 'completed' | 'stopped' | 'failed' | 'interrupted'
export type PresetId = 'tutorial' | 'small' | 'medium' | 'large' | 'demo'
export type LoraTargetName = 'q_proj' | 'k_proj' | 'v_proj' | 'o_proj' | 'gate_proj' | 'up_proj' | 'down_proj'

/** Every setting of a run: the training-set compiler, model loading, LoRA, optimizer, batching, evaluation,
 *  checkpoints and early stopping. A preset is a full TrainingSettings; the UI sends changes on top of it. */
export interface TrainingSettings {
  // Data (the training-set compiler)
  trainOn: 'answers' | 'all'
  maxLength: number
  truncation: 'truncate' | 'skip'
  validationFraction: number
  splitSeed: number
  // Model loading
  quant: 'nf4' | 'none'
  doubleQuant: boolean
  computeDtype: 'auto' | 'bf16' | 'fp16' | 'fp32'
  // LoRA
  loraR: number
  loraAlpha: number
  loraDropout: number
  loraTargets: LoraTargetName[]
  // Optimizer and schedule
  lr: number
  beta1: number
  beta2: number
  eps: number
  weightDecay: number
  maxGradNorm: number
  gradAccum: number
  schedule: 'cosine_with_restarts' | 'cosine' | 'linear' | 'constant'
  epochs: number
  warmupEpochs: number
  numCycles: number
  // Batching
  batching: 'rows' | 'tokens'
  batchRows: number
  tokenBudget: number
  groupByLength: boolean
  shuffle: boolean
  // Regularisation, memory, randomness
  neftuneAlpha: number
  gradCheckpointing: boolean
  seed: number
  // Evaluation, checkpoints, early stopping, result
  /** Also evaluate every N optimizer steps (0 = only at the end of each epoch). */
  evalEverySteps: number
  /** Also checkpoint every N optimizer steps (0 = only at the end of each epoch). */
  checkpointEverySteps: number
  /** Step/epoch checkpoints kept (the best one is always kept besides). */
  keepLastCheckpoints: number
  /** Evaluations without improvement before stopping (0 = never stop early). */
  earlyStoppingPatience: number
  earlyStoppingMinDelta: number
  /** Which adapter the run exports at the end. */
  exportAdapter: 'best' | 'final'
}

export type SettingKey = keyof TrainingSettings

/** How the advanced panel renders one setting. */
export interface SettingField {
  key: SettingKey
  group: 'data' | 'model' | 'lora' | 'optimizer' | 'batching' | 'regularization' | 'evaluation'
  kind: 'number' | 'integer' | 'boolean' | 'choice' | 'multi'
  min?: number
  max?: number
  step?: number
  /** 'log': edit in scientific notation (learning rates). */
  scale?: 'linear' | 'log'
  options?: { value: string; label: LocalText }[]
  label: LocalText
  /** One line: what it does and when to change it. */
  explain: LocalText
  /** Only relevant when another setting has this value (batchRows when batching is 'rows'). */
  when?: { key: SettingKey; equals: string | number | boolean }
}

export interface TrainingPreset {
  id: PresetId
  name: LocalText
  description: LocalText
  /** Things to know (the tutorial's quirks, what the preset trades off). */
  notes: LocalText[]
  /** Dataset size it suits, in usable rows (null: any). */
  rows: { min: number; max: number | null } | null
  /** Where it is meant to run. */
  device: 'gpu' | 'cpu' | 'any'
  settings: TrainingSettings
}

export interface TrainingPresets {
  presets: TrainingPreset[]
  fields: SettingField[]
  groups: { id: SettingField['group']; label: LocalText }[]
}

/** What training:estimate and training:start take. */
export interface TrainingRequest {
  projectId: number
  /** Default: the project's model. */
  modelId?: number
  preset: PresetId
  /** Changes on top of the preset. */
  settings?: Partial<TrainingSettings>
  /** 'cpu' | 'cuda:<n>'; default: the preset's device hint, then Settings.device ('auto' = first CUDA GPU, else CPU). */
  device?: string
  name?: string
}

export type SettingProblemCode =
  | 'lrZero'
  | 'emptyDataset'
  | 'allRowsSkipped'
  | 'someRowsSkipped'
  | 'rowsTruncated'
  | 'noTrainRows'
  | 'noValidation'
  | 'noModel'
  | 'modelUnusable'
  | 'runActive'
  | 'gpuBusy'
  | 'wontFit'
  | 'tight'
  | 'tokenBudgetTooSmall'
  | 'deviceMissing'
  | 'engineUnavailable'
  | 'slowOnCpu'
  | 'invalid'

export interface SettingProblem {
  code: SettingProblemCode
  /** 'error' refuses the start; 'warning' is shown and allowed. */
  severity: 'error' | 'warning'
  /** The setting to change, when one is to blame. */
  field?: SettingKey
  message: LocalText
}

export interface TrainingEstimate {
  projectId: number
  model: { id: number; name: string } | null
  /** The device the run would use (null when none could be determined). */
  device: (ComputeDevice & { id: string }) | null
  /** The preset with the request's changes applied. */
  settings: TrainingSettings
  data: {
    enabledRows: number
    /** Rows the compiler would keep. */
    usableRows: number
    skippedRows: number
    truncatedRows: number
    trainRows: number
    validationRows: number
    meanTokens: number
    maxTokens: number
    /** Tokens of one pass over the training rows. */
    trainTokens: number
  }
  steps: { perEpoch: number; total: number; warmup: number }
  memory: {
    estimate: MemoryEstimate | null
    /** Memory the device has for it (free now, plus what our own engine holds). */
    availableBytes: number | null
    fit: 'fits' | 'tight' | 'wontFit' | 'unknown'
  }
  time: {
    seconds: number | null
    tokensPerSecond: number | null
    /** 'measured': from earlier runs of this model on this device; 'assumed': from model size and device kind. */
    basis: 'measured' | 'assumed' | 'unknown'
    note: LocalText
  }
  problems: SettingProblem[]
  /** No problem of severity 'error'. */
  canStart: boolean
  /** The preset that suits this dataset and device. */
  suggestedPreset: PresetId
}

export type RunVerdictKind = 'stillLearning' | 'good' | 'overfitting' | 'notLearning' | 'unknown'

/** A plain-language reading of a finished run's curves (main/training/verdict.ts). */
export interface RunVerdict {
  kind: RunVerdictKind
  message: LocalText
  evidence: {
    firstTrainLoss: number | null
    lastTrainLoss: number | null
    bestValLoss: number | null
    bestValStep: number | null
    lastValLoss: number | null
  }
}

export type RunStopReason = 'completed' | 'earlyStopping' | 'user' | 'error' | 'interrupted'

export interface RunSummary {
  stopReason: RunStopReason | null
  verdict: RunVerdict | null
  /** The exported PEFT adapter folder (adapter_config.json + adapter_model.safetensors). */
  adapterDir: string | null
  adapterFrom: 'best' | 'final' | null
  adapterStep: number | null
  bestStep: number | null
  /** What the compiler made of the snapshot. */
  data: { trainSamples: number; validationSamples: number; trainTokens: number; skippedRows: number; truncatedRows: number } | null
  trainSeconds: number
  meanTokensPerSecond: number | null
  peakMemoryBytes: number | null
  /** The start-up found this run interrupted and offers to resume it (cleared by resume or dismiss). */
  resumeOffered: boolean
  resumes: number
}

export interface Run {
  id: number
  projectId: number
  modelId: number | null
  modelName: string | null
  snapshotId: number | null
  name: string
  status: RunStatus
  preset: PresetId | string
  device: string
  settings: TrainingSettings
  outputDir: string
  error: AppErrorInfo | null
  step: number
  totalSteps: number
  stepsPerEpoch: number
  epoch: number
  bestValLoss: number | null
  lastTrainLoss: number | null
  summary: RunSummary
  /** queued, preparing, loading, training or evaluating. */
  active: boolean
  /** Can continue with runs:resume (stopped, failed or interrupted). */
  resumable: boolean
  /** The step a resume would continue from (the latest checkpoint; 0 = from the start). */
  resumeFromStep: number | null
  createdAt: string
  startedAt: string | null
  endedAt: string | null
}

export interface CheckpointInfo {
  id: number
  step: number
  epoch: number
  kind: 'step' | 'epoch' | 'best' | 'final'
  path: string
  valLoss: number | null
  createdAt: string
}

export interface RunDetail extends Run {
  checkpoints: CheckpointInfo[]
}

export interface MetricPoint {
  step: number
  epoch: number
  loss: number
  lr: number
  gradNorm: number
  tokensPerSecond: number
  /** Engine memory in use on the device after this step (weights + LoRA + activations). */
  memoryBytes: number | null
}

export interface EvalPoint {
  step: number
  epoch: number
  loss: number
}

export interface RunMetrics {
  runId: number
  /** Training steps (downsampled to maxPoints by bucket means when longer; the last step is always kept). */
  train: MetricPoint[]
  eval: EvalPoint[]
  totalTrainPoints: number
  downsampled: boolean
  lastStep: number
}

export interface RunComparison {
  runs: RunDetail[]
  /** Settings that differ between the runs (values in the order of `runs`). */
  settingsDiff: { key: SettingKey | 'preset' | 'device' | 'modelName'; values: unknown[] }[]
  curves: RunMetrics[]
}

/** `training:progress`: at most about 4 per second per run, plus one at every evaluation and status change. */
export interface TrainingProgress {
  runId: number
  projectId: number
  status: RunStatus
  /** What is happening now, with a 0..1 fraction where known (compiling rows, loading weights). */
  stage: { key: 'compiling' | 'loading' | 'training' | 'evaluating' | 'checkpointing' | 'exporting'; fraction: number | null }
  step: number
  totalSteps: number
  epoch: number
  totalEpochs: number
  stepsPerEpoch: number
  loss: number | null
  lr: number | null
  gradNorm: number | null
  tokensPerSecond: number | null
  memoryBytes: number | null
  deviceTotalBytes: number | null
  valLoss: number | null
  bestValLoss: number | null
  elapsedSeconds: number
  etaSeconds: number | null
  /** Steps since the previous event: append them to the charts. */
  points: MetricPoint[]
  /** Evaluations since the previous event. */
  evalPoints: EvalPoint[]
}

/** Who has the engine's (single) resident model and device now. */
export type GpuHolder = { kind: 'training'; runId: number } | { kind: 'chat'; sessionId: string; label: string } | null

export interface EngineStatus {
  host: {
    state: 'stopped' | 'starting' | 'ready' | 'crashed'
    pid: number | null
    restarts: number
    /** The last unexpected exit of the engine process. */
    lastExit: { code: number | null; signal: string | null; reason: string; during: string | null; at: string } | null
  }
  backends: string[]
  /** Devices last reported by the engine process (empty until it first started). */
  devices: ComputeDevice[]
  holder: GpuHolder
  /** The model resident in the engine process. */
  model: { folder: string; device: string } | null
}

// ---------------------------------------------------------------------------------------------
// Export: LoRA adapter, merged Hugging Face model, GGUF + Ollama Modelfile, llama.cpp self-test
// ---------------------------------------------------------------------------------------------

/** GGUF tensor type of the export (Q4_K_M: llama-quantize's mix of Q4_K and Q6_K). */
export type GgufType = 'F16' | 'BF16' | 'Q8_0' | 'Q4_K_M' | 'F32'

/** What export:estimate and export:start take. */
export interface ExportRequest {
  projectId: number
  /** A training run (the adapter it exported, or one of its checkpoints), or any PEFT adapter folder with its base model. */
  source: { runId: number; checkpointId?: number } | { adapterDir: string; modelId: number }
  /** Parent folder of the export folder (default: <data dir>/exports). */
  destDir?: string
  /** Name of the export folder (default: from the project and the run). */
  name?: string
  outputs: { adapter: boolean; merged: boolean; gguf: GgufType | null }
  /** Ask a few training questions to the GGUF in llama.cpp and to the app's engine, and compare (needs outputs.gguf). */
  selfTest?: { enabled: boolean; questions?: number }
}

export interface ExportFile {
  /** Relative to the export folder. */
  path: string
  bytes: number
}

export interface ExportEstimate {
  name: string
  destDir: string
  /** destDir/name: where the export will be. */
  folder: string
  /** The folder exists already: export:start refuses (choose another name). */
  exists: boolean
  files: ExportFile[]
  totalBytes: number
  /** Free bytes on the destination's disk (null when unknown). */
  freeBytes: number | null
  enough: boolean
  baseModel: string
  adapterDir: string
  /** Where the chat template comes from ("the model's own", "built-in llama3" ...). */
  template: string
  stopTokens: { id: number; text: string }[]
  systemPrompt: string
  /** Why an output cannot be made for this model (null: it can); the dialog disables it. */
  unavailable: { merged: string | null; gguf: string | null }
  warnings: string[]
}

export interface ExportSelfTestQuestion {
  question: string
  /** The dataset's answer. */
  reference: string
  /** Greedy answer of the app's engine (base + adapter, as in the chat). */
  engineAnswer: string
  /** Greedy answer of llama.cpp running the exported GGUF. */
  ggufAnswer: string
  engineTokens: number[]
  ggufTokens: number[]
  matchedTokens: number
  requiredTokens: number
  /** llama.cpp ended the answer with an end-of-generation token. */
  stopped: boolean
  /** llama.cpp tokenizes the prompt text to the app's ids. */
  tokenizerMatches: boolean
  passed: boolean
}

export interface ExportSelfTestReport {
  state: 'passed' | 'failed' | 'skipped'
  /** What failed, or why it was skipped, in plain words (English). */
  reason: string | null
  runtime: string
  ggufFile: string
  templateMatches: boolean
  endTokenIsEog: boolean
  questions: ExportSelfTestQuestion[]
  seconds: number
}

export type ExportStage = 'checking' | 'adapter' | 'merged' | 'gguf' | 'selfTest' | 'finishing'

export interface ExportResult {
  folder: string
  files: ExportFile[]
  selfTest: ExportSelfTestReport | null
  seconds: number
}

/** An export in progress or finished (kept in memory until the app quits); also the export:progress event. */
export interface ExportJob {
  id: string
  projectId: number
  runId: number | null
  name: string
  folder: string
  state: 'running' | 'done' | 'failed' | 'cancelled'
  stage: ExportStage
  /** 0..1 over the whole export (files by bytes, then the self-test). */
  fraction: number
  bytesDone: number
  bytesTotal: number
  /** What is being written or checked now. */
  detail: string
  startedAt: string
  endedAt: string | null
  error: AppErrorInfo | null
  result: ExportResult | null
}

// ---------------------------------------------------------------------------------------------
// Chat: conversations with the base model or a run's adapter, side-by-side compare, "Did it learn?" checks
// ---------------------------------------------------------------------------------------------

/** Sampling of the chat. `greedy` (the "precise" switch) always picks the likeliest token: temperature, top-p and
 *  top-k are then ignored. */
export interface SamplingSettings {
  greedy: boolean
  temperature: number
  topP: number
  /** 0 = off. */
  topK: number
  maxNewTokens: number
  /** 1 = off. */
  repetitionPenalty: number
}

/** The LoRA adapter a chat talks to: a run's exported adapter (checkpointId null) or one of its checkpoints;
 *  null = the base model alone. */
export type ChatAdapterRef = { runId: number; checkpointId: number | null } | null

export interface ChatAdapterOption {
  runId: number
  checkpointId: number | null
  runName: string
  runStatus: RunStatus
  modelId: number
  /** 'adapter': what the run exported at its end (adapterFrom says whether the best or the final weights). */
  kind: 'adapter' | CheckpointInfo['kind']
  adapterFrom: 'best' | 'final' | null
  step: number
  epoch: number
  valLoss: number | null
  createdAt: string
}

export interface ChatModelOption {
  id: number
  name: string
  source: ModelSource
  /** Why it cannot be used now (missing folder, no template ...); null when it can. */
  problem: string | null
}

export interface ChatOptions {
  projectId: number
  /** The project's system prompt: the chat starts every conversation with it, as training did. */
  systemPrompt: string
  /** The model a new chat uses: the project's, else the latest run's; null when there is none. */
  defaultModelId: number | null
  /** The adapter a new chat uses: the newest finished run's adapter for that model; null = none yet. */
  defaultAdapter: ChatAdapterRef
  models: ChatModelOption[]
  /** Adapters of this project's finished runs, newest run first; each run's exported adapter before its checkpoints. */
  adapters: ChatAdapterOption[]
  defaults: SamplingSettings
  limits: { maxNewTokens: number; temperature: number; topK: number; repetitionPenalty: number }
}

/** Which adapter answered (kept with answers and checks, so they stay readable after the run is deleted). */
export interface ChatAdapterInfo {
  runId: number
  runName: string
  checkpointId: number | null
  kind: ChatAdapterOption['kind']
  adapterFrom: 'best' | 'final' | null
  step: number
}

export type ChatMode = 'chat' | 'compare'
/** Compare chats answer every question twice: 'base' (no adapter) and 'tuned' (the chat's adapter). */
export type ChatVariant = 'base' | 'tuned'
export type ChatMessageState = 'generating' | 'done' | 'stopped' | 'failed' | 'interrupted'

export interface ChatMessageEntry {
  id: number
  chatId: number
  role: 'user' | 'assistant'
  content: string
  /** null in plain chats and for questions. */
  variant: ChatVariant | null
  /** Assistant answers: how the answer came about. null for questions. */
  generation: {
    state: ChatMessageState
    finish: 'stop' | 'length' | 'cancelled' | null
    tokens: number
    promptTokens: number
    seconds: number
    /** Earlier turns left out to fit the model's context. */
    droppedTurns: number
    /** The adapter that wrote it (null: the base model). */
    adapter: ChatAdapterInfo | null
    device: string | null
    error: AppErrorInfo | null
  } | null
  createdAt: string
}

export interface ChatSummary {
  id: number
  projectId: number
  title: string
  mode: ChatMode
  modelId: number | null
  modelName: string | null
  adapter: ChatAdapterRef
  /** The adapter's run and checkpoint (null for the base model, or when they are gone). */
  adapterInfo: ChatAdapterInfo | null
  /** The adapter's run or checkpoint is gone (deleted): the chat falls back to asking for another. */
  adapterMissing: boolean
  sampling: SamplingSettings
  messageCount: number
  /** The last question, for the list. */
  preview: string
  createdAt: string
  updatedAt: string
}

export interface ChatDetail extends ChatSummary {
  messages: ChatMessageEntry[]
  /** An answer is being written now. */
  generating: boolean
}

/** What chat:send / chat:edit / chat:regenerate return at once; the answer follows as chat:stream events. */
export interface ChatGeneration {
  generationId: string
  chat: ChatDetail
}

/** `chat:stream`: new answer text. `offset` is where `text` goes in the answer: at its end normally; earlier means
 *  "replace from here" (a correction at the end). At most about 20 per second per answer; never dropped. */
export interface ChatStreamEvent {
  chatId: number
  generationId: string
  messageId: number
  variant: ChatVariant | null
  offset: number
  text: string
  tokens: number
}

/** `chat:status`: a generation's stage; at the end the saved answers. */
export interface ChatStatusEvent {
  chatId: number
  generationId: string
  state: 'waiting' | 'loading' | 'generating' | 'done' | 'stopped' | 'failed'
  /** Model loading progress 0..1 while 'loading'. */
  fraction: number | null
  /** The device it runs on ('cpu', 'cuda:0'), once known. */
  device: string | null
  error: AppErrorInfo | null
  /** The final answers (done, stopped, failed). */
  messages: ChatMessageEntry[] | null
}

export interface LearnCheckItem {
  id: number
  position: number
  split: 'train' | 'validation'
  rowId: number | string
  question: string
  reference: string
  baseAnswer: string
  tunedAnswer: string
  /** ROUGE-L F1 on characters against the reference (0..1): the score shown. */
  baseScore: number
  tunedScore: number
  /** Bag-of-characters F1 (0..1). */
  baseCharF1: number
  tunedCharF1: number
}

export interface LearnCheckSplitSummary {
  count: number
  /** Mean scores; null while no question of the split is done. */
  baseScore: number | null
  tunedScore: number | null
  baseCharF1: number | null
  tunedCharF1: number | null
  /** Answers identical to the reference (after normalisation). */
  tunedExact: number
  baseExact: number
}

export interface LearnCheck {
  id: number
  runId: number
  projectId: number
  runName: string
  checkpointId: number | null
  adapter: ChatAdapterInfo
  status: 'running' | 'completed' | 'cancelled' | 'failed' | 'interrupted'
  /** Questions per split asked (at most). */
  perSplit: number
  maxNewTokens: number
  total: number
  done: number
  error: AppErrorInfo | null
  summary: { train: LearnCheckSplitSummary; validation: LearnCheckSplitSummary }
  createdAt: string
  finishedAt: string | null
}

export interface LearnCheckDetail extends LearnCheck {
  items: LearnCheckItem[]
}

// ---------------------------------------------------------------------------------------------
// Request/response channels
// ---------------------------------------------------------------------------------------------

export interface Requests {
  'app:info': { req: void; res: AppInfo }
  'app:status': { req: void; res: AppStatus }

  'settings:get': { req: void; res: Settings }
  'settings:set': { req: Partial<Settings>; res: Settings }

  'projects:list': { req: void; res: Project[] }
  'projects:get': { req: { id: number }; res: Project }
  'projects:create': { req: { name: string; language?: Language; systemPrompt?: string }; res: Project }
  'projects:rename': { req: { id: number; name: string }; res: Project }
  'projects:update': { req: { id: number; systemPrompt?: string; language?: Language; modelId?: number | null }; res: Project }
  'projects:delete': { req: { id: number }; res: void }

  'rows:list': { req: { projectId: number }; res: QaPair[] }
  'rows:history': { req: { projectId: number }; res: EditHistory }
  'rows:update': {
    req: {
      projectId: number
      changes: ({ id: number } & Partial<QaFields>)[]
      label?: 'edit' | 'paste' | 'clear' | 'toggle'
      /** Saves of one cell-editing session share a key and undo as one step. */
      mergeKey?: string
      /** New rows added in the same undoable step (a paste that runs past the last row). */
      append?: { rows: Partial<QaFields>[]; afterId: number | null }
    }
    res: RowsMutation
  }
  'rows:insert': {
    req: { projectId: number; rows: Partial<QaFields>[]; afterId?: number | null; label?: 'insert' | 'paste' }
    res: RowsMutation
  }
  'rows:delete': { req: { projectId: number; ids: number[] }; res: RowsMutation }
  'rows:undo': { req: { projectId: number }; res: RowsMutation }
  'rows:redo': { req: { projectId: number }; res: RowsMutation }
  'rows:convertChinese': { req: { projectId: number; ids?: number[] }; res: RowsMutation }

  'dataset:check': { req: { projectId: number }; res: QualityReport }
  'dataset:importPreview': { req: { projectId: number; fileName: string; dataBase64: string; options?: ImportOptions }; res: ImportPreview }
  'dataset:import': {
    req: { projectId: number; fileName: string; dataBase64: string; mapping?: ImportMapping; options?: ImportOptions }
    res: ImportReport
  }
  'dataset:export': { req: { projectId: number; format: ExportFormat; includeDisabled?: boolean }; res: ExportedFile }

  'snapshots:create': { req: { projectId: number }; res: DatasetSnapshot }
  'snapshots:list': { req: { projectId: number }; res: DatasetSnapshot[] }
  'snapshots:diff': { req: { projectId: number; snapshotId: number }; res: SnapshotDiff }

  'models:list': { req: void; res: ModelEntry[] }
  'models:get': { req: { id: number }; res: ModelEntry }
  /** Checks a folder (no registration): details, or an error whose details.problem names what is wrong. */
  'models:inspectFolder': { req: { path: string }; res: ModelFolderReport }
  'models:import': { req: { path: string; name?: string }; res: ModelEntry }
  /** Desktop: a folder dialog. Browser mode: { supported: false } (type the server-side path instead). */
  'models:pickFolder': { req: void; res: { supported: boolean; path: string | null } }
  'models:delete': { req: { id: number }; res: { removedFiles: boolean } }
  'models:setTemplate': { req: { id: number; template: ModelTemplateChoice }; res: ModelEntry }
  'models:devices': { req: void; res: { devices: ComputeDevice[]; note: string | null } }

  'hub:presets': { req: void; res: HubPreset[] }
  'hub:download': { req: { repoId: string; revision?: string }; res: ModelEntry }
  'hub:pause': { req: { modelId: number }; res: ModelEntry }
  'hub:resume': { req: { modelId: number }; res: ModelEntry }
  /** Stops a download, deletes its partial files and unregisters it. */
  'hub:cancel': { req: { modelId: number }; res: void }
  'hub:tokenStatus': { req: void; res: HubTokenStatus }
  'hub:setToken': { req: { token: string }; res: HubTokenStatus }
  'hub:clearToken': { req: void; res: HubTokenStatus }

  /** Sizes, free space, template and stop tokens of an export, before starting it. */
  'export:estimate': { req: ExportRequest; res: ExportEstimate }
  /** Starts an export in the background; follow it with export:progress. Refuses when the disk is too full. */
  'export:start': { req: ExportRequest; res: ExportJob }
  /** Stops a running export and deletes what it wrote. */
  'export:cancel': { req: { jobId: string }; res: ExportJob }
  /** Exports of this session (all projects, or one), newest first. */
  'export:jobs': { req: { projectId?: number }; res: ExportJob[] }

  'training:presets': { req: void; res: TrainingPresets }
  /** Data, steps, GPU memory (fits / tight / will not fit) and time before a start, with every problem found. */
  'training:estimate': { req: TrainingRequest; res: TrainingEstimate }
  /** Refuses (INVALID_ARGUMENT, details.problems: SettingProblem[]) when the estimate has an error. */
  'training:start': { req: TrainingRequest; res: Run }
  /** Graceful: the step in progress ends, a checkpoint is written, then the run is 'stopped'. */
  'training:stop': { req: { runId: number }; res: Run }
  'runs:list': { req: { projectId?: number }; res: Run[] }
  'runs:get': { req: { id: number }; res: RunDetail }
  /** Paging: afterStep returns only later steps and evaluations (a chart catching up after a reload). */
  'runs:metrics': { req: { runId: number; maxPoints?: number; afterStep?: number }; res: RunMetrics }
  /** Continues a stopped, failed or interrupted run from its latest checkpoint (exactly: same numbers). */
  'runs:resume': { req: { id: number }; res: Run }
  /** Hides the start-up resume offer of an interrupted run (it stays resumable). */
  'runs:dismissResume': { req: { id: number }; res: Run }
  /** Deletes a run that is not active, with its folder (checkpoints, adapter). */
  'runs:delete': { req: { id: number }; res: void }
  'runs:compare': { req: { ids: number[]; maxPoints?: number }; res: RunComparison }
  'engine:status': { req: void; res: EngineStatus }

  /** Models, adapters (finished runs and their checkpoints), the system prompt and sampling defaults of a project's chat. */
  'chat:options': { req: { projectId: number }; res: ChatOptions }
  'chats:list': { req: { projectId: number }; res: ChatSummary[] }
  'chats:get': { req: { id: number }; res: ChatDetail }
  'chats:create': {
    req: { projectId: number; mode?: ChatMode; modelId?: number | null; adapter?: ChatAdapterRef; sampling?: Partial<SamplingSettings>; title?: string }
    res: ChatDetail
  }
  /** Rename, switch the model or adapter (the base model stays loaded), change sampling. */
  'chats:update': { req: { id: number; title?: string; modelId?: number | null; adapter?: ChatAdapterRef; sampling?: Partial<SamplingSettings> }; res: ChatDetail }
  'chats:delete': { req: { id: number }; res: void }
  /** Adds the question and starts the answer (compare chats: both answers); text follows as chat:stream. */
  'chat:send': { req: { chatId: number; content: string }; res: ChatGeneration }
  /** Changes a question, removes everything after it, and answers again. */
  'chat:edit': { req: { chatId: number; messageId: number; content: string }; res: ChatGeneration }
  /** Replaces the answer(s) to the last question. */
  'chat:regenerate': { req: { chatId: number }; res: ChatGeneration }
  /** Stops the chat's answer now; the text so far is kept. */
  'chat:stop': { req: { chatId: number }; res: void }
  /** "Did it learn?": sample training and validation questions of a finished run, answer them greedily with the base
   *  model and with the run's adapter (or a checkpoint), score both against the reference. Progress: learn:progress. */
  'learn:start': { req: { runId: number; checkpointId?: number | null; perSplit?: number; maxNewTokens?: number }; res: LearnCheck }
  'learn:cancel': { req: { id: number }; res: LearnCheck }
  /** Checks of one run, or of every run of a project; newest first. */
  'learn:list': { req: { runId?: number; projectId?: number }; res: LearnCheck[] }
  'learn:get': { req: { id: number }; res: LearnCheckDetail }
  'learn:delete': { req: { id: number }; res: void }
}

// ---------------------------------------------------------------------------------------------
// Push events (main -> renderer)
// ---------------------------------------------------------------------------------------------

export interface Events {
  'projects:changed': { projectId: number | null }
  'settings:changed': Settings
  'models:changed': { modelId: number | null }
  'models:downloadProgress': DownloadProgress
  /** An export's progress, at most about 4 per second, and every change of stage or state. */
  'export:progress': ExportJob
  'training:progress': TrainingProgress
  /** A run was created, changed status, got a checkpoint, or was deleted (status null). */
  'runs:changed': { runId: number; projectId: number; status: RunStatus | null; reason: 'created' | 'status' | 'checkpoint' | 'resumeOffer' | 'deleted' }
  'engine:status': EngineStatus
  'chat:stream': ChatStreamEvent
  'chat:status': ChatStatusEvent
  /** A chat was created, renamed, changed or deleted (deleted: true). */
  'chats:changed': { chatId: number; projectId: number; deleted: boolean }
  /** A check's progress: its state and the questions answered since the previous event. */
  'learn:progress': { check: LearnCheck; items: LearnCheckItem[] }
}

// ---------------------------------------------------------------------------------------------
// Derived types and runtime lists
// ---------------------------------------------------------------------------------------------

export type Channel = keyof Requests
export type EventName = keyof Events
export type Req<C extends Channel> = Requests[C]['req']
export type Res<C extends Channel> = Requests[C]['res']

/** What the renderer sees: one async method per channel, plus event subscription. */
export type Api = { [C in Channel]: (arg: Req<C>) => Promise<Res<C>> } & {
  on<E extends EventName>(event: E, listener: (payload: Events[E]) => void): () => void
}

/** What preload exposes on `window.api`: results are not unwrapped yet (Errors do not survive contextBridge). */
export type BridgeApi = { [C in Channel]: (arg: Req<C>) => Promise<Result<Res<C>>> } & {
  on<E extends EventName>(event: E, listener: (payload: Events[E]) => void): () => void
}

// `satisfies Record<Channel, true>` makes the compiler reject a channel missing from these lists.
const channelTable = {
  'app:info': true,
  'app:status': true,
  'settings:get': true,
  'settings:set': true,
  'projects:list': true,
  'projects:get': true,
  'projects:create': true,
  'projects:rename': true,
  'projects:update': true,
  'projects:delete': true,
  'rows:list': true,
  'rows:history': true,
  'rows:update': true,
  'rows:insert': true,
  'rows:delete': true,
  'rows:undo': true,
  'rows:redo': true,
  'rows:convertChinese': true,
  'dataset:check': true,
  'dataset:importPreview': true,
  'dataset:import': true,
  'dataset:export': true,
  'snapshots:create': true,
  'snapshots:list': true,
  'snapshots:diff': true,
  'models:list': true,
  'models:get': true,
  'models:inspectFolder': true,
  'models:import': true,
  'models:pickFolder': true,
  'models:delete': true,
  'models:setTemplate': true,
  'models:devices': true,
  'hub:presets': true,
  'hub:download': true,
  'hub:pause': true,
  'hub:resume': true,
  'hub:cancel': true,
  'hub:tokenStatus': true,
  'hub:setToken': true,
  'hub:clearToken': true,
  'export:estimate': true,
  'export:start': true,
  'export:cancel': true,
  'export:jobs': true,
  'training:presets': true,
  'training:estimate': true,
  'training:start': true,
  'training:stop': true,
  'runs:list': true,
  'runs:get': true,
  'runs:metrics': true,
  'runs:resume': true,
  'runs:dismissResume': true,
  'runs:delete': true,
  'runs:compare': true,
  'engine:status': true,
  'chat:options': true,
  'chats:list': true,
  'chats:get': true,
  'chats:create': true,
  'chats:update': true,
  'chats:delete': true,
  'chat:send': true,
  'chat:edit': true,
  'chat:regenerate': true,
  'chat:stop': true,
  'learn:start': true,
  'learn:cancel': true,
  'learn:list': true,
  'learn:get': true,
  'learn:delete': true,
} as const satisfies Record<Channel, true>

const eventTable = {
  'projects:changed': true,
  'settings:changed': true,
  'models:changed': true,
  'models:downloadProgress': true,
  'export:progress': true,
  'training:progress': true,
  'runs:changed': true,
  'engine:status': true,
  'chat:stream': true,
  'chat:status': true,
  'chats:changed': true,
  'learn:progress': true,
} as const satisfies Record<EventName, true>

export const CHANNELS = Object.keys(channelTable) as Channel[]
export const EVENTS = Object.keys(eventTable) as EventName[]
