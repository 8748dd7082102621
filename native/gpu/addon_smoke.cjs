// The N-API addon built with CUDA, under the carried node (no node_modules on the GPU machine):
// backends() lists cuda, devices() lists the GPU (name, memory, compute capability, bf16), and a tiny model
// loaded on cuda:0 through the addon gives the CPU's logits (fp32 compute).
// Usage: node addon_smoke.cjs path/to/qatuner.node [tiny-model-folder]
// A plain CommonJS script (run by the carried node, no bundler): require() loads the .node file by path.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const addon = require(process.argv[2])

async function main() {
  const backends = addon.backends()
  const devices = await addon.devices()
  console.log('backends()', JSON.stringify(backends))
  for (const d of devices) console.log('device', JSON.stringify(d))
  const cuda = devices.filter((d) => d.backend === 'cuda')
  let ok = backends.includes('cuda') && cuda.length > 0 && cuda.every((d) => d.name && d.totalBytes > 0 && d.ccMajor >= 7)
  console.log(ok ? 'PASS addon reports the cuda backend and the GPU' : 'FAIL addon does not report cuda and a GPU')
  const folder = process.argv[3]
  if (folder) {
    const g = await addon.loadModel({ folder, device: 'cuda:0', quant: 'none', computeDtype: 'fp32' })
    const c = await addon.loadModel({ folder, device: 'cpu', quant: 'none' })
    const ids = [1, 17, 93, 5, 61, 28, 44, 7]
    const lg = await g.forwardLogits(ids)
    const lc = await c.forwardLogits(ids)
    let maxd = 0
    for (let i = 0; i < lc.length; i++) maxd = Math.max(maxd, Math.abs(lg[i] - lc[i]))
    const same = lg.length === lc.length && maxd < 1e-3
    console.log(`${same ? 'PASS' : 'FAIL'} addon forwardLogits on ${g.device()} vs cpu: max|d| ${maxd.toExponential(2)}`)
    ok = ok && same
    g.dispose()
    c.dispose()
  }
  process.exit(ok ? 0 : 1)
}

main().catch((e) => {
  console.error('FAIL', e)
  process.exit(1)
})
