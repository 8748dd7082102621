// Every channel's handler, combined from the domain files. The `Handlers` annotation makes the compiler
// reject a channel of the contract that has no handler here.
import type { AppContext } from './context'
import { appHandlers } from './appHandlers'
import { chatHandlers } from './chat/chatHandlers'
import { datasetHandlers } from './datasets/datasetHandlers'
import { exportHandlers } from './export/exportHandlers'
import { rowHandlers } from './datasets/rowHandlers'
import type { Handlers } from './handlerTypes'
import { modelHandlers } from './models/modelHandlers'
import type { SecretStore } from './models/secrets/SecretStore'
import { projectHandlers } from './projects/projectHandlers'
import { trainingHandlers } from './training/trainingHandlers'

export interface Services {
  /** Engine backends compiled into the addon ('cpu', 'cuda'); empty when the addon is missing. */
  engineBackends: () => string[]
  /** Where the Hugging Face token is kept (desktop: safeStorage); default: the encrypted file of browser mode. */
  secrets?: SecretStore
  /** Desktop: a native folder dialog for "Import a folder"; browser mode has none (the path is typed). */
  pickFolder?: () => Promise<string | null>
}

export function createHandlers(ctx: AppContext, services: Services): Handlers {
  return {
    ...appHandlers(ctx, services.engineBackends),
    ...projectHandlers(ctx),
    ...rowHandlers(ctx),
    ...datasetHandlers(ctx),
    ...modelHandlers(ctx, { secrets: services.secrets, pickFolder: services.pickFolder }),
    ...trainingHandlers(ctx),
    ...exportHandlers(ctx),
    ...chatHandlers(ctx),
  }
}
