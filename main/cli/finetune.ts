// `npm run finetune -- [options]`: the app's training pipeline, headless, for GPU servers and scripts. Same data
// folder, projects, models and runs as the desktop app and browser mode (runs started here show up there).
//
// With no options it fine-tunes the sample project on the bundled tiny demo model on the CPU, prints the loss as it
// falls, then asks the trained model one of the sample questions. Ctrl+C stops gracefully (the step in progress
// ends, a checkpoint is written); running the same command again resumes that run (--new starts over).
import { createInterface } from 'node:readline/promises'
import type { Run, TrainingProgress, TrainingRequest, TrainingSettings } from '../../preload/contract'
import { createAppContext, type AppContext } from '../context'
import { defaultDataDir } from '../dataDir'
import { loadSnapshot } from '../datasets/snapshots'
import { engineOf } from '../engine/host/engineForContext'
import { ensureDemoModel } from '../models/demoModel'
import { getModel, type ModelForUse } from '../models/modelRegistry'
import { modelService } from '../models/modelService'
import { SAMPLE_PROJECT_NAME, seedSampleProject } from '../projects/seedSampleProject'
import { createConfSettings } from '../settings/confSettings'
import { chatFormatFor } from '../tokenizer/ChatFormat'
import { loadTokenizer } from '../tokenizer/loadTokenizer'
import { PRESETS, SETTING_FIELDS } from '../training/presets'
import { settingsChangesSchema } from '../training/settingsSchema'
import { trainingServiceOf } from '../training/trainingHandlers'
import type { TrainingService } from '../training/TrainingService'

export interface FinetuneArgs {
  project: string | null
  preset: string | null
  dataDir: string
  device: string | null
  model: string | null
  set: Partial<TrainingSettings>
  fresh: boolean
  yes: boolean
  ask: boolean
  help: boolean
}

const USAGE = `Usage: npm run finetune -- [options]

Fine-tunes a project's Q&A rows (the same data folder as the app). With no options: the sample project on the
bundled tiny demo model, on the CPU, in about a minute, then one generated answer.

  --project <name>      project to train (default: the sample project "${SAMPLE_PROJECT_NAME}")
  --preset <id>         ${PRESETS.map((p) => p.id).join(' | ')} (default: demo for the demo model, else the one that suits the data)
  --model <id|folder>   model id, or a Hugging Face model folder to import (default: the project's model, else the demo model)
  --device <cpu|cuda:N> where to train (default: the preset's hint, else the first CUDA GPU, else the CPU)
  --set key=value       change one setting of the preset (repeatable), e.g. --set lr=1e-4 --set epochs=3
  --data-dir <dir>      data folder (default: the app's; or QT_DATA_DIR)
  --new                 start a new run even when the last one can be resumed
  --yes                 resume without asking
  -h, --help            this help

Ctrl+C stops after the current step with a checkpoint; run the same command again to resume.
Settings: ${SETTING_FIELDS.map((f) => f.key).join(', ')}`

