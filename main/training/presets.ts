// Training presets and the advanced panel's metadata: every setting with its range and a one-line explanation in
// zh-TW and English. The UI renders this data as is (training:presets); main resolves a request's settings from it.
//
// "Tutorial recipe" is ../shared/ENGINE_FACTS.md §1 exactly. The others are ours: sized for small, medium and large
// Q&A sets (answers-only loss, token-budget batching for the larger ones) and a CPU demo for the tiny demo model.
import type { LocalText, PresetId, SettingField, TrainingPreset, TrainingPresets, TrainingSettings } from '../../preload/contract'

const t = (zh: string, en: string): LocalText => ({ 'zh-TW': zh, en })

const ALL_TARGETS: TrainingSettings['loraTargets'] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']
const ATTENTION_TARGETS: TrainingSettings['loraTargets'] = ['q_proj', 'k_proj', 'v_proj', 'o_proj']

/** Hugging Face Trainer / PEFT defaults where the tutorial set nothing (the tutorial preset starts from these). */
const BASE: TrainingSettings = {
  trainOn: 'answers',
  maxLength: 1024,
  truncation: 'truncate',
  validationFraction: 0.1,
  splitSeed: 42,
  quant: 'nf4',
  doubleQuant: true,
  computeDtype: 'auto',
  loraR: 32,
  loraAlpha: 8,
  loraDropout: 0.1,
  loraTargets: ATTENTION_TARGETS,
  lr: 5e-5,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0,
  maxGradNorm: 1,
  gradAccum: 1,
  schedule: 'cosine_with_restarts',
  epochs: 10,
  warmupEpochs: 0.2,
  numCycles: 1,
  batching: 'rows',
  batchRows: 4,
  tokenBudget: 4096,
  groupByLength: false,
  shuffle: true,
  neftuneAlpha: 5,
  gradCheckpointing: true,
  seed: 42,
  evalEverySteps: 0,
  checkpointEverySteps: 0,
  keepLastCheckpoints: 3,
  earlyStoppingPatience: 3,
  earlyStoppingMinDelta: 0,
  exportAdapter: 'best',
}

