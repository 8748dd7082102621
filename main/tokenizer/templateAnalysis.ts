// Static check of a chat template: does its output depend on message text only by inserting it?
//
// When it does (Llama 3, ChatML, Qwen2.5, Llama 3.1 ...), ChatFormat renders each conversation shape once with
// placeholders and fills real text into that skeleton: exact, and about 50x faster than rendering every row.
// When the template inspects the text (`'</think>' in content`, `content|length`, `content.split(...)`), every
// conversation is rendered for real.
//
// A flow-insensitive taint analysis over @huggingface/jinja's AST, conservative by construction: a value derived
// from messages is MSG (a message or list of messages) or CONTENT (message text). CONTENT may be output, joined
// with + or ~, trimmed, stored in variables, type-tested (`is string`) and truth-tested (our contents are never
// empty, exactly like the placeholders). Any other use of CONTENT, any output of a whole message, or any construct
// this file does not know makes the template "dependent".
import type { Template } from '@huggingface/jinja'

const MSG = 1
const CONTENT = 2

type Node = { type: string; [k: string]: unknown }

export interface TemplateAnalysis {
  /** True when the skeleton (placeholder) rendering is exact for every conversation of the same shape. */
  contentIndependent: boolean
  /** Why not, in developer terms (for logs and tests). */
  reason: string | null
}

class Analyzer {
  vars = new Map<string, number>()
  reason: string | null = null
  changed = false

  private dependent(why: string): void {
    if (!this.reason) this.reason = why
  }

  private taint(name: string, flags: number): void {
    if (!flags) return
    const old = this.vars.get(name) ?? 0
    if ((old | flags) !== old) {
      this.vars.set(name, old | flags)
      this.changed = true
    }
  }

  private propName(node: Node, computed: boolean): string | null {
    if (!computed && node.type === 'Identifier') return node.value as string
    if (computed && node.type === 'StringLiteral') return node.value as string
    return null
  }

  /** Flags of an expression's value; records a dependency for any disallowed use of tainted values. */
  expr(n: Node | null | undefined): number {
    if (!n) return 0
    switch (n.type) {
      case 'StringLiteral':
      case 'IntegerLiteral':
      case 'FloatLiteral':
        return 0
      case 'Identifier': {
        const name = n.value as string
        return name === 'messages' ? MSG | (this.vars.get(name) ?? 0) : (this.vars.get(name) ?? 0)
      }
      case 'ArrayLiteral':
      case 'TupleLiteral': {
        let f = 0
        for (const e of n.value as Node[]) f |= this.expr(e)
        if (f) this.dependent('a message or its text is put in a list literal')
        return 0
      }
      case 'ObjectLiteral': {
        for (const [k, v] of n.value as Map<Node, Node>) {
          if (this.expr(k) | this.expr(v)) this.dependent('a message or its text is put in a dict literal')
        }
        return 0
      }
      case 'MemberExpression': {
        const object = n.object as Node
        const property = n.property as Node
        const computed = n.computed as boolean
        // namespace attribute: ns.x
        if (!computed && object.type === 'Identifier' && property.type === 'Identifier') {
          const key = `${object.value as string}.${property.value as string}`
          if (this.vars.has(key)) return this.vars.get(key)!
        }
        const of = this.expr(object)
        if (property.type === 'SliceExpression') {
          this.sliceParts(property)
          if (of & CONTENT) this.dependent('message text is sliced')
          return of & MSG
        }
        if (computed && this.expr(property) & (MSG | CONTENT)) this.dependent('message text is used as an index')
        if (of & CONTENT) this.dependent('a property or method of message text is used')
        if (of & MSG) {
          const name = this.propName(property, computed)
          if (name === 'content') return CONTENT
          if (name !== null) return 0 // role, tool_calls, name ...: the same in the skeleton
          return MSG // messages[0], messages[loop.index0 - 1]
        }
        return 0
      }
      case 'CallExpression': {
        this.expr(n.callee as Node)
        for (const a of n.args as Node[]) {
          if (this.expr(a) & (MSG | CONTENT)) this.dependent('a message or its text is passed to a function')
        }
        return 0
      }
      case 'KeywordArgumentExpression':
        return this.expr(n.value as Node)
      case 'SpreadExpression':
      case 'KeywordSpreadExpression':
        if (this.expr(n.argument as Node)) this.dependent('a message is spread into a call')
        return 0
      case 'BinaryExpression': {
        const op = (n.operator as { value: string }).value
        if (op === 'and' || op === 'or') return this.expr(n.left as Node) | this.expr(n.right as Node)
        const l = this.expr(n.left as Node)
        const r = this.expr(n.right as Node)
        if (op === '+' || op === '~') {
          if ((l | r) & MSG) this.dependent('a message (not its text) is joined to a string')
          return (l | r) & CONTENT
        }
        if (op === 'in' || op === 'not in') {
          if ((l | r) & CONTENT) this.dependent('message text is searched (in)')
          if (l & MSG) this.dependent('a message is searched for')
          return 0
        }
        if ((l | r) & (MSG | CONTENT)) this.dependent(`a message or its text is compared or computed with (${op})`)
        return 0
      }
      case 'UnaryExpression':
        this.expr(n.argument as Node)
        return 0
      case 'FilterExpression': {
        const filter = n.filter as Node
        const name = filter.type === 'Identifier' ? (filter.value as string) : ((filter.callee as Node)?.value as string)
        if (filter.type === 'CallExpression') {
          for (const a of filter.args as Node[]) {
            if (this.expr(a) & (MSG | CONTENT)) this.dependent(`a message or its text is a filter argument (${name})`)
            if (a.type === 'StringLiteral' && a.value === 'content') this.dependent(`filter ${name} reads message text`)
          }
        }
        const f = this.expr(n.operand as Node)
        if (f & CONTENT) {
          if (name === 'trim' || name === 'string') return CONTENT
          this.dependent(`message text goes through the filter "${name}"`)
          return 0
        }
        if (f & MSG) {
          if (name === 'length' || name === 'count') return 0
          if (['first', 'last', 'list', 'reverse', 'selectattr', 'rejectattr'].includes(name)) return MSG
          this.dependent(`messages go through the filter "${name}"`)
          return 0
        }
        return 0
      }
      case 'TestExpression':
        // Type and definedness tests: message text is always a string, as are the placeholders.
        this.expr(n.operand as Node)
        return 0
      case 'SelectExpression':
        this.expr(n.test as Node)
        return this.expr(n.lhs as Node)
      case 'Ternary':
        this.expr(n.condition as Node)
        return this.expr(n.trueExpr as Node) | this.expr(n.falseExpr as Node)
      case 'SliceExpression':
        this.sliceParts(n)
        return 0
      default:
        this.dependent(`unknown expression ${n.type}`)
        return MSG | CONTENT
    }
  }

