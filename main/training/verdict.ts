// A plain-language verdict on a run from its curves (pure; unit-tested in tests/main/training/verdict.test.ts).
//
//   notLearning    the smoothed training loss fell by less than 5% from its start (or rose / went non-finite)
//   overfitting    the validation loss bottomed out and then rose clearly (>= 5% above its best, over at least two
//                  later evaluations) while the training loss kept falling
//   stillLearning  the validation loss was still improving at the end (its best is the last or near it and the last
//                  step improved by >= 1%), or, without validation, the training loss was still falling by >= 3%
//                  over the last fifth of the run
//   good           the loss fell and flattened out without overfitting
//   unknown        too few points to say (fewer than 4 training steps)
// Smoothing: the mean of the first and of the last 10% of training steps (at least one step each).
import type { EvalPoint, LocalText, RunStopReason, RunVerdict } from '../../preload/contract'

export interface VerdictInput {
  train: readonly { step: number; loss: number }[]
  evals: readonly EvalPoint[]
  stopReason?: RunStopReason | null
}

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length

const fmt = (x: number): string => (Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(3))

export function computeVerdict(input: VerdictInput): RunVerdict {
  const train = input.train.filter((p) => Number.isFinite(p.loss)).slice().sort((a, b) => a.step - b.step)
  const evals = input.evals.filter((p) => Number.isFinite(p.loss)).slice().sort((a, b) => a.step - b.step)
  const nonFinite = input.train.some((p) => !Number.isFinite(p.loss))
  let best: EvalPoint | null = null
  for (const e of evals) if (!best || e.loss < best.loss) best = e
  const lastVal = evals.at(-1) ?? null
  const evidence: RunVerdict['evidence'] = {
    firstTrainLoss: null,
    lastTrainLoss: null,
    bestValLoss: best?.loss ?? null,
    bestValStep: best?.step ?? null,
    lastValLoss: lastVal?.loss ?? null,
  }
  const say = (kind: RunVerdict['kind'], message: LocalText): RunVerdict => ({ kind, message, evidence })

  if (nonFinite) {
    return say('notLearning', {
      'zh-TW': '損失變成了無限大或非數值：訓練發散了。請把學習率調低（例如除以 10）再試一次。',
      en: 'The loss became infinite or not a number: training diverged. Lower the learning rate (for example divide it by 10) and try again.',
    })
  }
  if (train.length < 4) {
    return say('unknown', { 'zh-TW': '步數太少，還看不出學習狀況。', en: 'Too few steps to tell how the training went.' })
  }
  const w = Math.max(1, Math.floor(train.length / 10))
  const first = mean(train.slice(0, w).map((p) => p.loss))
  const last = mean(train.slice(-w).map((p) => p.loss))
  evidence.firstTrainLoss = first
  evidence.lastTrainLoss = last
  const numbers = `${fmt(first)} → ${fmt(last)}`

  if (!(last < first * 0.95)) {
    return say('notLearning', {
      'zh-TW': `訓練損失幾乎沒有下降（${numbers}）：模型沒有學到東西。試著提高學習率、增加 epoch，或確認資料與答案是否正確。`,
      en: `The training loss hardly fell (${numbers}): the model is not learning. Try a higher learning rate or more epochs, and check the rows and answers.`,
    })
  }

  if (best && lastVal && evals.length >= 3) {
    const after = evals.filter((e) => e.step > best!.step)
    const trainAtBest = train.filter((p) => p.step <= best!.step).slice(-w).map((p) => p.loss)
    const trainFellAfter = trainAtBest.length > 0 && last < mean(trainAtBest)
    if (after.length >= 2 && lastVal.loss >= best.loss * 1.05 && trainFellAfter) {
      const stopped = input.stopReason === 'earlyStopping'
      return say('overfitting', {
        'zh-TW': `過度擬合：驗證損失在第 ${best.step} 步最低（${fmt(best.loss)}），之後上升到 ${fmt(lastVal.loss)}，訓練損失卻繼續下降。${stopped ? '已提早停止，' : ''}使用第 ${best.step} 步的最佳版本；下次可減少 epoch 或增加資料。`,
        en: `Overfitting: the validation loss was lowest at step ${best.step} (${fmt(best.loss)}) and rose to ${fmt(lastVal.loss)} after it while the training loss kept falling. ${stopped ? 'Early stopping ended the run; ' : ''}the best version (step ${best.step}) is the one to use. Next time try fewer epochs or more rows.`,
      })
    }
  }

  if (evals.length >= 2 && best && lastVal) {
    const prev = evals[evals.length - 2]
    const improving = best.step === lastVal.step && lastVal.loss <= prev.loss * 0.99
    if (improving && input.stopReason !== 'earlyStopping') {
      return say('stillLearning', {
        'zh-TW': `還在學習：驗證損失到最後仍在下降（${fmt(prev.loss)} → ${fmt(lastVal.loss)}）。多跑幾個 epoch 可能會更好。`,
        en: `Still learning: the validation loss was still falling at the end (${fmt(prev.loss)} → ${fmt(lastVal.loss)}). More epochs would probably help.`,
      })
    }
  } else if (evals.length < 2) {
    const tail = train.slice(-Math.max(2, Math.floor(train.length / 5)))
    const tw = Math.max(1, Math.floor(tail.length / 4))
    const tailStart = mean(tail.slice(0, tw).map((p) => p.loss))
    const tailEnd = mean(tail.slice(-tw).map((p) => p.loss))
    if (tailEnd < tailStart * 0.97) {
      return say('stillLearning', {
        'zh-TW': `還在學習：最後一段的訓練損失仍明顯下降（${fmt(tailStart)} → ${fmt(tailEnd)}）。多跑幾個 epoch 可能會更好（沒有驗證集，無法判斷是否過度擬合）。`,
        en: `Still learning: the training loss was still clearly falling at the end (${fmt(tailStart)} → ${fmt(tailEnd)}). More epochs would probably help (without a validation set overfitting cannot be seen).`,
      })
    }
  }

  const val = best ? { zh: `，驗證損失最低 ${fmt(best.loss)}（第 ${best.step} 步）`, en: `; the best validation loss was ${fmt(best.loss)} (step ${best.step})` } : { zh: '', en: '' }
  return say('good', {
    'zh-TW': `學得不錯：訓練損失 ${numbers} 後趨於平穩${val.zh}。`,
    en: `Good: the training loss fell ${numbers} and levelled off${val.en}.`,
  })
}