export const PRESETS: readonly TrainingPreset[] = [
  {
    id: 'tutorial',
    name: t('教學範例設定', 'Tutorial recipe'),
    description: t(
      '與原教學相同：Llama-3-8B-Instruct、4-bit NF4 雙重量化、LoRA r=32（q/k/v/o，alpha 8，dropout 0.1）、NEFTune 5、AdamW 學習率 5e-5、每批 4 筆、10 個 epoch、含熱身的硬重啟餘弦排程（1 個週期，熱身 0.2 個 epoch）、驗證損失連續 3 個 epoch 未改善即提早停止，並保留最佳模型。',
      'The original tutorial exactly: Llama-3-8B-Instruct, 4-bit NF4 with double quantization, LoRA r=32 on q/k/v/o (alpha 8, dropout 0.1), NEFTune 5, AdamW lr 5e-5, batches of 4 rows, 10 epochs, cosine with hard restarts and warmup (1 cycle, warmup 0.2 epoch), early stopping after 3 epochs without a better validation loss, keeping the best model.',
    ),
    notes: [
      t(
        '教學沒有設定 lora_alpha，所以沿用 PEFT 預設值 8；縮放比例 alpha/r = 0.25，比常見設定（alpha = 2r）弱很多，學得較慢。',
        'The tutorial did not set lora_alpha, so PEFT\'s default 8 applies: the scaling alpha/r is 0.25, far weaker than the common alpha = 2r, so it learns slowly.',
      ),
      t(
        '教學對所有 token 計算損失（系統提示、問題也一起學），不只答案；每筆都相同的系統提示會讓損失看起來下降得很快。',
        'The tutorial trains on every token (system prompt and question too), not only the answers; the system prompt repeated in every row makes the loss look like it falls fast.',
      ),
      t(
        '教學用訓練集本身做驗證，因此提早停止幾乎不會觸發；這裡改為保留 10% 的資料做真正的驗證。',
        'The tutorial validated on its own training set, so early stopping hardly ever fired; here 10% of the rows are held out for a real validation.',
      ),
      t('「熱身 0.2 個 epoch」指 0.2 × 每個 epoch 的步數，總長為 10 × 每個 epoch 的步數。', '"Warmup 0.2 epoch" means 0.2 x steps per epoch; the total is 10 x steps per epoch.'),
      t('需要 NVIDIA GPU（Llama-3-8B 約需 12 GB）；在 CPU 上只適合小模型。', 'Needs an NVIDIA GPU (about 12 GB for Llama-3-8B); on the CPU it suits only tiny models.'),
    ],
    rows: null,
    device: 'gpu',
    settings: { ...BASE, trainOn: 'all' },
  },
  {
    id: 'small',
    name: t('小型資料集（500 筆以下）', 'Small dataset (up to 500 rows)'),
    description: t(
      '只學答案、LoRA r=16 套用在所有線性層（alpha 32）、學習率 2e-4、每批 4 筆、8 個 epoch，驗證損失連續 2 次未改善即停止。',
      'Answers-only loss, LoRA r=16 on every linear layer (alpha 32), lr 2e-4, batches of 4 rows, 8 epochs, stops after 2 evaluations without improvement.',
    ),
    notes: [
      t('資料少時多跑幾個 epoch 才學得會，但也容易過度擬合：提早停止會保留驗證損失最低的那一版。', 'Few rows need several epochs to stick, and overfit easily: early stopping keeps the version with the lowest validation loss.'),
    ],
    rows: { min: 1, max: 500 },
    device: 'gpu',
    settings: {
      ...BASE, loraR: 16, loraAlpha: 32, loraDropout: 0.05, loraTargets: ALL_TARGETS, lr: 2e-4, epochs: 8, warmupEpochs: 0.3,
      schedule: 'cosine', earlyStoppingPatience: 2, groupByLength: true,
    },
  },
  {
    id: 'medium',
    name: t('中型資料集（500 至 5,000 筆）', 'Medium dataset (500 to 5,000 rows)'),
    description: t(
      '只學答案、依 token 預算分批（每批 8,192 個 token，長度相近的放在一起）、LoRA r=16（alpha 32，所有線性層）、學習率 2e-4、4 個 epoch，每 200 步評估並存檔。',
      'Answers-only loss, token-budget batches (8,192 tokens, similar lengths together), LoRA r=16 (alpha 32, every linear layer), lr 2e-4, 4 epochs, evaluates and checkpoints every 200 steps.',
    ),
    notes: [t('依 token 預算分批能讓短問答一次多放幾筆，GPU 利用率較高。', 'Token-budget batches fit more short Q&A rows at once and keep the GPU busier.')],
    rows: { min: 500, max: 5000 },
    device: 'gpu',
    settings: {
      ...BASE, loraR: 16, loraAlpha: 32, loraDropout: 0.05, loraTargets: ALL_TARGETS, lr: 2e-4, epochs: 4, warmupEpochs: 0.1,
      schedule: 'cosine', batching: 'tokens', tokenBudget: 8192, groupByLength: true, validationFraction: 0.05,
      evalEverySteps: 200, checkpointEverySteps: 200, earlyStoppingPatience: 3,
    },
  },
  {
    id: 'large',
    name: t('大型資料集（5,000 筆以上）', 'Large dataset (5,000 rows and more)'),
    description: t(
      '只學答案、每批 16,384 個 token、LoRA r=16（alpha 16，所有線性層）、學習率 1e-4、2 個 epoch，每 500 步評估並存檔，保留最近 3 個存檔點。',
      'Answers-only loss, 16,384-token batches, LoRA r=16 (alpha 16, every linear layer), lr 1e-4, 2 epochs, evaluates and checkpoints every 500 steps, keeps the last 3 checkpoints.',
    ),
    notes: [t('資料多時 1 到 2 個 epoch 通常就夠了；較低的學習率讓訓練更穩定。', 'With many rows one or two epochs are usually enough; the lower learning rate keeps training steady.')],
    rows: { min: 5000, max: null },
    device: 'gpu',
    settings: {
      ...BASE, loraR: 16, loraAlpha: 16, loraDropout: 0.05, loraTargets: ALL_TARGETS, lr: 1e-4, epochs: 2, warmupEpochs: 0.05,
      schedule: 'cosine', batching: 'tokens', tokenBudget: 16384, groupByLength: true, validationFraction: 0.02,
      evalEverySteps: 500, checkpointEverySteps: 500, earlyStoppingPatience: 3,
    },
  },
  {
    id: 'demo',
    name: t('示範（CPU）', 'Demo (CPU)'),
    description: t(
      '給內建的示範小模型用：在任何電腦的 CPU 上約一分鐘，損失從約 7.4 降到 0.2 左右，之後模型能背出範例資料的答案。學習率 1.5e-3、LoRA r=64（alpha 128，所有線性層）、每批 4 筆、24 個 epoch，輸出最後一步的結果。',
      'For the bundled tiny demo model: in about a minute on any computer\'s CPU the loss falls from about 7.4 to about 0.2, and the model then recites the sample rows\' answers. lr 1.5e-3, LoRA r=64 (alpha 128, every linear layer), batches of 4 rows, 24 epochs, exports the final step.',
    ),
    notes: [
      t('示範模型是隨機初始化的極小模型：它把訓練過的問題的答案背起來，但不會真正理解語言，沒看過的問題（驗證集）答不好，驗證損失也幾乎不降。', 'The demo model is a tiny randomly initialised model: it learns the trained questions\' answers by heart but does not understand language, so questions it has not seen (the validation rows) get poor answers and the validation loss hardly falls.'),
      t('對所有 token 計算損失：在示範模型上比只學答案學得快（實測）；大模型請改用其他設定。', 'Trains on every token: on the demo model this learns faster than answers only (measured); use another preset for real models.'),
    ],
    rows: null,
    device: 'cpu',
    settings: {
      ...BASE, trainOn: 'all', maxLength: 256, loraR: 64, loraAlpha: 128, loraDropout: 0, loraTargets: ALL_TARGETS, lr: 1.5e-3, epochs: 24,
      warmupEpochs: 0.5, schedule: 'cosine', neftuneAlpha: 0, gradCheckpointing: false, earlyStoppingPatience: 0, keepLastCheckpoints: 2,
      exportAdapter: 'final',
    },
  },
]

