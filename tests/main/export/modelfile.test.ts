// The Ollama Modelfile's TEMPLATE must render, for every conversation, exactly what the training (Jinja) template
// renders (minus the bos token, which llama.cpp adds because the GGUF says add_bos_token). Ollama executes it with Go's
// text/template over { System, Messages }; below is a small evaluator of the text/template subset the two templates
// use (if / else if / else / end, range with $i, variables, eq ne not and or len slice, {{- -}} trimming), written
// from the text/template documentation, and Ollama's data shape (system messages collected into .System and kept in
// .Messages, roles lowercase, fields Role/Content).
import { describe, expect, it } from 'vitest'
import { buildModelfile, OLLAMA_TEMPLATES, ollamaFormatOf, templateDefaultSystem } from '../../../main/export/ollamaModelfile'
import { buildTinyTokenizer } from '../../../main/tokenizer/tiny/writeTinyTokenizer'
import { CHATML_TEMPLATE, LLAMA3_TEMPLATE, QWEN25_TEMPLATE } from '../../../main/tokenizer/builtinTemplates'
import { Template } from '@huggingface/jinja'

// ---- a Go text/template subset -------------------------------------------------------------------

type Node =
  | { t: 'text'; v: string }
  | { t: 'out'; e: string }
  | { t: 'set'; name: string; e: string }
  | { t: 'if'; branches: { cond: string | null; body: Node[] }[] }
  | { t: 'range'; idx: string; elem: string; e: string; body: Node[] }

function lex(src: string): ({ text: string } | { action: string })[] {
  const out: ({ text: string } | { action: string })[] = []
  let i = 0
  while (i < src.length) {
    const open = src.indexOf('{{', i)
    if (open < 0) {
      out.push({ text: src.slice(i) })
      break
    }
    let text = src.slice(i, open)
    const close = src.indexOf('}}', open)
    let action = src.slice(open + 2, close)
    if (action.startsWith('- ')) {
      text = text.replace(/\s+$/, '')
      action = action.slice(2)
    }
    let trimAfter = false
    if (action.endsWith(' -')) {
      trimAfter = true
      action = action.slice(0, -2)
    }
    out.push({ text })
    out.push({ action: action.trim() })
    i = close + 2
    if (trimAfter) while (i < src.length && /\s/.test(src[i])) i++
  }
  return out
}

function parse(items: ReturnType<typeof lex>): Node[] {
  let pos = 0
  const block = (stopAt: string[]): { nodes: Node[]; stop: string } => {
    const nodes: Node[] = []
    while (pos < items.length) {
      const it = items[pos++]
      if ('text' in it) {
        if (it.text) nodes.push({ t: 'text', v: it.text })
        continue
      }
      const a = it.action
      const word = a.split(/\s+/)[0]
      if (stopAt.includes(word)) return { nodes, stop: a }
      if (word === 'if') {
        const branches: { cond: string | null; body: Node[] }[] = []
        let cond: string | null = a.slice(3)
        for (;;) {
          const { nodes: body, stop } = block(['else', 'end'])
          branches.push({ cond, body })
          if (stop === 'end') break
          cond = stop.startsWith('else if ') ? stop.slice(8) : null
        }
        nodes.push({ t: 'if', branches })
      } else if (word === 'range') {
        const m = /^range (\$\w+), (\$\w+) := (.+)$/.exec(a)!
        const { nodes: body } = block(['end'])
        nodes.push({ t: 'range', idx: m[1], elem: m[2], e: m[3], body })
      } else if (/^\$\w+ :=/.test(a)) {
        const m = /^(\$\w+) := (.+)$/.exec(a)!
        nodes.push({ t: 'set', name: m[1], e: m[2] })
      } else nodes.push({ t: 'out', e: a })
    }
    return { nodes, stop: '' }
  }
  return block([]).nodes
}

type Val = unknown
interface Scope {
  dot: Val
  root: Val
  vars: Map<string, Val>
}

function tokens(e: string): string[] {
  return e.match(/"[^"]*"|\(|\)|[^\s()]+/g) ?? []
}

