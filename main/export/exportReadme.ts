// README.md files written into an export: what the model is (base model, chat template, stop tokens, system
// prompt, training settings), what each folder holds and how to load it (peft/transformers, vLLM, llama.cpp,
// Ollama, LM Studio), and the self-test result. Plain Markdown, English (the tools it talks about are English-only),
// with a one-line Traditional Chinese summary on top.
import type { SelfTestReport } from './selfTest/selfTest'

export interface ExportFacts {
  exportName: string
  baseModelName: string
  /** Hub repo id, or null for a local folder. */
  baseRepoId: string | null
  baseModelPath: string
  architecture: string
  /** "the model's own (tokenizer_config.json)", "built-in llama3", ... */
  templateSource: string
  chatTemplate: string
  stopTokens: { id: number; text: string }[]
  systemPrompt: string
  lora: { r: number; alpha: number; dropout: number; targets: string[] }
  /** Free-form training facts (run name, steps, learning rate, epochs, best validation loss ...). */
  training: [string, string][]
  createdAt: string
}

function fence(text: string, lang = ''): string {
  const longest = Math.max(2, ...(text.match(/`+/g) ?? []).map((m) => m.length))
  const f = '`'.repeat(longest + 1)
  return `${f}${lang}\n${text}\n${f}`
}

function pyString(s: string): string {
  return JSON.stringify(s)
}

function modelSection(f: ExportFacts): string {
  const stops = f.stopTokens.map((s) => `\`${s.text}\` (id ${s.id})`).join(', ')
  const rows: [string, string][] = [
    ['Base model', f.baseRepoId ? `${f.baseModelName} (\`${f.baseRepoId}\`)` : `${f.baseModelName} (local folder \`${f.baseModelPath}\`)`],
    ['Architecture', f.architecture],
    ['Chat template', f.templateSource],
    ['Stop tokens', stops],
    ['System prompt', f.systemPrompt.trim() ? f.systemPrompt.replace(/\n/g, ' ') : '(none)'],
    ['LoRA', `r ${f.lora.r}, alpha ${f.lora.alpha} (scaling ${(f.lora.alpha / f.lora.r).toPrecision(4)}), dropout ${f.lora.dropout}, targets ${f.lora.targets.join(', ')}`],
    ...f.training,
    ['Exported', f.createdAt],
  ]
  return [
    '| | |',
    '|---|---|',
    ...rows.map(([k, v]) => `| ${k} | ${v.replace(/\|/g, '\\|')} |`),
    '',
    'Use exactly this chat template and stop at these tokens: the model learned to end every answer with the',
    `end-of-turn token; a runtime that does not stop there keeps writing ("rambles").`,
    '',
    '<details><summary>Chat template (Jinja, as in tokenizer_config.json)</summary>',
    '',
    fence(f.chatTemplate, 'jinja'),
    '',
    '</details>',
  ].join('\n')
}

function generateSnippet(f: ExportFacts, load: string): string {
  const messages = [
    ...(f.systemPrompt.trim() ? [`{"role": "system", "content": ${pyString(f.systemPrompt.trim())}}`] : []),
    '{"role": "user", "content": "..."}',
  ]
  return fence(
    [
      load,
      `messages = [${messages.join(', ')}]`,
      'ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt").to(model.device)',
      `out = model.generate(ids, max_new_tokens=256, do_sample=False, eos_token_id=[${f.stopTokens.map((s) => s.id).join(', ')}])`,
      'print(tok.decode(out[0][ids.shape[1]:], skip_special_tokens=True))',
    ].join('\n'),
    'python',
  )
}

export function adapterReadme(f: ExportFacts): string {
  const base = f.baseRepoId ?? f.baseModelPath
  return [
    `# ${f.exportName} — LoRA adapter (PEFT)`,
    '',
    '> 以 QA Tuner 微調的 LoRA 轉接器（PEFT 格式）。使用時請搭配下列基礎模型、對話範本與停止符號。',
    '',
    modelSection(f),
    '',
    '## Files',
    '',
    '- `adapter_config.json`, `adapter_model.safetensors`: the adapter in PEFT format (LoRA A/B weights, fp32).',
    '- `tokenizer.json`, `tokenizer_config.json` (with the training chat template), `special_tokens_map.json`: the',
    '  tokenizer to use with it.',
    '',
    '## Load with peft and transformers',
    '',
    generateSnippet(
      f,
      [
        'import torch',
        'from peft import PeftModel',
        'from transformers import AutoModelForCausalLM, AutoTokenizer',
        '',
        `base = AutoModelForCausalLM.from_pretrained(${pyString(base)}, torch_dtype=torch.bfloat16, device_map="auto")`,
        'model = PeftModel.from_pretrained(base, "path/to/this/folder")',
        'tok = AutoTokenizer.from_pretrained("path/to/this/folder")  # carries the training chat template',
      ].join('\n'),
    ),
    '',
    'To train further or to quantize the base with bitsandbytes, load the base with `BitsAndBytesConfig(load_in_4bit=True,',
    'bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.bfloat16)`: the adapter was',
    'trained on exactly that (NF4) base.',
    '',
  ].join('\n')
}

export function mergedReadme(f: ExportFacts, shards: number): string {
  return [
    `# ${f.exportName} — merged model (Hugging Face, bf16)`,
    '',
    '> 基礎模型與 LoRA 合併後的完整模型（bf16 safetensors），可直接用 transformers、vLLM 載入或上傳到 Hugging Face Hub。',
    '',
    modelSection(f),
    '',
    '## How it was made',
    '',
    'W\' = W + (alpha / r) · B · A for every linear layer the adapter changes, computed in fp32 from the ORIGINAL',
    '16-bit base weights and rounded to bf16 (round to nearest even). The app trains and chats with the base quantized',
    'to 4-bit NF4, so this model is slightly *more* precise than the one you tried in the app: greedy answers usually',
    'agree, and where two words were nearly tied they can differ.',
    '',
    '## Files',
    '',
    `- ${shards === 1 ? '`model.safetensors`' : `${shards} shards \`model-0000i-of-${String(shards).padStart(5, '0')}.safetensors\` and \`model.safetensors.index.json\``}: weights, bf16.`,
    '- `config.json` (torch_dtype bfloat16), `generation_config.json` (eos_token_id = every stop token), tokenizer files,',
    '  `tokenizer_config.json` with the training chat template.',
    '',
    '## Use',
    '',
    generateSnippet(
      f,
      [
        'import torch',
        'from transformers import AutoModelForCausalLM, AutoTokenizer',
        '',
        'model = AutoModelForCausalLM.from_pretrained("path/to/this/folder", torch_dtype=torch.bfloat16, device_map="auto")',
        'tok = AutoTokenizer.from_pretrained("path/to/this/folder")',
      ].join('\n'),
    ),
    '',
    'vLLM: `vllm serve path/to/this/folder` (it reads the stop tokens from generation_config.json and the template from',
    'tokenizer_config.json). Hub: `huggingface-cli upload <your-name>/<repo> path/to/this/folder`.',
    '',
  ].join('\n')
}

export function ggufReadme(f: ExportFacts, ggufFile: string, fileType: string, hasModelfile: boolean): string {
  return [
    `# ${f.exportName} — GGUF (${fileType}) for llama.cpp, Ollama and LM Studio`,
    '',
    '> 給 llama.cpp、Ollama、LM Studio 使用的 GGUF 檔，已內含對話範本與停止符號。',
    '',
    modelSection(f),
    '',
    '## Files',
    '',
    `- \`${ggufFile}\`: the merged model (base + LoRA, merged from the 16-bit base), ${fileType}, with the tokenizer, the`,
    '  chat template (`tokenizer.chat_template`) and the end-of-generation tokens in its metadata.',
    ...(hasModelfile ? ['- `Modelfile`: for Ollama (TEMPLATE, SYSTEM prompt, stop parameters).'] : []),
    '',
    '## Use',
    '',
    ...(hasModelfile ? ['- Ollama: `ollama create my-assistant -f Modelfile`, then `ollama run my-assistant`.'] : []),
    `- llama.cpp: \`llama-cli -m ${ggufFile} -cnv${f.systemPrompt.trim() ? ' -sys "<system prompt>"' : ''}\` (or \`llama-server -m ${ggufFile} --jinja\`).`,
    `- LM Studio: \`lms import ${ggufFile}\`, or copy it into LM Studio's models folder as \`<publisher>/<name>/${ggufFile}\`.`,
    '',
  ].join('\n')
}

export function selfTestMarkdown(r: SelfTestReport): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, '<br>')
  const head = r.state === 'passed' ? 'PASSED' : r.state === 'failed' ? 'FAILED' : 'SKIPPED'
  return [
    `# Self-test: ${head}`,
    '',
    `Runtime: ${r.runtime}. File: \`${r.ggufFile.split(/[\\/]/).pop()}\`. ${r.seconds.toFixed(1)} s.`,
    '',
    ...(r.reason ? [`Result: ${r.reason}.`, ''] : []),
    `- Chat template in the file equals the training template byte for byte: ${r.templateMatches ? 'yes' : 'NO'}`,
    `- llama.cpp ends generation at the end-of-turn token: ${r.endTokenIsEog ? 'yes' : 'NO'}`,
    '',
    '| # | question | app (engine) answer | llama.cpp answer | stopped | same first tokens | result |',
    '|---|---|---|---|---|---|---|',
    ...r.questions.map(
      (q, i) =>
        `| ${i + 1} | ${cell(q.question)} | ${cell(q.engineAnswer)} | ${cell(q.ggufAnswer)} | ${q.stopped ? 'yes' : 'NO'} | ${q.matchedTokens}/${q.requiredTokens} | ${q.passed ? 'pass' : 'FAIL'} |`,
    ),
    '',
  ].join('\n')
}
