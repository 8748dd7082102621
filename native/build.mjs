// Builds the native addon (native/build/Release/qatuner.node) through cmake-js, offline (N-API headers
// come from node-api-headers). Run by `npm install`. Finds nvcc on PATH, via CUDACXX or in the usual
// toolkit folders so the CUDA backend (or, without cuBLAS, the kernel compile check) is built where possible.
// Env: QT_NO_CUDA=1 skips CUDA; QT_CUDA_ARCHS="90" limits architectures; QT_BUILD_TYPE=Debug.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { cpus } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..')
const env = { ...process.env }

function findNvcc() {
  if (env.CUDACXX && existsSync(env.CUDACXX)) return env.CUDACXX
  const onPath = spawnSync('sh', ['-c', 'command -v nvcc'], { encoding: 'utf8' }).stdout.trim()
  if (onPath) return onPath
  for (const p of ['/usr/local/cuda/bin/nvcc', '/opt/cuda/bin/nvcc']) if (existsSync(p)) return p
  return null
}

const args = ['compile', '--directory', here, '--out', join(here, 'build'), '--parallel', String(Math.max(1, cpus().length))]
args.push('--config', env.QT_BUILD_TYPE || 'Release')
if (env.QT_NO_CUDA === '1') {
  args.push('--CDQT_WITH_CUDA=OFF')
} else {
  const nvcc = findNvcc()
  if (nvcc) {
    env.CUDACXX = nvcc
    console.log(`[native] nvcc: ${nvcc}`)
  } else {
    console.log('[native] nvcc not found: CPU-only build')
  }
  if (env.QT_CUDA_ARCHS) args.push(`--CDCMAKE_CUDA_ARCHITECTURES=${env.QT_CUDA_ARCHS}`)
}

const cli = join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js')
const r = spawnSync(process.execPath, [cli, ...args], { stdio: 'inherit', env, cwd: root })
if (r.status !== 0) {
  console.error('\n[native] The native engine failed to build. You need CMake >= 3.18 and a C++17 compiler' +
    ' (g++/clang on Linux and macOS, Visual Studio Build Tools on Windows). See README.md, "Troubleshooting".')
  process.exit(r.status ?? 1)
}