function evalExpr(e: string, sc: Scope): Val {
  const toks = tokens(e)
  let p = 0
  const term = (): Val => {
    const t = toks[p++]
    if (t === '(') {
      const v = call()
      p++ // ')'
      return v
    }
    if (t.startsWith('"')) return t.slice(1, -1)
    if (/^-?\d+$/.test(t)) return Number(t)
    if (t.startsWith('$.')) return (sc.root as Record<string, Val>)[t.slice(2)]
    if (t.startsWith('$')) return sc.vars.get(t)
    if (t === '.') return sc.dot
    if (t.startsWith('.')) return (sc.dot as Record<string, Val>)[t.slice(1)]
    throw new Error(`unknown term ${t}`)
  }
  const truthy = (v: Val) => !(v === false || v === 0 || v === '' || v === null || v === undefined || (Array.isArray(v) && v.length === 0))
  const fns: Record<string, (...a: Val[]) => Val> = {
    eq: (a, b) => a === b,
    ne: (a, b) => a !== b,
    not: (a) => !truthy(a),
    and: (a, b) => (truthy(a) ? b : a),
    or: (a, b) => (truthy(a) ? a : b),
    len: (a) => (a as unknown[]).length,
    slice: (a, i) => (a as unknown[]).slice(i as number),
  }
  const call = (): Val => {
    const head = toks[p]
    if (head in fns) {
      p++
      const args: Val[] = []
      while (p < toks.length && toks[p] !== ')') args.push(term())
      return fns[head](...args)
    }
    return term()
  }
  const v = call()
  return v
}

function exec(nodes: Node[], sc: Scope): string {
  const truthy = (v: Val) => !(v === false || v === 0 || v === '' || v === null || v === undefined || (Array.isArray(v) && v.length === 0))
  let out = ''
  for (const n of nodes) {
    if (n.t === 'text') out += n.v
    else if (n.t === 'out') out += String(evalExpr(n.e, sc))
    else if (n.t === 'set') sc.vars.set(n.name, evalExpr(n.e, sc))
    else if (n.t === 'if') {
      const b = n.branches.find((br) => br.cond === null || truthy(evalExpr(br.cond, sc)))
      if (b) out += exec(b.body, sc)
    } else {
      const list = evalExpr(n.e, sc) as unknown[]
      list.forEach((elem, i) => {
        const vars = new Map(sc.vars)
        vars.set(n.idx, i)
        vars.set(n.elem, elem)
        out += exec(n.body, { dot: elem, root: sc.root, vars })
      })
    }
  }
  return out
}

/** Ollama: system messages are collected into .System (and stay in .Messages); fields are Role and Content. */
function ollamaRender(template: string, messages: { role: string; content: string }[]): string {
  const system = messages.filter((m) => m.role === 'system').map((m) => m.content).join('\n\n')
  const data = { System: system, Messages: messages.map((m) => ({ Role: m.role, Content: m.content })) }
  return exec(parse(lex(template)), { dot: data, root: data, vars: new Map() })
}

function jinjaRender(template: string, messages: { role: string; content: string }[], bos: string): string {
  return new Template(template).render({ messages, add_generation_prompt: true, bos_token: bos, eos_token: '', tools: null })
}

// ---- tests ---------------------------------------------------------------------------------------

const conversations: { role: string; content: string }[][] = [
  [{ role: 'system', content: '你是一個zh-tw版本的聊天機器人' }, { role: 'user', content: '年假有幾天？' }],
  [{ role: 'user', content: 'How many days of leave?' }],
  [
    { role: 'system', content: 'Answer briefly.' },
    { role: 'user', content: '加班費怎麼算？' },
    { role: 'assistant', content: '平日加班前兩小時加給三分之一。' },
    { role: 'user', content: '假日呢？\n請說明。' },
  ],
]

