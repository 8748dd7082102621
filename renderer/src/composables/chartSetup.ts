// Chart.js, registered once with only the parts the training charts use (line charts on linear axes, legend,
// tooltip). Importing this module is the only way the renderer reaches Chart.js.
import { Chart, Legend, LinearScale, LineController, LineElement, PointElement, Tooltip } from 'chart.js'

let registered = false

export function chartJs(): typeof Chart {
  if (!registered) {
    Chart.register(LineController, LineElement, PointElement, LinearScale, Legend, Tooltip)
    registered = true
  }
  return Chart
}

/** Resolves '--accent' style colours against an element (Chart.js draws on a canvas and cannot read CSS variables). */
export function cssColor(el: Element, color: string): string {
  if (!color.startsWith('--')) return color
  return getComputedStyle(el).getPropertyValue(color).trim() || '#2f6fec'
}

/** Colours of compared runs, in order (CSS variables where the palette has them). */
export const RUN_COLORS = ['--accent', '#e0719b', '--success', '--warning', '#8b6cf0', '#2aa6b8', '#c2562d', '#6b7a90']
