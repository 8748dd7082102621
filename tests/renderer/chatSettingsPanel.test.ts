// The chat's sampling panel: what the user types survives a save of another field coming back meanwhile (it used to
// be reset to the saved value, so the typed value was lost with no change event to save it), a committed edit is
// emitted as a number, saved values that changed (reset, another conversation) are shown, and an empty field shows
// the saved value again without emitting.
import { mount } from '@vue/test-utils'
import { describe, expect, it } from 'vitest'
import type { SamplingSettings } from '../../preload/contract'

const ChatSettingsPanel = (await import('../../renderer/src/components/ChatSettingsPanel.vue')).default
const { i18n } = await import('../../renderer/src/i18n')

const saved: SamplingSettings = { greedy: false, temperature: 0.7, topP: 0.9, topK: 40, maxNewTokens: 512, repetitionPenalty: 1.1 }
const limits = { maxNewTokens: 4096, temperature: 2, topK: 1000, repetitionPenalty: 2 }

function panel(sampling = saved) {
  const w = mount(ChatSettingsPanel, { props: { sampling, defaults: saved, limits }, global: { plugins: [i18n] } })
  const input = (id: string) => w.get(`[data-testid="${id}"]`).element as HTMLInputElement
  return { w, input }
}

describe('ChatSettingsPanel', () => {
  it('keeps a value being typed when a save of another field comes back, then emits it on change', async () => {
    const { w, input } = panel()
    await w.get('[data-testid="sampling-greedy"]').setValue(true)
    expect(w.emitted('update')).toEqual([[{ greedy: true }]])
    const max = w.get('[data-testid="sampling-max-tokens"]')
    ;(max.element as HTMLInputElement).value = '3000'
    await max.trigger('input')
    await w.setProps({ sampling: { ...saved, greedy: true } }) // the greedy save returns while typing
    expect(input('sampling-max-tokens').value).toBe('3000')
    expect(input('sampling-greedy').checked).toBe(true)
    expect(input('sampling-temperature').disabled).toBe(true)
    await max.trigger('change')
    expect(w.emitted('update')?.[1]).toEqual([{ maxNewTokens: 3000 }])
  })

  it('shows saved values that changed (a reset, a clamp by the server, another conversation)', async () => {
    const { w, input } = panel({ ...saved, greedy: true, maxNewTokens: 3000, temperature: 1.3 })
    expect(input('sampling-max-tokens').value).toBe('3000')
    await w.get('[data-testid="sampling-reset"]').trigger('click')
    expect(w.emitted('update')).toEqual([[saved]])
    await w.setProps({ sampling: saved })
    expect(input('sampling-max-tokens').value).toBe('512')
    expect(input('sampling-greedy').checked).toBe(false)
    expect(Number(input('sampling-temperature').value)).toBeCloseTo(0.7)
    expect(w.text()).toContain('0.70')
  })

  it('an emptied number field shows the saved value again and saves nothing', async () => {
    const { w, input } = panel()
    const topK = w.get('[data-testid="sampling-top-k"]')
    await topK.setValue('') // input, then change
    expect(w.emitted('update')).toBeUndefined()
    expect(input('sampling-top-k').value).toBe('40')
  })
})
