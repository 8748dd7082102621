// Does the bundled demo model learn the sample project convincingly on the CPU, and how fast?
//
//   npx tsx tests/bench/demo.bench.ts                       # the shipped demo model + the "demo" preset
//   npx tsx tests/bench/demo.bench.ts '{"settings":{"epochs":10},"model":{"hiddenSize":192}}'   # an experiment
//
// The real pipeline minus the database: the demo model folder written by main/models/demoModel.ts (or a variant of
// it: model shape, init scales, tokenizer size), the sample project (resources/sample) compiled by the real compiler
// with the project's system prompt and the preset's split, the engine facade training in this process with the
// preset's settings (main/training/engineConfig), then a greedy answer to every question, scored by the chat page's
// character ROUGE-L (main/chat/similarity). Prints the loss on the answers of the training split before and after
// (and at each epoch), validation loss, ROUGE-L per split, and the CPU time (user+sys of this process, engine threads
// included) and wall time of training alone. Not part of npm test. Results: tests/bench/README.md.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TrainingSettings } from '../../preload/contract'
import { buildChatPrompt } from '../../main/chat/chatPrompt'
import { rougeL } from '../../main/chat/similarity'
import { compileDataset } from '../../main/datasets/compiler/compileDataset'
import { loadModel } from '../../main/engine/Engine'
import { demoModelOptions, writeDemoModel, type DemoModelVariant } from '../../main/models/demoModel'
import { DEFAULT_SYSTEM_PROMPT } from '../../main/projects/defaults'
import { readSampleRows } from '../../main/projects/seedSampleProject'
import { chatFormatFor } from '../../main/tokenizer/ChatFormat'
import { loadTokenizer } from '../../main/tokenizer/loadTokenizer'
import { compileOptions, loadParams, trainConfig } from '../../main/training/engineConfig'
import { PRESETS } from '../../main/training/presets'

interface BenchConfig {
  /** Changes to the demo model (demoModel.ts's DemoModelVariant); none = the shipped demo model. */
  model?: DemoModelVariant
  /** Changes on top of the "demo" preset. */
  settings?: Partial<TrainingSettings>
  /** Evaluate the training answers' loss every n epochs (0: only before and after). */
  evalEvery?: number
  /** Print every greedy answer. */
  verbose?: boolean
}

