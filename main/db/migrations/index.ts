// Numbered migrations: entry i upgrades schema i to i+1. Never edit a released one; append a new file.
import type Database from 'better-sqlite3'
import { m001Initial } from './001_initial'
import { m002DatasetEditor } from './002_dataset_editor'
import { m005Chat } from './005_chat'

export type Migration = (db: Database.Database) => void

export const migrations: Migration[] = [m001Initial, m002DatasetEditor, m005Chat]
