// Models offered with one click on the Models page. Sizes are the 16-bit safetensors downloads (parameters x 2
// bytes, rounded); `gated` says whether the repo asks users to accept a license first (null: not known here;
// the download explains it either way when the Hub answers 401/403).
import type { HubPreset } from '../../../preload/contract'

export const HUB_PRESETS: readonly HubPreset[] = [
  { repoId: 'meta-llama/Meta-Llama-3-8B-Instruct', label: 'Llama 3 8B Instruct', family: 'llama', approxBytes: 16.07e9, gated: true, tutorial: true, zhTW: false },
  { repoId: 'meta-llama/Llama-3.2-1B-Instruct', label: 'Llama 3.2 1B Instruct', family: 'llama', approxBytes: 2.47e9, gated: true, tutorial: false, zhTW: false },
  { repoId: 'meta-llama/Llama-3.2-3B-Instruct', label: 'Llama 3.2 3B Instruct', family: 'llama', approxBytes: 6.43e9, gated: true, tutorial: false, zhTW: false },
  { repoId: 'Qwen/Qwen2.5-0.5B-Instruct', label: 'Qwen2.5 0.5B Instruct', family: 'qwen2', approxBytes: 0.99e9, gated: false, tutorial: false, zhTW: false },
  { repoId: 'Qwen/Qwen2.5-1.5B-Instruct', label: 'Qwen2.5 1.5B Instruct', family: 'qwen2', approxBytes: 3.09e9, gated: false, tutorial: false, zhTW: false },
  { repoId: 'Qwen/Qwen2.5-7B-Instruct', label: 'Qwen2.5 7B Instruct', family: 'qwen2', approxBytes: 15.23e9, gated: false, tutorial: false, zhTW: false },
  { repoId: 'MediaTek-Research/Breeze-7B-Instruct-v1_0', label: 'Breeze 7B Instruct', family: 'mistral', approxBytes: 14.96e9, gated: null, tutorial: false, zhTW: true },
  { repoId: 'yentinglin/Llama-3-Taiwan-8B-Instruct', label: 'Llama 3 Taiwan 8B Instruct', family: 'llama', approxBytes: 16.06e9, gated: null, tutorial: false, zhTW: true },
]