const cfg: BenchConfig = process.argv[2] ? (JSON.parse(process.argv[2]) as BenchConfig) : {}
const preset = PRESETS.find((p) => p.id === 'demo')!
const settings: TrainingSettings = { ...preset.settings, ...cfg.settings }
const cpuSeconds = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1e6

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'qt-demo-bench-'))
  try {
    const modelDir = join(root, 'model')
    await writeDemoModel(modelDir, cfg.model)
    const opts = demoModelOptions(cfg.model)
    const rows = readSampleRows().map((r, i) => ({ id: i + 1, question: r.question, answer: r.answer, enabled: true }))
    const systemPrompt = DEFAULT_SYSTEM_PROMPT['zh-TW']
    const base = { modelDir, systemPrompt, template: 'model' as const, ...compileOptions(settings) }
    const compiled = await compileDataset(rows, { ...base, outDir: join(root, 'data') })
    // The same split scored on the answers only, whatever the run trains on: comparable across trainOn settings.
    const scored = await compileDataset(rows, { ...base, trainOn: 'answers', outDir: join(root, 'scored') })
    const trainIds = new Set(compiled.train.rowIds.map(Number))

    const model = await loadModel(loadParams(settings, modelDir, 'cpu'))
    const c = model.config
    console.log(`model: hidden ${c.hiddenSize}, layers ${c.numLayers}, heads ${c.numHeads}/${c.numKvHeads}, ff ${c.intermediateSize}, vocab ${c.vocabSize}; init ${JSON.stringify({ initStd: opts.initStd, lmHeadStd: opts.lmHeadStd, embedStd: opts.embedStd })}`)
    console.log(`data: ${compiled.train.samples} train (${compiled.train.tokens} tokens, ${scored.train.targetTokens} answer tokens), ${compiled.validation.samples} validation; longest ${compiled.train.longest}`)
    console.log(`settings: ${JSON.stringify(cfg.settings ?? {})} -> trainOn ${settings.trainOn}, r ${settings.loraR}, alpha ${settings.loraAlpha}, lr ${settings.lr}, ${settings.schedule}, warmup ${settings.warmupEpochs} ep, epochs ${settings.epochs}, batch ${settings.batchRows}, quant ${settings.quant}`)

    const trainer = await model.createTrainer(trainConfig(settings), join(root, 'data', 'train.qtds'))
    const scoredTrain = join(root, 'scored', 'train.qtds')
    const scoredVal = join(root, 'scored', 'val.qtds')
    const before = await trainer.evaluate(scoredTrain)
    const beforeVal = compiled.validation.samples > 0 ? await trainer.evaluate(scoredVal) : NaN
    console.log(`before: train answers loss ${before.toFixed(3)}, validation ${beforeVal.toFixed(3)}; ${trainer.totalSteps} steps (${trainer.stepsPerEpoch} per epoch)`)

    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    let evalCpu = 0
    let evalWall = 0
    const epochLoss: string[] = []
    let firstStepLoss = NaN
    let lastStepLoss = NaN
    let done = 0
    let epoch = 0
    while (done < trainer.totalSteps) {
      const k = Math.min(trainer.stepsPerEpoch, trainer.totalSteps - done)
      let sum = 0
      let maxNorm = 0
      await trainer.step(k, (m) => {
        maxNorm = Math.max(maxNorm, m.gradNorm)
        if (Number.isNaN(firstStepLoss)) firstStepLoss = m.loss
        lastStepLoss = m.loss
        sum += m.loss
      })
      done += k
      epoch++
      let line = `epoch ${epoch}: mean step loss ${(sum / k).toFixed(3)}, max grad norm ${maxNorm.toFixed(2)}`
      if (cfg.evalEvery && epoch % cfg.evalEvery === 0 && done < trainer.totalSteps) {
        const e0 = process.cpuUsage()
        const w0 = performance.now()
        line += `, train answers ${(await trainer.evaluate(scoredTrain)).toFixed(3)}`
        evalCpu += cpuSeconds(process.cpuUsage(e0))
        evalWall += (performance.now() - w0) / 1000
      }
      epochLoss.push(line)
      console.log(`  ${line}  (${((performance.now() - t0) / 1000).toFixed(1)} s)`)
    }
    const trainCpu = cpuSeconds(process.cpuUsage(cpu0)) - evalCpu
    const trainWall = (performance.now() - t0) / 1000 - evalWall
    const after = await trainer.evaluate(scoredTrain)
    const afterVal = compiled.validation.samples > 0 ? await trainer.evaluate(scoredVal) : NaN
    console.log(`after: train answers loss ${after.toFixed(3)}, validation ${afterVal.toFixed(3)}; step loss ${firstStepLoss.toFixed(3)} -> ${lastStepLoss.toFixed(3)}`)
    console.log(`training: ${trainCpu.toFixed(1)} s CPU (user+sys), ${trainWall.toFixed(1)} s wall`)

    // Greedy answers to every question (train and validation), as the chat page's "Did it learn?" check asks them.
    const tokenizer = await loadTokenizer(modelDir)
    const format = chatFormatFor(tokenizer, 'model')
    const scores: { train: number[]; val: number[] } = { train: [], val: [] }
    const g0 = performance.now()
    for (const r of rows) {
      const prompt = buildChatPrompt(format, systemPrompt, [{ role: 'user', content: r.question }], c.maxPosition, 256)
      const cap = Math.min(256, 2 * tokenizer.encodePlain(r.answer).length + 16)
      const out = await model.generate(prompt.ids, { maxNewTokens: cap, temperature: 0, stopIds: prompt.stopIds }, { adapter: trainer.adapter })
      const text = tokenizer.decode(out.tokens, { skipSpecialTokens: true })
      const s = rougeL(text, r.answer)
      ;(trainIds.has(r.id) ? scores.train : scores.val).push(s)
      if (cfg.verbose) console.log(`  [${trainIds.has(r.id) ? 'train' : 'val'} ${s.toFixed(2)}] ${r.question}\n      ${text}`)
    }
    const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / Math.max(1, a.length)
    const frac = (a: number[], t: number) => a.filter((x) => x >= t).length
    const sorted = [...scores.train].sort((a, b) => a - b)
    console.log(`ROUGE-L train: mean ${mean(scores.train).toFixed(3)}, median ${sorted[Math.floor(sorted.length / 2)].toFixed(3)}, >= 0.5: ${frac(scores.train, 0.5)}/${scores.train.length}, >= 0.9: ${frac(scores.train, 0.9)}/${scores.train.length}; validation: mean ${mean(scores.val).toFixed(3)} (${scores.val.length}); generation ${((performance.now() - g0) / 1000).toFixed(1)} s`)
    console.log(`RESULT ${JSON.stringify({ before: +before.toFixed(3), after: +after.toFixed(3), val: +afterVal.toFixed(3), rouge: +mean(scores.train).toFixed(3), ge05: frac(scores.train, 0.5), n: scores.train.length, valRouge: +mean(scores.val).toFixed(3), cpu: +trainCpu.toFixed(1), wall: +trainWall.toFixed(1) })}`)
    await model.close()
  } finally {
    rmSync(root, { recursive: true, force: true })
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
