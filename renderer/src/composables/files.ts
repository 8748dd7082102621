// Files in and out of the renderer, the same in Electron and browser mode: an <input type=file> gives a
// File whose bytes travel to main as base64; an export comes back as base64 and is saved through a
// download link (Electron shows its save dialog for it).

export function bytesToBase64(bytes: Uint8Array): string {
  let binary = ''
  const CHUNK = 0x8000
  for (let i = 0; i < bytes.length; i += CHUNK) binary += String.fromCharCode(...bytes.subarray(i, i + CHUNK))
  return btoa(binary)
}

/** A file's bytes as base64 (the browser's own encoder: fast for files of tens of megabytes). */
export function fileToBase64(file: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader()
    reader.onload = () => {
      const url = String(reader.result)
      resolve(url.slice(url.indexOf(',') + 1))
    }
    reader.onerror = () => reject(reader.error ?? new Error('The file could not be read.'))
    reader.readAsDataURL(file)
  })
}

export function base64ToBytes(b64: string): Uint8Array {
  const binary = atob(b64)
  const out = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i)
  return out
}

export function downloadBase64(fileName: string, mimeType: string, b64: string): void {
  const blob = new Blob([base64ToBytes(b64) as BlobPart], { type: mimeType })
  const url = URL.createObjectURL(blob)
  const a = document.createElement('a')
  a.href = url
  a.download = fileName
  a.style.display = 'none'
  document.body.appendChild(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(url), 10_000)
}

/** Accepted by the import file picker. */
export const IMPORT_ACCEPT = '.csv,.tsv,.txt,.xlsx,.xlsm,.jsonl,.ndjson,.json'
