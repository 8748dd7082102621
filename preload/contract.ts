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
}

// ---------------------------------------------------------------------------------------------
// Push events (main -> renderer)
// ---------------------------------------------------------------------------------------------

export interface Events {
  'projects:changed': { projectId: number | null }
  'settings:changed': Settings
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
} as const satisfies Record<Channel, true>

const eventTable = {
  'projects:changed': true,
  'settings:changed': true,
} as const satisfies Record<EventName, true>

export const CHANNELS = Object.keys(channelTable) as Channel[]
export const EVENTS = Object.keys(eventTable) as EventName[]