export function parseFinetuneArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): FinetuneArgs {
  const out: FinetuneArgs = {
    project: null, preset: null, dataDir: env.QT_DATA_DIR || defaultDataDir(), device: null, model: null, set: {}, fresh: false, yes: false, ask: true, help: false,
  }
  const raw: Record<string, unknown> = {}
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const [flag, inline] = a.startsWith('--') && a.includes('=') && !a.startsWith('--set=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined]
    const value = (): string => {
      const v = inline ?? argv[++i]
      if (v === undefined || (inline === undefined && v.startsWith('--'))) throw new Error(`${flag} needs a value.`)
      return v
    }
    switch (flag) {
      case '--project': out.project = value(); break
      case '--preset': out.preset = value(); break
      case '--data-dir': out.dataDir = value(); break
      case '--device': out.device = value(); break
      case '--model': out.model = value(); break
      case '--new': out.fresh = true; break
      case '--yes': case '-y': out.yes = true; break
      case '-h': case '--help': out.help = true; break
      case '--set': case '--set=': {
        const kv = a.startsWith('--set=') ? a.slice(6) : value()
        const eq = kv.indexOf('=')
        if (eq < 1) throw new Error(`--set takes key=value (got "${kv}").`)
        const key = kv.slice(0, eq)
        const text = kv.slice(eq + 1)
        let v: unknown = text
        try {
          v = JSON.parse(text)
        } catch {
          v = text.includes(',') ? text.split(',') : text
        }
        const field = SETTING_FIELDS.find((f) => f.key === key)
        if (!field) throw new Error(`Unknown setting "${key}". Settings: ${SETTING_FIELDS.map((f) => f.key).join(', ')}`)
        if (field.kind === 'multi' && typeof v === 'string') v = [v]
        raw[key] = v
        break
      }
      default:
        throw new Error(`Unknown option ${a}. See --help.`)
    }
  }
  const parsed = settingsChangesSchema.safeParse(raw)
  if (!parsed.success) throw new Error(`Bad --set value: ${parsed.error.issues.map((x) => `${x.path.join('.')}: ${x.message}`).join('; ')}`)
  out.set = parsed.data
  if (out.preset !== null && !PRESETS.some((p) => p.id === out.preset)) throw new Error(`Unknown preset "${out.preset}". Choose ${PRESETS.map((p) => p.id).join(', ')}.`)
  if (out.device !== null && !/^(cpu|cuda:\d+)$/.test(out.device)) throw new Error(`--device must be cpu or cuda:<n> (got ${out.device}).`)
  return out
}

// ------------------------------------------------------------------------------------------------------------
// Output: a progress bar on a terminal, plain lines otherwise
// ------------------------------------------------------------------------------------------------------------

