"""The PyTorch baseline of npm run bench:gpu, on the same card in the same run (issue 5 part 5, issue 6).

1. Writes our engine's input once per machine: a random Llama-3-8B checkpoint (bf16 safetensors, streamed from
   the GPU; hf_models.write_llama) and the lengths of a synthetic short-Q&A epoch (--lengths, shared with
   gpu_bench: a system prompt + template of ~30 tokens, questions of 6-30 and answers of 8-60 tokens).
2. Measures PyTorch + transformers + peft the way the tutorial trains, minus quantization (no bitsandbytes
   here): bf16 base initialised at random directly on the GPU, SDPA attention, gradient checkpointing
   (non-reentrant), LoRA r=32 alpha 8 dropout 0.1 on q/k/v/o (fp32 adapter weights, peft's default autocast),
   NEFTune alpha 5 as HF's hook does it (padded length), torch.optim.AdamW lr 5e-5.
   - train: tokens/s at each batch x length, median of --steps timed steps after --warmup (each synchronised),
     peak = torch.cuda.max_memory_allocated;
   - decode: model.generate, greedy, 64-token prompt, exactly 128 new tokens, KV cache;
   - epoch: the synthetic rows in padded batches of 4 (shuffled once), real tokens / seconds.
Writes --json. Never fails the run: errors (e.g. out of memory) are recorded per measurement.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_models import llama_config, write_llama  # noqa: E402


def synth_lengths(n=160, seed=0):
    rng = np.random.default_rng(seed)
    return [int(30 + q + a) for q, a in zip(rng.integers(6, 31, n), rng.integers(8, 61, n))]


def neftune_hook(alpha):
    def hook(module, inputs, output):
        if module.training:
            dims = output.size(1) * output.size(2)
            mag = alpha / (dims ** 0.5)
            output = output + torch.zeros_like(output).uniform_(-mag, mag)
        return output
    return hook


def build(layers):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM
    cfg = llama_config(layers)
    cfg.use_cache = False
    try:
        cfg._attn_implementation = "sdpa"
    except Exception:  # noqa: BLE001 (older/newer spellings; SDPA is the default for Llama anyway)
        pass
    t0 = time.time()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda"):
            model = LlamaForCausalLM(cfg)
    finally:
        torch.set_default_dtype(torch.float32)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    model.get_input_embeddings().register_forward_hook(neftune_hook(5.0))
    peft = get_peft_model(model, LoraConfig(r=32, lora_alpha=8, lora_dropout=0.1, task_type="CAUSAL_LM",
                                            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    torch.cuda.synchronize()
    init_s = time.time() - t0
    lora_dtype = next(p.dtype for n, p in peft.named_parameters() if "lora_" in n)
    opt = torch.optim.AdamW([p for p in peft.parameters() if p.requires_grad], lr=5e-5)
    return peft, opt, init_s, str(lora_dtype)


def step(model, opt, ids, att, labels):
    out = model(input_ids=ids, attention_mask=att, labels=labels)
    out.loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return out.loss


def timed(fn):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--lengths", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--sizes", default="4x128,4x512,8x1024")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--skip", default="")
    a = ap.parse_args()
    skip = set(a.skip.split(","))
    res = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    try:
        import peft as _peft
        import transformers as _tf
        res["transformers"], res["peft"] = _tf.__version__, _peft.__version__
    except Exception as e:  # noqa: BLE001
        res["versions_error"] = str(e)
    if "weights" not in skip:
        s = write_llama(a.model_dir, a.layers, seed=0)
        res["weights_write_seconds"] = s
        print(f"8B checkpoint at {a.model_dir} ({'written in %.1f s' % s if s else 'already there'})", flush=True)
    lengths = synth_lengths()
    json.dump({"lengths": lengths, "what": "synthetic short zh-TW Q&A rows: ~30 template tokens + question 6-30 + answer 8-60"},
              open(a.lengths, "w"))
    if "torch" in skip:
        json.dump(res, open(a.json, "w"), indent=2)
        return
    model, opt, init_s, lora_dtype = build(a.layers)
    res["init_seconds"], res["lora_dtype"] = init_s, lora_dtype
    print(f"PyTorch model built on the GPU in {init_s:.1f} s (LoRA weights {lora_dtype})", flush=True)
    V = model.config.vocab_size
    res["train"] = []
    model.train()
    for item in a.sizes.split(","):
        B, T = (int(x) for x in item.split("x"))
        row = {"batch": B, "seq": T}
        try:
            g = torch.Generator(device="cuda").manual_seed(B * 100000 + T)
            ids = torch.randint(0, V, (B, T), device="cuda", generator=g)
            att = torch.ones_like(ids)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            for _ in range(a.warmup):
                step(model, opt, ids, att, ids)
            times = [timed(lambda: step(model, opt, ids, att, ids)) for _ in range(a.steps)]
            med = statistics.median(times)
            row.update(tokens_per_s=B * T / med, median_step_ms=med * 1e3, step_ms=[t * 1e3 for t in times],
                       peak_gib=torch.cuda.max_memory_allocated() / 2**30)
            print(f"torch train {B}x{T}: {B * T / med:.0f} tokens/s (median step {med * 1e3:.1f} ms), peak {row['peak_gib']:.2f} GiB", flush=True)
        except torch.cuda.OutOfMemoryError as e:
            row["error"] = "out of memory: " + str(e)[:200]
            print(f"torch train {B}x{T}: out of memory", flush=True)
        opt.zero_grad(set_to_none=True)
        res["train"].append(row)
    if "decode" not in skip:
        try:
            model.eval()
            g = torch.Generator(device="cuda").manual_seed(77)
            prompt = torch.randint(0, V, (1, 64), device="cuda", generator=g)
            with torch.no_grad():
                model.generate(input_ids=prompt, max_new_tokens=8, do_sample=False, use_cache=True, pad_token_id=0)
                t = timed(lambda: model.generate(input_ids=prompt, max_new_tokens=128, min_new_tokens=128, do_sample=False,
                                                 use_cache=True, pad_token_id=0))
            res["decode"] = {"tokens": 128, "seconds": t, "tokens_per_s": 128 / t}
            print(f"torch decode: 128 tokens in {t:.2f} s = {128 / t:.1f} tokens/s", flush=True)
        except Exception as e:  # noqa: BLE001
            res["decode"] = {"error": str(e)[:300]}
        model.train()
    if "epoch" not in skip:
        try:
            order = np.random.default_rng(1).permutation(len(lengths))
            batches = [order[i:i + 4] for i in range(0, len(order), 4)]
            g = torch.Generator(device="cuda").manual_seed(5)
            data = []
            for bt in batches:
                T = max(lengths[i] for i in bt)
                ids = torch.zeros((len(bt), T), dtype=torch.long, device="cuda")
                att = torch.zeros_like(ids)
                labels = torch.full_like(ids, -100)
                for r, i in enumerate(bt):
                    L = lengths[i]
                    ids[r, :L] = torch.randint(0, V, (L,), device="cuda", generator=g)
                    att[r, :L] = 1
                    labels[r, :L] = ids[r, :L]
                data.append((ids, att, labels))
            torch.cuda.reset_peak_memory_stats()
            step(model, opt, *data[0])  # warm-up
            secs = timed(lambda: [step(model, opt, *d) for d in data])
            real = sum(lengths)
            res["epoch"] = {"rows": len(lengths), "steps": len(data), "real_tokens": real,
                            "padded_tokens": int(sum(d[0].numel() for d in data)), "seconds": secs, "tokens_per_s": real / secs,
                            "peak_gib": torch.cuda.max_memory_allocated() / 2**30}
            print(f"torch epoch (padded batches of 4): {len(data)} steps, {real} real tokens in {secs:.2f} s = {real / secs:.0f} tokens/s", flush=True)
        except Exception as e:  # noqa: BLE001
            res["epoch"] = {"error": str(e)[:300]}
    json.dump(res, open(a.json, "w"), indent=2)


if __name__ == "__main__":
    main()