export const SETTING_GROUPS: TrainingPresets['groups'] = [
  { id: 'data', label: t('資料', 'Data') },
  { id: 'model', label: t('模型載入', 'Model loading') },
  { id: 'lora', label: t('LoRA', 'LoRA') },
  { id: 'optimizer', label: t('最佳化與排程', 'Optimizer and schedule') },
  { id: 'batching', label: t('分批', 'Batching') },
  { id: 'regularization', label: t('正規化與記憶體', 'Regularisation and memory') },
  { id: 'evaluation', label: t('評估、存檔與提早停止', 'Evaluation, checkpoints and early stopping') },
]

const opt = (value: string, zh: string, en: string) => ({ value, label: t(zh, en) })

export const SETTING_FIELDS: readonly SettingField[] = [
  // Data
  {
    key: 'trainOn', group: 'data', kind: 'choice', label: t('學習哪些 token', 'Loss on'),
    options: [opt('answers', '只學答案', 'Answers only'), opt('all', '全部 token（教學做法）', 'All tokens (the tutorial)')],
    explain: t('只學答案能讓模型專注在回答；教學對系統提示與問題也計算損失。', 'Answers only focuses the model on replying; the tutorial also scored the system prompt and question.'),
  },
  {
    key: 'maxLength', group: 'data', kind: 'integer', min: 8, max: 32768, step: 64, label: t('最大長度（token）', 'Max length (tokens)'),
    explain: t('每筆問答最多幾個 token；越長越吃記憶體。', 'Most tokens per Q&A sample; longer needs more memory.'),
  },
  {
    key: 'truncation', group: 'data', kind: 'choice', label: t('超長時', 'When too long'),
    options: [opt('truncate', '截斷答案結尾', 'Cut the answer\'s end'), opt('skip', '略過該筆', 'Skip the row')],
    explain: t('超過最大長度的資料要截斷還是略過。', 'Whether rows over the max length are cut or left out.'),
  },
  {
    key: 'validationFraction', group: 'data', kind: 'number', min: 0, max: 0.5, step: 0.01, label: t('驗證集比例', 'Validation share'),
    explain: t('保留多少比例的資料不訓練、只用來檢查；0 表示不驗證（無法提早停止）。', 'Share of rows held out to check the model; 0 means no validation (no early stopping).'),
  },
  {
    key: 'splitSeed', group: 'data', kind: 'integer', min: 0, max: 2 ** 31 - 1, label: t('分割種子', 'Split seed'),
    explain: t('決定哪些資料進驗證集；同一個種子每次都分得一樣。', 'Decides which rows go to validation; the same seed always splits the same way.'),
  },
  // Model loading
  {
    key: 'quant', group: 'model', kind: 'choice', label: t('量化', 'Quantization'),
    options: [opt('nf4', '4-bit NF4（QLoRA）', '4-bit NF4 (QLoRA)'), opt('none', '不量化', 'None')],
    explain: t('NF4 讓 8B 模型只佔約 5.7 GB；不量化較精確但需要約 3 倍記憶體。', 'NF4 makes an 8B model take about 5.7 GB; no quantization is more exact but needs about 3x the memory.'),
  },
  {
    key: 'doubleQuant', group: 'model', kind: 'boolean', label: t('雙重量化', 'Double quantization'), when: { key: 'quant', equals: 'nf4' },
    explain: t('把量化的縮放值再量化，每個權重再省約 0.37 bit。', 'Quantizes the scales too, saving about 0.37 bits per weight.'),
  },
  {
    key: 'computeDtype', group: 'model', kind: 'choice', label: t('運算精度', 'Compute precision'),
    options: [opt('auto', '自動', 'Auto'), opt('bf16', 'bfloat16', 'bfloat16'), opt('fp16', 'float16', 'float16'), opt('fp32', 'float32', 'float32')],
    explain: t('自動：支援時用 bfloat16，否則 float16；CPU 一律 float32。', 'Auto: bfloat16 where the GPU has it, else float16; the CPU always uses float32.'),
  },
  // LoRA
  {
    key: 'loraR', group: 'lora', kind: 'integer', min: 1, max: 256, label: t('秩 r', 'Rank r'),
    explain: t('LoRA 可學習的容量；8 到 64 常見，越大越能記住細節也越吃記憶體。', 'LoRA\'s capacity; 8 to 64 is common, larger remembers more detail and needs more memory.'),
  },
  {
    key: 'loraAlpha', group: 'lora', kind: 'number', min: 0.01, max: 1024, label: t('alpha', 'alpha'),
    explain: t('LoRA 更新的強度是 alpha/r；常見 alpha = 2r，教學是 8。', 'LoRA\'s update strength is alpha/r; alpha = 2r is common, the tutorial used 8.'),
  },
  {
    key: 'loraDropout', group: 'lora', kind: 'number', min: 0, max: 0.9, step: 0.01, label: t('LoRA dropout', 'LoRA dropout'),
    explain: t('訓練時隨機遮掉部分輸入，減少過度擬合。', 'Randomly drops inputs of the LoRA path while training, against overfitting.'),
  },
  {
    key: 'loraTargets', group: 'lora', kind: 'multi', label: t('套用的層', 'Target layers'),
    options: (['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const).map((x) => opt(x, x, x)),
    explain: t('LoRA 加在哪些線性層；全部加上學得較多，記憶體也較多。', 'Which linear layers get LoRA; all of them learn more and use more memory.'),
  },
  // Optimizer
  {
    key: 'lr', group: 'optimizer', kind: 'number', min: 0, max: 1, scale: 'log', label: t('學習率', 'Learning rate'),
    explain: t('每一步改變多少；太大會發散，太小學不動。QLoRA 常用 1e-4 到 2e-4。', 'How much each step changes; too high diverges, too low does not learn. QLoRA commonly uses 1e-4 to 2e-4.'),
  },
  {
    key: 'epochs', group: 'optimizer', kind: 'number', min: 0.1, max: 1000, step: 1, label: t('Epoch 數', 'Epochs'),
    explain: t('整份資料要看幾遍；提早停止可能會更早結束。', 'How many passes over the data; early stopping may end sooner.'),
  },
  {
    key: 'schedule', group: 'optimizer', kind: 'choice', label: t('學習率排程', 'LR schedule'),
    options: [
      opt('cosine_with_restarts', '餘弦（硬重啟）', 'Cosine with hard restarts'), opt('cosine', '餘弦', 'Cosine'), opt('linear', '線性遞減', 'Linear decay'),
      opt('constant', '固定', 'Constant'),
    ],
    explain: t('熱身後學習率怎麼隨時間下降。', 'How the learning rate falls over time after the warmup.'),
  },
  {
    key: 'warmupEpochs', group: 'optimizer', kind: 'number', min: 0, max: 100, step: 0.05, label: t('熱身（epoch）', 'Warmup (epochs)'),
    explain: t('一開始學習率從 0 慢慢升到設定值所花的時間，以 epoch 計。', 'Time, in epochs, for the learning rate to rise from 0 to its value at the start.'),
  },
  {
    key: 'numCycles', group: 'optimizer', kind: 'number', min: 0.1, max: 100, label: t('週期數', 'Cycles'), when: { key: 'schedule', equals: 'cosine_with_restarts' },
    explain: t('硬重啟餘弦排程重新開始幾次；教學用 1（等同一般餘弦）。', 'How many times the hard-restart cosine starts over; the tutorial uses 1 (same as plain cosine).'),
  },
  {
    key: 'weightDecay', group: 'optimizer', kind: 'number', min: 0, max: 1, step: 0.01, label: t('權重衰減', 'Weight decay'),
    explain: t('每步把 LoRA 權重往 0 拉一點，防止過度擬合；預設 0。', 'Pulls LoRA weights toward 0 each step against overfitting; default 0.'),
  },
  {
    key: 'maxGradNorm', group: 'optimizer', kind: 'number', min: 0, max: 100, step: 0.1, label: t('梯度裁剪', 'Gradient clipping'),
    explain: t('梯度總長度超過這個值就縮小，避免突然暴衝；0 表示不裁剪。', 'Scales gradients down when their norm exceeds this, against sudden jumps; 0 turns it off.'),
  },
  {
    key: 'gradAccum', group: 'optimizer', kind: 'integer', min: 1, max: 256, label: t('梯度累積', 'Gradient accumulation'),
    explain: t('累積幾個小批次才更新一次：等於更大的批次但不多佔記憶體。', 'Micro-batches added up per update: a larger batch without more memory.'),
  },
  {
    key: 'beta1', group: 'optimizer', kind: 'number', min: 0, max: 0.9999, step: 0.001, label: t('AdamW β1', 'AdamW beta1'),
    explain: t('梯度平均的慣性；通常不用改（0.9）。', 'Momentum of the gradient average; rarely changed (0.9).'),
  },
  {
    key: 'beta2', group: 'optimizer', kind: 'number', min: 0, max: 0.99999, step: 0.0001, label: t('AdamW β2', 'AdamW beta2'),
    explain: t('梯度平方平均的慣性；通常不用改（0.999）。', 'Momentum of the squared-gradient average; rarely changed (0.999).'),
  },
  {
    key: 'eps', group: 'optimizer', kind: 'number', min: 1e-12, max: 1e-3, scale: 'log', label: t('AdamW ε', 'AdamW epsilon'),
    explain: t('避免除以 0 的小數；通常不用改（1e-8）。', 'A small number that avoids dividing by zero; rarely changed (1e-8).'),
  },
  // Batching
  {
    key: 'batching', group: 'batching', kind: 'choice', label: t('分批方式', 'Batching'),
    options: [opt('rows', '固定筆數', 'Fixed rows'), opt('tokens', 'token 預算', 'Token budget')],
    explain: t('固定每批幾筆（教學），或每批最多幾個 token（長短不一時較省記憶體）。', 'A fixed number of rows per batch (the tutorial), or at most so many tokens (saves memory when lengths vary).'),
  },
  {
    key: 'batchRows', group: 'batching', kind: 'integer', min: 1, max: 1024, label: t('每批筆數', 'Rows per batch'), when: { key: 'batching', equals: 'rows' },
    explain: t('每一步同時看幾筆；越多越穩定也越吃記憶體。', 'Rows seen at once per step; more is steadier and needs more memory.'),
  },
  {
    key: 'tokenBudget', group: 'batching', kind: 'integer', min: 64, max: 1 << 20, step: 512, label: t('每批 token 預算', 'Tokens per batch'), when: { key: 'batching', equals: 'tokens' },
    explain: t('每批（含補齊）最多幾個 token；決定記憶體用量。', 'Most tokens (padding included) per batch; this sets the memory used.'),
  },
  {
    key: 'groupByLength', group: 'batching', kind: 'boolean', label: t('長度相近的放一起', 'Group by length'),
    explain: t('把長度相近的資料放在同一批，減少補齊浪費。', 'Puts rows of similar length in the same batch so less padding is wasted.'),
  },
  {
    key: 'shuffle', group: 'batching', kind: 'boolean', label: t('每個 epoch 打亂順序', 'Shuffle each epoch'),
    explain: t('每一遍用不同順序看資料，通常應開啟。', 'Sees the rows in a new order each pass; normally on.'),
  },
  // Regularisation and memory
  {
    key: 'neftuneAlpha', group: 'regularization', kind: 'number', min: 0, max: 50, step: 1, label: t('NEFTune 雜訊', 'NEFTune noise'),
    explain: t('訓練時在詞嵌入加一點雜訊，常讓回答更自然；0 表示關閉，教學用 5。', 'Adds noise to the embeddings while training, often giving more natural answers; 0 turns it off, the tutorial used 5.'),
  },
  {
    key: 'gradCheckpointing', group: 'regularization', kind: 'boolean', label: t('梯度檢查點', 'Gradient checkpointing'),
    explain: t('反向傳播時重算中間結果：大幅省記憶體，約慢 30%。', 'Recomputes activations in the backward pass: much less memory, about 30% slower.'),
  },
  {
    key: 'seed', group: 'regularization', kind: 'integer', min: 0, max: 2 ** 31 - 1, label: t('隨機種子', 'Random seed'),
    explain: t('資料順序、dropout 與雜訊的種子；同種子在 CPU 上可完全重現。', 'Seed of the data order, dropout and noise; the same seed reproduces a run exactly on the CPU.'),
  },
  // Evaluation, checkpoints, early stopping
  {
    key: 'evalEverySteps', group: 'evaluation', kind: 'integer', min: 0, max: 1_000_000, label: t('每幾步評估', 'Evaluate every N steps'),
    explain: t('除了每個 epoch 結束，也每 N 步算一次驗證損失；0 表示只在 epoch 結束時。', 'Besides each epoch\'s end, also compute the validation loss every N steps; 0 means only at epoch ends.'),
  },
  {
    key: 'checkpointEverySteps', group: 'evaluation', kind: 'integer', min: 0, max: 1_000_000, label: t('每幾步存檔', 'Checkpoint every N steps'),
    explain: t('除了每個 epoch 結束，也每 N 步存一次可續跑的存檔點；0 表示只在 epoch 結束時。', 'Besides each epoch\'s end, also save a resumable checkpoint every N steps; 0 means only at epoch ends.'),
  },
  {
    key: 'keepLastCheckpoints', group: 'evaluation', kind: 'integer', min: 1, max: 100, label: t('保留存檔點數', 'Checkpoints kept'),
    explain: t('保留最近幾個存檔點（最佳的那個另外一定保留）。', 'How many recent checkpoints to keep (the best one is always kept besides).'),
  },
  {
    key: 'earlyStoppingPatience', group: 'evaluation', kind: 'integer', min: 0, max: 1000, label: t('提早停止耐心', 'Early-stopping patience'),
    explain: t('驗證損失連續幾次沒有進步就停止；0 表示不提早停止。教學用 3。', 'Stop after this many evaluations without a better validation loss; 0 never stops early. The tutorial used 3.'),
  },
  {
    key: 'earlyStoppingMinDelta', group: 'evaluation', kind: 'number', min: 0, max: 10, step: 0.001, label: t('最小進步幅度', 'Minimum improvement'),
    explain: t('驗證損失至少要降低這麼多才算進步。', 'How much the validation loss must fall to count as better.'),
  },
  {
    key: 'exportAdapter', group: 'evaluation', kind: 'choice', label: t('輸出哪個版本', 'Adapter to export'),
    options: [opt('best', '驗證損失最低的', 'Best validation loss'), opt('final', '最後一步的', 'The final step')],
    explain: t('訓練結束時輸出哪一版 LoRA 轉接器（PEFT 格式）。', 'Which LoRA adapter (PEFT format) the run exports at the end.'),
  },
]

export function trainingPresets(): TrainingPresets {
  return { presets: PRESETS.map((p) => structuredClone(p)), fields: SETTING_FIELDS.map((f) => structuredClone(f)), groups: SETTING_GROUPS }
}

export function presetById(id: PresetId | string): TrainingPreset | undefined {
  return PRESETS.find((p) => p.id === id)
}

/** The preset that suits a dataset of `rows` usable rows on a device kind. */
export function suggestPreset(rows: number, backend: 'cpu' | 'cuda' | null, demoModel: boolean): PresetId {
  if (demoModel || backend !== 'cuda') return demoModel || backend === 'cpu' ? 'demo' : 'small'
  if (rows < 500) return 'small'
  if (rows < 5000) return 'medium'
  return 'large'
}

/** A preset's settings with changes applied (unknown keys were already refused by the handler's schema). */
export function resolveSettings(preset: PresetId | string, changes: Partial<TrainingSettings> = {}): TrainingSettings {
  const p = presetById(preset)
  if (!p) throw new Error(`Unknown preset ${preset}`)
  const out = { ...structuredClone(p.settings) }
  for (const [k, v] of Object.entries(changes)) if (v !== undefined) (out as Record<string, unknown>)[k] = structuredClone(v)
  return out
}