const fmtTime = (s: number | null) => {
  if (s === null || !Number.isFinite(s)) return '--:--'
  const t = Math.max(0, Math.round(s))
  const h = Math.floor(t / 3600)
  const m = Math.floor((t % 3600) / 60)
  const sec = t % 60
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`
}
const fmtNum = (x: number | null, d = 3) => (x === null || !Number.isFinite(x) ? '-' : x.toFixed(d))
const fmtRate = (x: number | null) => (x === null ? '-' : x >= 1000 ? `${(x / 1000).toFixed(1)}k` : x.toFixed(0))

export class ProgressPrinter {
  private lastLineStep = -1
  private barShown = false
  private lastStage = ''
  private readonly width: number

  constructor(private readonly out: NodeJS.WriteStream | { write(s: string): boolean; isTTY?: boolean; columns?: number }, private readonly lang: 'zh-TW' | 'en') {
    this.width = Math.max(60, Math.min(120, (out as { columns?: number }).columns ?? 100))
  }

  get tty(): boolean {
    return (this.out as { isTTY?: boolean }).isTTY === true
  }

  line(s: string): void {
    if (this.barShown) {
      this.out.write('\r\x1b[2K')
      this.barShown = false
    }
    this.out.write(`${s}\n`)
  }

  progress(p: TrainingProgress): void {
    if (p.stage.key !== 'training' && p.stage.key !== this.lastStage) {
      const label = { compiling: 'Compiling the training set', loading: 'Loading the model', evaluating: 'Evaluating', checkpointing: 'Saving a checkpoint', exporting: 'Exporting the adapter', training: '' }[p.stage.key]
      if (p.stage.key === 'compiling' || p.stage.key === 'loading' || p.stage.key === 'exporting') this.line(`${label} ...`)
    }
    this.lastStage = p.stage.key
    for (const e of p.evalPoints) this.line(`  eval  step ${e.step}  epoch ${e.epoch.toFixed(2)}  validation loss ${e.loss.toFixed(4)}${p.bestValLoss === e.loss ? '  (best)' : ''}`)
    if (p.points.length === 0 || p.totalSteps === 0) return
    const last = p.points[p.points.length - 1]
    if (this.tty) {
      const frac = Math.min(1, p.step / p.totalSteps)
      const info = ` ${String(Math.round(frac * 100)).padStart(3)}% step ${p.step}/${p.totalSteps} ep ${p.epoch.toFixed(1)}/${p.totalEpochs.toFixed(0)} loss ${fmtNum(last.loss)} ${fmtRate(p.tokensPerSecond)} tok/s ETA ${fmtTime(p.etaSeconds)}`
      const barWidth = Math.max(10, this.width - info.length - 3)
      const filled = Math.round(frac * barWidth)
      this.out.write(`\r\x1b[2K[${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}]${info}`)
      this.barShown = true
    } else {
      // Plain lines: about 20 per run, plus every epoch end.
      const every = Math.max(1, Math.floor(p.totalSteps / 20))
      for (const pt of p.points) {
        const epochEnd = p.stepsPerEpoch > 0 && pt.step % p.stepsPerEpoch === 0
        if (pt.step - this.lastLineStep >= every || epochEnd || pt.step === p.totalSteps) {
          this.lastLineStep = pt.step
          this.line(`  step ${pt.step}/${p.totalSteps}  epoch ${pt.epoch.toFixed(2)}  loss ${pt.loss.toFixed(4)}  lr ${pt.lr.toExponential(2)}  ${fmtRate(pt.tokensPerSecond)} tokens/s  ETA ${fmtTime(p.etaSeconds)}`)
        }
      }
    }
    void this.lang
  }
}

// ------------------------------------------------------------------------------------------------------------
// The pipeline
// ------------------------------------------------------------------------------------------------------------

async function resolveModel(ctx: AppContext, args: FinetuneArgs, projectModelId: number | null, noArgs: boolean): Promise<ModelForUse> {
  if (args.model !== null) {
    if (/^\d+$/.test(args.model)) return getModel(ctx, Number(args.model))
    const entry = await modelService(ctx).importFolder(args.model)
    return getModel(ctx, entry.id)
  }
  if (!noArgs && projectModelId !== null) return getModel(ctx, projectModelId)
  return ensureDemoModel(ctx)
}

async function ask(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stdout })
  try {
    const answer = (await rl.question(question)).trim().toLowerCase()
    return answer === '' || answer === 'y' || answer === 'yes'
  } finally {
    rl.close()
  }
}

/** Greedy answer of the trained adapter to one training question, streamed to `print`. */
async function sampleAnswer(ctx: AppContext, run: Run, model: ModelForUse, print: (s: string) => void): Promise<void> {
  if (!run.summary.adapterDir || run.snapshotId === null) return
  const { snapshot, rows } = loadSnapshot(ctx.repos(), run.snapshotId)
  const summaryRowIds = new Set<number>()
  try {
    const { readFileSync } = await import('node:fs')
    const { join } = await import('node:path')
    const s = JSON.parse(readFileSync(join(run.outputDir, 'data', 'summary.json'), 'utf8')) as { train: { rowIds: number[] } }
    for (const id of s.train.rowIds) summaryRowIds.add(Number(id))
  } catch {
    /* any row will do */
  }
  const row = rows.find((r) => summaryRowIds.has(r.id)) ?? rows[0]
  if (!row) return
  const format = chatFormatFor(await loadTokenizer(model.path), model.templateChoice)
  const messages = [...(snapshot.systemPrompt ? [{ role: 'system' as const, content: snapshot.systemPrompt }] : []), { role: 'user' as const, content: row.question }]
  const { ids } = format.encode(messages, { addGenerationPrompt: true })
  const engine = engineOf(ctx)
  const lease = engine.acquire({ kind: 'chat', sessionId: 'finetune-cli', label: 'finetune' })
  try {
    await engine.call('model.load', { folder: model.path, device: run.device, quant: run.settings.quant, doubleQuant: run.settings.doubleQuant, computeDtype: run.settings.computeDtype })
    const { adapterId } = await engine.call('adapter.load', { dir: run.summary.adapterDir })
    print(`\nQuestion: ${row.question}`)
    print(`Trained answer: ${row.answer}`)
    const tokens: number[] = []
    let shown = ''
    process.stdout.write('Model says: ')
    const result = await engine.call('generate', { promptIds: Array.from(ids), sampling: { maxNewTokens: 120, temperature: 0, stopIds: format.stopIds }, adapterId }, {
      onEvent: ({ token }) => {
        tokens.push(token)
        const text = format.tokenizer.decode(tokens, { skipSpecialTokens: true })
        if (text.startsWith(shown) && !text.endsWith('\uFFFD')) {
          process.stdout.write(text.slice(shown.length))
          shown = text
        }
      },
    })
    const full = format.tokenizer.decode(result.tokens, { skipSpecialTokens: true })
    process.stdout.write(`${full.slice(shown.length)}\n`)
    await engine.call('adapter.dispose', { adapterId })
  } finally {
    lease.release()
  }
}

export async function finetune(argv: string[]): Promise<number> {
  let args: FinetuneArgs
  try {
    args = parseFinetuneArgs(argv)
  } catch (err) {
    console.error((err as Error).message)
    return 2
  }
  if (args.help) {
    console.log(USAGE)
    return 0
  }
  const noArgs = argv.length === 0 || argv.every((a) => a === '--yes' || a === '-y' || a === '--new' || a.startsWith('--data-dir'))
  const ctx = createAppContext({ mode: 'browser', dataDir: args.dataDir, settings: createConfSettings(args.dataDir) })
  if (ctx.status.state !== 'ready') {
    console.error(ctx.status.message)
    return 1
  }
  const lang = ctx.settings.get().language
  const printer = new ProgressPrinter(process.stdout, lang)
  const say = (s: string) => printer.line(s)
  const training: TrainingService = trainingServiceOf(ctx)
  let exitCode = 1
  let runId: number | null = null
  let interrupts = 0
  let firstInterrupt = 0
  const onSigint = () => {
    // A library of the settings store (when-exit, via conf/atomically) re-raises the signal it saw: the same Ctrl+C
    // arrives twice within a few milliseconds. Only a second press a moment later means "quit now".
    if (interrupts > 0 && Date.now() - firstInterrupt < 700) return
    interrupts++
    if (interrupts === 1 && runId !== null) {
      firstInterrupt = Date.now()
      say('\nStopping after the current step (a checkpoint is saved) ... press Ctrl+C again to quit at once.')
      void training.stop(runId).catch(() => undefined)
    } else {
      say('Quitting. Run the same command again to resume from the last checkpoint.')
      process.exit(130)
    }
  }
  process.on('SIGINT', onSigint)
  process.on('SIGTERM', onSigint)
  try {
    const repos = ctx.repos()
    const project = args.project === null ? repos.projects.get(seedSampleProject(repos, ctx.settings))! : repos.projects.getByName(args.project)
    if (!project) {
      const names = repos.projects.list().map((p) => `"${p.name}"`).join(', ')
      console.error(`There is no project named "${args.project}" in ${args.dataDir}. Projects: ${names || 'none'}.`)
      return 2
    }
    const model = await resolveModel(ctx, args, project.modelId, noArgs && args.project === null)
    say(`QA Tuner fine-tuning · project "${project.name}" (${project.rowCount} rows) · model "${model.name}" · data folder ${args.dataDir}`)

    // Resume the latest resumable run of this project and model (same preset when one was given).
    const previous = training.list(project.id).find((r) => r.modelId === model.id && r.resumable && (args.preset === null || r.preset === args.preset))
    let run: Run
    if (previous && !args.fresh) {
      const from = previous.resumeFromStep ?? 0
      const question = `Run #${previous.id} (${previous.preset}) was ${previous.status} at step ${previous.step}/${previous.totalSteps}. Resume it from step ${from}? [Y/n] `
      const yes = args.yes || !process.stdin.isTTY || !printer.tty ? true : await ask(question)
      if (yes) {
        if (args.yes || !process.stdin.isTTY || !printer.tty) say(`Resuming run #${previous.id} from step ${from} (use --new to start over).`)
        run = await training.resume(previous.id)
      } else run = await startNew()
    } else run = await startNew()

    async function startNew(): Promise<Run> {
      const preliminary: TrainingRequest = { projectId: project!.id, modelId: model.id, preset: (args.preset ?? 'demo') as TrainingRequest['preset'], settings: args.set, ...(args.device ? { device: args.device } : {}) }
      let req = preliminary
      if (args.preset === null && model.source !== 'demo') {
        const guess = await training.estimate(preliminary)
        req = { ...preliminary, preset: guess.suggestedPreset }
      }
      const est = await training.estimate(req)
      const fit = est.memory.estimate ? `${(est.memory.estimate.totalBytes / 1024 ** 3).toFixed(2)} GB of ${((est.memory.availableBytes ?? 0) / 1024 ** 3).toFixed(1)} GB (${est.memory.fit})` : 'unknown'
      say(`Preset "${req.preset}" on ${est.device?.id ?? '?'} (${est.device?.name ?? 'no device'}): ${est.data.trainRows} training + ${est.data.validationRows} validation rows, ${est.steps.total} steps (${est.steps.perEpoch} per epoch)`)
      say(`Memory: ${fit}. Time: about ${fmtTime(est.time.seconds)} (${est.time.basis === 'measured' ? 'measured speed' : 'assumed speed'}).`)
      for (const p of est.problems) say(`${p.severity === 'error' ? 'Error' : 'Warning'}: ${p.message[lang]}`)
      if (!est.canStart) throw Object.assign(new Error('The run cannot start; change what the errors above say.'), { exitCode: 2 })
      return training.start(req)
    }

    runId = run.id
    say(`Run #${run.id}: ${run.name} (folder ${run.outputDir})`)
    const off = ctx.events.onAny((event, payload) => {
      if (event === 'training:progress' && (payload as TrainingProgress).runId === runId) printer.progress(payload as TrainingProgress)
    })
    const done = await training.whenDone(run.id)
    off()
    const metrics = training.metrics(run.id, 100_000)
    const first = metrics.train[0]?.loss
    const last = metrics.train.at(-1)?.loss
    say(`Run #${done.id} ${done.status} at step ${done.step}/${done.totalSteps}${first !== undefined && last !== undefined ? ` · training loss ${first.toFixed(3)} -> ${last.toFixed(3)}` : ''}${done.bestValLoss !== null ? ` · best validation loss ${done.bestValLoss.toFixed(3)}` : ''}`)
    if (done.error) say(`Error: ${done.error.message}`)
    if (done.summary.verdict) say(`Verdict: ${done.summary.verdict.message[lang]}`)
    if (done.summary.adapterDir) say(`Adapter (PEFT): ${done.summary.adapterDir} (${done.summary.adapterFrom}, step ${done.summary.adapterStep})`)
    if (done.status === 'completed') {
      await sampleAnswer(ctx, done, model, say)
      exitCode = 0
    } else if (done.status === 'stopped') {
      say(`Stopped. Run the same command again to resume from step ${done.resumeFromStep ?? done.step}.`)
      exitCode = 130
    }
  } catch (err) {
    const e = err as Error & { exitCode?: number }
    console.error(e.message)
    exitCode = e.exitCode ?? 1
  } finally {
    process.off('SIGINT', onSigint)
    process.off('SIGTERM', onSigint)
    await ctx.close()
  }
  return exitCode
}

if (process.argv[1] && /finetune\.(js|ts)$/.test(process.argv[1])) {
  void finetune(process.argv.slice(2)).then((code) => process.exit(code))
}
