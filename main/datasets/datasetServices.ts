// The dataset editor's long-lived services, one set per AppContext: the row editor (undo journal) and the
// quality checker (its per-text cache makes re-checks after an edit cheap).
import { perContext } from '../perContext'
import { QualityChecker } from './quality/checkDataset'
import { createRowEditor, type RowEditor } from './rowEdits'

export interface DatasetServices {
  editor: RowEditor
  checker: QualityChecker
}

export const datasetServices = perContext(
  (ctx): DatasetServices => ({
    editor: createRowEditor(
      () => ctx.repos(),
      (projectId) => ctx.events.emit('projects:changed', { projectId }),
    ),
    checker: new QualityChecker(),
  }),
)
