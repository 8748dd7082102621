// Appends buffers to an open file one after another, at explicit offsets (a short write is continued), and
// counts the bytes written: the GGUF and merged-safetensors writers stream multi-GB files through it.
import type { FileHandle } from 'node:fs/promises'

export class SequentialWriter {
  /** Bytes written so far (the offset of the next write). */
  pos = 0

  constructor(private readonly fh: FileHandle) {}

  async write(buf: Buffer): Promise<void> {
    let done = 0
    while (done < buf.length) {
      const { bytesWritten } = await this.fh.write(buf, done, buf.length - done, this.pos + done)
      done += bytesWritten
    }
    this.pos += buf.length
  }
}
