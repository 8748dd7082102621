// The dataset editor's long-lived services, one set per AppContext: the row editor (undo journal) and the
// quality checker (its per-text cache makes re-checks after an edit cheap).
import type { AppContext } from '../context'
import { QualityChecker } from './quality/checkDataset'
import { createRowEditor, type RowEditor } from './rowEdits'

export interface DatasetServices {
  editor: RowEditor
  checker: QualityChecker
}

const services = new WeakMap<AppContext, DatasetServices>()

export function datasetServices(ctx: AppContext): DatasetServices {
  let s = services.get(ctx)
  if (!s) {
    s = {
      editor: createRowEditor(
        () => ctx.repos(),
        (projectId) => ctx.events.emit('projects:changed', { projectId }),
      ),
      checker: new QualityChecker(),
    }
    services.set(ctx, s)
  }
  return s
}
