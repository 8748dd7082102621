// Where the addon is looked for (source, built, packaged) and what happens when it is missing.
import { afterEach, describe, expect, it, vi } from 'vitest'

const saved = { addon: process.env.QT_ADDON_PATH, root: process.env.QT_APP_ROOT }

afterEach(() => {
  if (saved.addon === undefined) delete process.env.QT_ADDON_PATH
  else process.env.QT_ADDON_PATH = saved.addon
  if (saved.root === undefined) delete process.env.QT_APP_ROOT
  else process.env.QT_APP_ROOT = saved.root
  vi.resetModules()
})

describe('loadAddon', () => {
  it('finds native/build/Release/qatuner.node from the source tree', async () => {
    const { addonPath } = await import('../../main/engine/loadAddon')
    expect(addonPath()).toMatch(/native[\\/]build[\\/]Release[\\/]qatuner\.node$/)
  })

  it('looks outside the asar archive when packaged', async () => {
    process.env.QT_APP_ROOT = '/opt/QA Tuner/resources/app.asar'
    const { addonPath } = await import('../../main/engine/loadAddon')
    expect(addonPath()).toBe('/opt/QA Tuner/resources/app.asar.unpacked/native/build/Release/qatuner.node')
  })

  it('a missing addon gives ENGINE_UNAVAILABLE with what to run, and no backends', async () => {
    process.env.QT_ADDON_PATH = '/nonexistent/qatuner.node'
    vi.resetModules()
    const { engineBackends } = await import('../../main/engine/loadAddon')
    const { backends, loadModel } = await import('../../main/engine/Engine')
    expect(engineBackends()).toEqual([])
    expect(() => backends()).toThrow(expect.objectContaining({ code: 'ENGINE_UNAVAILABLE', message: expect.stringMatching(/npm install/) }))
    await expect(loadModel({ folder: '/x' })).rejects.toMatchObject({ code: 'ENGINE_UNAVAILABLE' })
  })
})
