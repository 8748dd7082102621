// Proves an exported GGUF works in a real llama.cpp runtime (node-llama-cpp's prebuilt CPU binary) before the user
// takes it anywhere: a handful of the project's training questions, formatted with the training template, are
// answered greedily by llama.cpp and by the app's own engine (base + LoRA adapter, as in the app's chat), then per
// question: did llama.cpp stop at an end-of-turn token (the classic failure of exported models is that they never
// stop), and do the two answers agree on their first tokens. It also checks that llama.cpp tokenizes the rendered
// prompt to the same ids as the app, that llama.cpp treats the template's end-of-turn token as end of generation,
// and that tokenizer.chat_template in the file is the training template byte for byte.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { availableParallelism } from 'node:os'
import { dirname, join } from 'node:path'
import type { ExportSelfTestQuestion, ExportSelfTestReport } from '../../../preload/contract'
import type { ChatMessage } from '../../tokenizer/ChatFormat'
import { readGgufHeader } from '../gguf/ggufFormat'

export interface SelfTestPrompt {
  question: string
  /** The dataset's answer (shown beside the two generated answers). */
  reference: string
  /** Prompt ids: system (if any) + user, with the generation prompt, encoded by the app's ChatFormat. */
  ids: number[]
  /** The same prompt rendered as text (to check llama.cpp's own tokenization). */
  text: string
}

export type SelfTestQuestionResult = ExportSelfTestQuestion
export type SelfTestReport = ExportSelfTestReport

export interface LlamaCppRun {
  runtime: string
  endTokenIsEog: boolean
  answers: { tokens: number[]; stopped: boolean; promptIds: number[] }[]
}

export interface SelfTestOptions {
  ggufPath: string
  chatTemplate: string
  endOfTurnId: number
  prompts: SelfTestPrompt[]
  maxNewTokens: number
  /** Leading tokens that must agree (default 8). */
  compareTokens?: number
  /** The app engine's greedy answers for the prompts (ids, stop token included). */
  engineAnswers: (prompts: SelfTestPrompt[]) => Promise<number[][]>
  decode: (ids: number[]) => string
  /** F32 KV cache in llama.cpp (exact comparisons in tests); default F16 like every llama.cpp app. */
  exactKvCache?: boolean
  signal?: AbortSignal
  /** Test hook: the llama.cpp runner. */
  runLlamaCpp?: typeof runLlamaCpp
}

/** The prompt messages exactly as the training-set compiler builds them (system only when non-empty). */
export function promptMessages(systemPrompt: string, question: string): ChatMessage[] {
  return [...(systemPrompt.trim() ? [{ role: 'system', content: systemPrompt }] : []), { role: 'user', content: question }]
}

