// An Ollama Modelfile next to the GGUF: FROM the file, the chat template translated to Ollama's Go text/template
// syntax (.System, .Messages with .Role/.Content, $last for the generation prompt), one PARAMETER stop per stop
// token, and the project's system prompt as SYSTEM. Two formats, the ones the app trains with:
//   llama3  <|start_header_id|>role<|end_header_id|>\n\n text <|eot_id|>   (the bos token is added by the tokenizer:
//           the GGUF says tokenizer.ggml.add_bos_token = true, so the template does not write it)
//   chatml  <|im_start|>role\n text <|im_end|>\n
// Each renders exactly what the Jinja template renders for system + user [+ assistant ...] + generation prompt
// (tests/main/export/modelfile.test.ts runs both through a Go-template evaluator and compares).
import { AppError } from '../errors'

export type OllamaFormat = 'llama3' | 'chatml'

export const OLLAMA_TEMPLATES: Record<OllamaFormat, string> = {
  llama3: [
    '{{- if .System }}<|start_header_id|>system<|end_header_id|>',
    '',
    '{{ .System }}<|eot_id|>',
    '{{- end }}',
    '{{- range $i, $_ := .Messages }}',
    '{{- $last := eq (len (slice $.Messages $i)) 1 }}',
    '{{- if eq .Role "user" }}<|start_header_id|>user<|end_header_id|>',
    '',
    '{{ .Content }}<|eot_id|>',
    '{{- if $last }}<|start_header_id|>assistant<|end_header_id|>',
    '',
    '{{ end }}',
    '{{- else if eq .Role "assistant" }}<|start_header_id|>assistant<|end_header_id|>',
    '',
    '{{ .Content }}',
    '{{- if not $last }}<|eot_id|>{{ end }}',
    '{{- end }}',
    '{{- end }}',
  ].join('\n'),
  chatml: [
    '{{- if .System }}<|im_start|>system',
    '{{ .System }}<|im_end|>',
    '{{ end }}',
    '{{- range $i, $_ := .Messages }}',
    '{{- $last := eq (len (slice $.Messages $i)) 1 }}',
    '{{- if eq .Role "user" }}<|im_start|>user',
    '{{ .Content }}<|im_end|>',
    '{{ if $last }}<|im_start|>assistant',
    '{{ end }}',
    '{{- else if eq .Role "assistant" }}<|im_start|>assistant',
    '{{ .Content }}',
    '{{- if not $last }}<|im_end|>',
    '{{ end }}',
    '{{- end }}',
    '{{- end }}',
  ].join('\n'),
}

/** The Ollama format of a Jinja chat template, from the control tokens it writes; null when neither fits. */
export function ollamaFormatOf(jinja: string): OllamaFormat | null {
  if (jinja.includes('<|start_header_id|>') && jinja.includes('<|eot_id|>')) return 'llama3'
  if (jinja.includes('<|im_start|>') && jinja.includes('<|im_end|>')) return 'chatml'
  return null
}

/**
 * The system prompt the template writes by itself when a conversation has none (Qwen2.5's "You are Qwen ..."), from
 * its rendering of a lone user message; '' when it writes none. The Modelfile sets it as SYSTEM, because Ollama's
 * TEMPLATE only writes a system block when .System is set.
 */
export function templateDefaultSystem(renderedUserOnly: string): string {
  const m = /^<\|im_start\|>system\n([\s\S]*?)<\|im_end\|>\n<\|im_start\|>user\n/.exec(renderedUserOnly)
  return m ? m[1] : ''
}

/** A Modelfile string value: """...""" unless the text itself contains """ (then "..." with escapes). */
function quoted(text: string): string {
  if (!text.includes('"""') && !text.endsWith('"')) return `"""${text}"""`
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`
}

export interface ModelfileInput {
  /** File name of the GGUF in the same folder. */
  ggufFile: string
  /** The Jinja chat template used in training. */
  chatTemplate: string
  /** The system prompt the model was trained with ('' = none). */
  systemPrompt: string
  /** Text of each stop token (<|eot_id|>, <|end_of_text|> ...). */
  stopStrings: string[]
}

export function buildModelfile(input: ModelfileInput): string {
  const format = ollamaFormatOf(input.chatTemplate)
  if (!format) {
    throw new AppError('UNSUPPORTED', 'The chat template is neither Llama 3 nor ChatML, so no Ollama TEMPLATE can be written for it. Export the GGUF alone and write the Modelfile by hand.')
  }
  const lines = [
    '# Ollama Modelfile written by QA Tuner. Create the model with:',
    `#   ollama create <name> -f Modelfile`,
    `FROM ./${input.ggufFile}`,
    '',
    `TEMPLATE ${quoted(OLLAMA_TEMPLATES[format])}`,
    '',
  ]
  if (input.systemPrompt.trim() !== '') lines.push(`SYSTEM ${quoted(input.systemPrompt)}`, '')
  for (const s of [...new Set(input.stopStrings)]) lines.push(`PARAMETER stop ${JSON.stringify(s)}`)
  return `${lines.join('\n')}\n`
}
