// All table repositories of one database, created (and their statements prepared) once.
import { createChatsRepo, createLearnChecksRepo } from './chatsRepo'
import { createCheckpointsRepo } from './checkpointsRepo'
import { createModelsRepo } from './modelsRepo'
import type { Db } from './openDatabase'
import { createProjectsRepo } from './projectsRepo'
import { createQaPairsRepo } from './qaPairsRepo'
import { createRunMetricsRepo } from './runMetricsRepo'
import { createRunsRepo } from './runsRepo'
import { createSnapshotsRepo } from './snapshotsRepo'

export function createRepos(db: Db) {
  return {
    projects: createProjectsRepo(db),
    qaPairs: createQaPairsRepo(db),
    snapshots: createSnapshotsRepo(db),
    models: createModelsRepo(db),
    runs: createRunsRepo(db),
    runMetrics: createRunMetricsRepo(db),
    checkpoints: createCheckpointsRepo(db),
    chats: createChatsRepo(db),
    learnChecks: createLearnChecksRepo(db),
  }
}

export type Repos = ReturnType<typeof createRepos>