/** Greedy answers from llama.cpp on the CPU for each prompt (fed as ids), plus its tokenization of each text. */
export async function runLlamaCpp(ggufPath: string, prompts: SelfTestPrompt[], opts: { maxNewTokens: number; endOfTurnId: number; exactKvCache?: boolean; signal?: AbortSignal }): Promise<LlamaCppRun> {
  const nlc = await import('node-llama-cpp')
  // One thread per available core: node-llama-cpp's CPU default is at least 4, and more threads than cores make
  // llama.cpp's spinning workers crawl (40x slower on a 2-core machine). QT_LLAMA_THREADS overrides it (the tests
  // use 1: test files run side by side).
  const threads = Math.max(1, Number(process.env.QT_LLAMA_THREADS) || availableParallelism())
  const llama = await nlc.getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, progressLogs: false, logLevel: nlc.LlamaLogLevel.error, maxThreads: threads })
  try {
    const model = await llama.loadModel({ modelPath: ggufPath, gpuLayers: 0 })
    try {
      const longest = Math.max(...prompts.map((p) => p.ids.length))
      const context = await model.createContext({
        contextSize: Math.max(256, longest + opts.maxNewTokens + 8),
        sequences: 1,
        threads,
        flashAttention: false,
        ...(opts.exactKvCache ? { experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' } : {}),
      })
      try {
        const seq = context.getSequence()
        const answers: LlamaCppRun['answers'] = []
        for (const p of prompts) {
          if (opts.signal?.aborted) break
          await seq.clearHistory()
          const tokens: number[] = []
          let stopped = false
          for await (const t of seq.evaluate(p.ids as never[], { temperature: 0, yieldEogToken: true })) {
            tokens.push(t)
            if (model.isEogToken(t)) {
              stopped = true
              break
            }
            if (tokens.length >= opts.maxNewTokens || opts.signal?.aborted) break
          }
          answers.push({ tokens, stopped, promptIds: model.tokenize(p.text, true) as number[] })
        }
        const version = nodeLlamaCppVersion()
        return { runtime: `llama.cpp ${llama.llamaCppRelease.release} via node-llama-cpp${version ? ` ${version}` : ''} (CPU)`, endTokenIsEog: model.isEogToken(opts.endOfTurnId as never), answers }
      } finally {
        await context.dispose()
      }
    } finally {
      await model.dispose()
    }
  } finally {
    await llama.dispose()
  }
}

/** The installed node-llama-cpp version (its package.json is not exported, so read it beside dist/). */
export function nodeLlamaCppVersion(): string | null {
  try {
    const entry = createRequire(import.meta.url).resolve('node-llama-cpp')
    return (JSON.parse(readFileSync(join(dirname(entry), '..', 'package.json'), 'utf8')) as { version?: string }).version ?? null
  } catch {
    return null
  }
}

function commonPrefix(a: number[], b: number[]): number {
  let i = 0
  while (i < a.length && i < b.length && a[i] === b[i]) i++
  return i
}

export async function runSelfTest(o: SelfTestOptions): Promise<SelfTestReport> {
  const t0 = Date.now()
  const compare = o.compareTokens ?? 8
  const file = await readGgufHeader(o.ggufPath)
  const stored = file.metadata.get('tokenizer.chat_template')
  const templateMatches = stored?.kind === 'string' && stored.value === o.chatTemplate
  const engine = await o.engineAnswers(o.prompts)
  let run: LlamaCppRun
  try {
    run = await (o.runLlamaCpp ?? runLlamaCpp)(o.ggufPath, o.prompts, { maxNewTokens: o.maxNewTokens, endOfTurnId: o.endOfTurnId, exactKvCache: o.exactKvCache, signal: o.signal })
  } catch (err) {
    return {
      state: 'skipped',
      reason: `llama.cpp could not run the file here: ${(err as Error).message}`,
      runtime: 'llama.cpp (node-llama-cpp)',
      ggufFile: o.ggufPath,
      templateMatches,
      endTokenIsEog: false,
      questions: [],
      seconds: (Date.now() - t0) / 1000,
    }
  }
  const questions: SelfTestQuestionResult[] = o.prompts.map((p, i) => {
    const ref = engine[i] ?? []
    const got = run.answers[i] ?? { tokens: [], stopped: false, promptIds: [] }
    const matched = commonPrefix(ref, got.tokens)
    const required = Math.min(compare, ref.length)
    const tokenizerMatches = got.promptIds.length === p.ids.length && got.promptIds.every((id, k) => id === p.ids[k])
    return {
      question: p.question,
      reference: p.reference,
      engineAnswer: o.decode(ref),
      ggufAnswer: o.decode(got.tokens),
      engineTokens: ref,
      ggufTokens: got.tokens,
      matchedTokens: matched,
      requiredTokens: required,
      stopped: got.stopped,
      tokenizerMatches,
      passed: got.stopped && matched >= required && tokenizerMatches,
    }
  })
  const problems: string[] = []
  if (!templateMatches) problems.push('the chat template in the file differs from the training template')
  if (!run.endTokenIsEog) problems.push('llama.cpp does not treat the end-of-turn token as the end of an answer')
  const failed = questions.filter((q) => !q.passed)
  if (failed.some((q) => !q.stopped)) problems.push(`${failed.filter((q) => !q.stopped).length} answer(s) did not stop at the end token`)
  if (failed.some((q) => q.stopped && q.matchedTokens < q.requiredTokens)) problems.push(`${failed.filter((q) => q.stopped && q.matchedTokens < q.requiredTokens).length} answer(s) start differently from the app's`)
  if (questions.some((q) => !q.tokenizerMatches)) problems.push('llama.cpp tokenizes the prompt differently from the app')
  return {
    state: problems.length === 0 && questions.length > 0 ? 'passed' : 'failed',
    reason: problems.length ? problems.join('; ') : questions.length === 0 ? 'no questions were asked' : null,
    runtime: run.runtime,
    ggufFile: o.ggufPath,
    templateMatches,
    endTokenIsEog: run.endTokenIsEog,
    questions,
    seconds: (Date.now() - t0) / 1000,
  }
}