  private sliceParts(n: Node): void {
    for (const k of ['start', 'stop', 'step']) {
      if (this.expr(n[k] as Node | undefined) & (MSG | CONTENT)) this.dependent('message text is used in a slice')
    }
  }

  private assign(target: Node, flags: number): void {
    if (target.type === 'Identifier') this.taint(target.value as string, flags)
    else if (target.type === 'TupleLiteral' || target.type === 'ArrayLiteral') for (const t of target.value as Node[]) this.assign(t, flags)
    else if (target.type === 'MemberExpression' && (target.object as Node).type === 'Identifier' && !(target.computed as boolean)) {
      const key = `${(target.object as Node).value as string}.${(target.property as Node).value as string}`
      this.taint(key, flags)
      if (!this.vars.has(key)) {
        this.vars.set(key, 0)
        this.changed = true
      }
    } else this.dependent(`unknown assignment target ${target.type}`)
  }

  /** Walks statements; returns the flags of everything they output (for {% set x %}...{% endset %}). */
  statements(body: Node[]): number {
    let out = 0
    for (const s of body) out |= this.statement(s)
    return out
  }

  statement(s: Node): number {
    switch (s.type) {
      case 'Comment':
      case 'Break':
      case 'Continue':
        return 0
      case 'If':
        this.expr(s.test as Node)
        return this.statements(s.body as Node[]) | this.statements(s.alternate as Node[])
      case 'For': {
        const f = this.expr(s.iterable as Node)
        if (f & CONTENT) this.dependent('the template loops over message text')
        this.assign(s.loopvar as Node, f & MSG)
        return this.statements(s.body as Node[]) | this.statements(s.defaultBlock as Node[])
      }
      case 'Set': {
        const f = s.value ? this.expr(s.value as Node) : this.statements(s.body as Node[])
        this.assign(s.assignee as Node, f)
        return 0
      }
      case 'Macro':
        return this.statements(s.body as Node[])
      case 'CallStatement': {
        this.expr(s.call as Node)
        return this.statements(s.body as Node[])
      }
      case 'FilterStatement': {
        const f = this.statements(s.body as Node[])
        if (f) this.dependent('a filter block processes message text')
        return 0
      }
      default: {
        // Any other statement is an expression whose value is output.
        const f = this.expr(s)
        if (f & MSG) this.dependent('a whole message or message list is output')
        return f & CONTENT
      }
    }
  }
}

/** Decides whether ChatFormat may render a template once per conversation shape (see the file comment). */
export function analyseTemplate(template: Template): TemplateAnalysis {
  const a = new Analyzer()
  const body = (template.parsed as unknown as { body: Node[] }).body
  // Fixed point over variable taints (a variable can be assigned after a use, e.g. inside loops).
  for (let i = 0; i < 50; i++) {
    a.changed = false
    a.statements(body)
    if (!a.changed) break
  }
  return { contentIndependent: a.reason === null, reason: a.reason }
}