describe('Ollama Modelfile', () => {
  it('the llama3 TEMPLATE renders what the Llama 3 Jinja template renders, minus the bos the tokenizer adds', () => {
    for (const c of conversations) {
      expect('<|begin_of_text|>' + ollamaRender(OLLAMA_TEMPLATES.llama3, c)).toBe(jinjaRender(LLAMA3_TEMPLATE, c, '<|begin_of_text|>'))
    }
  })

  it('the chatml TEMPLATE renders what ChatML and Qwen2.5 render (with the system prompt the Modelfile sets)', () => {
    for (const c of conversations) {
      expect(ollamaRender(OLLAMA_TEMPLATES.chatml, c)).toBe(jinjaRender(CHATML_TEMPLATE, c, ''))
      const withSystem = c[0].role === 'system' ? c : [{ role: 'system', content: 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }, ...c]
      // Qwen2.5's template writes its default system prompt when there is none: the export sets it as SYSTEM.
      expect(ollamaRender(OLLAMA_TEMPLATES.chatml, withSystem)).toBe(jinjaRender(QWEN25_TEMPLATE, c, ''))
    }
  })

  it('finds the system prompt a template writes by itself (Qwen2.5), so the Modelfile can set it', () => {
    expect(templateDefaultSystem(jinjaRender(QWEN25_TEMPLATE, [{ role: 'user', content: 'x' }], ''))).toBe('You are Qwen, created by Alibaba Cloud. You are a helpful assistant.')
    expect(templateDefaultSystem(jinjaRender(CHATML_TEMPLATE, [{ role: 'user', content: 'x' }], ''))).toBe('')
    expect(templateDefaultSystem(jinjaRender(LLAMA3_TEMPLATE, [{ role: 'user', content: 'x' }], '<|begin_of_text|>'))).toBe('')
  })

  it('the evaluator is strict: a template with one newline too many does not match', () => {
    const broken = OLLAMA_TEMPLATES.llama3.replace('{{ .Content }}<|eot_id|>', '{{ .Content }}\n<|eot_id|>')
    expect('<|begin_of_text|>' + ollamaRender(broken, conversations[0])).not.toBe(jinjaRender(LLAMA3_TEMPLATE, conversations[0], '<|begin_of_text|>'))
  })

  it('writes FROM, TEMPLATE, SYSTEM and one stop parameter per stop token', () => {
    const llama = buildTinyTokenizer({ flavour: 'llama3' }).tokenizerConfig.chat_template as string
    expect(ollamaFormatOf(llama)).toBe('llama3')
    expect(ollamaFormatOf(QWEN25_TEMPLATE)).toBe('chatml')
    expect(ollamaFormatOf('{{ messages }}')).toBeNull()
    const text = buildModelfile({ ggufFile: 'hr-Q8_0.gguf', chatTemplate: llama, systemPrompt: '你是一個zh-tw版本的聊天機器人', stopStrings: ['<|eot_id|>', '<|end_of_text|>'] })
    expect(text).toContain('FROM ./hr-Q8_0.gguf\n')
    expect(text).toContain(`TEMPLATE """${OLLAMA_TEMPLATES.llama3}"""`)
    expect(text).toContain('SYSTEM """你是一個zh-tw版本的聊天機器人"""')
    expect(text).toContain('PARAMETER stop "<|eot_id|>"\nPARAMETER stop "<|end_of_text|>"\n')
    const noSystem = buildModelfile({ ggufFile: 'a.gguf', chatTemplate: llama, systemPrompt: '  ', stopStrings: ['<|eot_id|>'] })
    expect(noSystem).not.toContain('SYSTEM')
    const quotes = buildModelfile({ ggufFile: 'a.gguf', chatTemplate: llama, systemPrompt: 'Say """hi""" \\ ok', stopStrings: ['<|eot_id|>'] })
    expect(quotes).toContain('SYSTEM "Say \\"\\"\\"hi\\"\\"\\" \\\\ ok"')
    expect(() => buildModelfile({ ggufFile: 'a.gguf', chatTemplate: '{{ x }}', systemPrompt: '', stopStrings: [] })).toThrow(/neither Llama 3 nor ChatML/)
  })
})
