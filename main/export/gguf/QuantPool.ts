// K-quant encoding (Q4_K/Q6_K search a scale per 32 values: ~3.5 million values per second per core in JavaScript,
// about half an hour for an 8B model on one core) spread over helper processes, one per core. The helpers are the
// export worker's own entry started with --quant-worker (exportWorker.ts), so no extra build entry is needed; rows
// travel by structured clone (16 MB blocks, a few milliseconds against seconds of encoding). Each block of rows is
// split into one slice per helper and the encoded slices are joined in order, so the bytes are exactly those of a
// single-threaded encode.
import { fork, type ChildProcess } from 'node:child_process'
import { appRoot } from '../../paths'
import { exportWorkerEntry } from '../exportWorkerProtocol'
import { encodeGgml } from './ggmlQuant'
import type { GgmlType } from './ggufFormat'

export interface QuantRequest {
  id: number
  type: GgmlType
  rowLength: number
  x: Float32Array
}

export type QuantReply = { id: number; ok: true; bytes: Uint8Array } | { id: number; ok: false; message: string }

/** The helper side: answers encode requests until its parent disconnects. */
export function serveQuantRequests(): void {
  process.on('message', (m: QuantRequest) => {
    let reply: QuantReply
    try {
      const buf = encodeGgml(m.type, m.x, m.rowLength)
      const whole = buf.byteOffset === 0 && buf.length === buf.buffer.byteLength
      reply = { id: m.id, ok: true, bytes: whole ? new Uint8Array(buf.buffer) : Uint8Array.from(buf) }
    } catch (err) {
      reply = { id: m.id, ok: false, message: (err as Error).message }
    }
    process.send?.(reply)
  })
  process.on('disconnect', () => process.exit(0))
}

export class QuantPool {
  private nextId = 1
  private readonly pending = new Map<number, { resolve: (b: Buffer) => void; reject: (e: Error) => void }>()
  private closed = false

  private constructor(private readonly helpers: ChildProcess[]) {
    for (const h of helpers) {
      h.on('message', (r: QuantReply) => {
        const p = this.pending.get(r.id)
        this.pending.delete(r.id)
        if (!p) return
        if (r.ok) p.resolve(Buffer.from(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength))
        else p.reject(new Error(r.message))
      })
      h.once('exit', (code, signal) => {
        if (this.closed) return
        const err = new Error(`A quantization helper process stopped (${signal ?? `exit code ${code}`}).`)
        for (const p of this.pending.values()) p.reject(err)
        this.pending.clear()
      })
    }
  }

  /** n helper processes (n >= 1). */
  static create(n: number): QuantPool {
    const { file, execArgv } = exportWorkerEntry()
    const helpers = Array.from({ length: n }, () =>
      fork(file, ['--quant-worker'], { cwd: appRoot(), execArgv, env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' }),
    )
    return new QuantPool(helpers)
  }

  get size(): number {
    return this.helpers.length
  }

  private one(helper: ChildProcess, type: GgmlType, x: Float32Array, rowLength: number): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      if (this.closed) return reject(new Error('The quantization helpers are closed.'))
      const id = this.nextId++
      this.pending.set(id, { resolve, reject })
      helper.send({ id, type, rowLength, x } satisfies QuantRequest)
    })
  }

  /** Encodes whole rows like encodeGgml, each helper taking a slice of the rows. */
  async encode(type: GgmlType, x: Float32Array, rowLength: number): Promise<Buffer> {
    const rows = x.length / rowLength
    const per = Math.ceil(rows / this.helpers.length)
    const parts: Promise<Buffer>[] = []
    for (let i = 0, r0 = 0; r0 < rows; i++, r0 += per) {
      const r1 = Math.min(rows, r0 + per)
      // slice, not subarray: a view would send its whole underlying buffer to every helper
      parts.push(this.one(this.helpers[i], type, x.slice(r0 * rowLength, r1 * rowLength), rowLength))
    }
    return Buffer.concat(await Promise.all(parts))
  }

  close(): void {
    this.closed = true
    for (const p of this.pending.values()) p.reject(new Error('The quantization helpers were closed.'))
    this.pending.clear()
    for (const h of this.helpers) if (h.connected) h.disconnect()
  }
}
