import { describe, expect, it } from 'vitest'
import { CHANNELS } from '../../preload/contract'
import { tempApp } from '../helpers/tempContext'

describe('dispatcher', () => {
  it('answers every contract channel with a handler (never UNKNOWN_CHANNEL)', async () => {
    const app = tempApp()
    try {
      for (const channel of CHANNELS) {
        const r = await app.dispatch(channel, { definitely: 'not valid' })
        if (!r.ok) expect(r.error.code, channel).not.toBe('UNKNOWN_CHANNEL')
      }
    } finally {
      await app.cleanup()
    }
  })

  it('rejects unknown channels and malformed arguments with typed errors', async () => {
    const app = tempApp()
    try {
      expect(await app.dispatch('nope:nothing', {})).toMatchObject({ ok: false, error: { code: 'UNKNOWN_CHANNEL' } })
      expect(await app.dispatch('__proto__', {})).toMatchObject({ ok: false, error: { code: 'UNKNOWN_CHANNEL' } })
      const bad = await app.dispatch('projects:rename', { id: 'one', name: 5 })
      expect(bad).toMatchObject({ ok: false, error: { code: 'INVALID_ARGUMENT' } })
      if (!bad.ok) expect((bad.error.details as { path: string }[]).map((d) => d.path).sort()).toEqual(['id', 'name'])
      expect(await app.dispatch('projects:get', { id: 999 })).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } })
      expect(await app.dispatch('settings:set', { language: 'klingon' })).toMatchObject({ ok: false, error: { code: 'INVALID_ARGUMENT' } })
      expect(await app.dispatch('settings:set', { surprise: 1 })).toMatchObject({ ok: false, error: { code: 'INVALID_ARGUMENT' } })
    } finally {
      await app.cleanup()
    }
  })
})
