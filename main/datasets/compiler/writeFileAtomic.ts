// Files that must never be half-written (training sets, summaries, tokenizer files): temp name, flush, rename.
import { randomBytes } from 'node:crypto'
import { open, rename, rm } from 'node:fs/promises'

/** Writes `chunks` to `path` atomically: a temporary file in the same folder, flushed, then renamed over `path`. */
export async function writeFileAtomic(path: string, chunks: readonly (Buffer | string)[]): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`
  const fh = await open(tmp, 'w')
  try {
    let pos = 0
    for (const c of chunks) {
      const b = typeof c === 'string' ? Buffer.from(c, 'utf8') : c
      for (let done = 0; done < b.length; ) {
        const { bytesWritten } = await fh.write(b, done, b.length - done, pos)
        done += bytesWritten
        pos += bytesWritten
      }
    }
    await fh.sync()
  } catch (err) {
    await fh.close().catch(() => undefined)
    await rm(tmp, { force: true })
    throw err
  }
  await fh.close()
  try {
    await rename(tmp, path)
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
}
