"""Compares our engine with Hugging Face transformers + peft on the tiny models written by makeReference.ts.

For each flavour folder: load model/ with transformers (fp32, CPU), compare full-forward logits with ours
(logits_base.f32); load adapter/ with peft's PeftModel.from_pretrained (so peft must accept our file names, keys,
shapes and adapter_config.json), compare logits with ours (logits_adapter.f32); compare greedy generations.
Usage: python3 tests/native/reference/check_hf.py .carry/hfref     Exit status 0 only if everything matches.
"""
import json
import os
import sys

import numpy as np
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

TOL = 2e-3  # max |ours - theirs| on logits of magnitude ~1 (fp32 both sides; summation order differs)


def greedy(model, prompt, n):
    out = model.generate(torch.tensor([prompt]), max_new_tokens=n, do_sample=False, num_beams=1,
                         eos_token_id=None, pad_token_id=0, min_new_tokens=n)
    return out[0, len(prompt):].tolist()


def main(root):
    failures = 0
    for name in sorted(os.listdir(root)):
        d = os.path.join(root, name)
        if not os.path.isdir(d):
            continue
        ref = json.load(open(os.path.join(d, "reference.json")))
        ids, vocab = ref["ids"], ref["vocab"]
        model = AutoModelForCausalLM.from_pretrained(os.path.join(d, "model"), torch_dtype=torch.float32)
        model.eval()
        with torch.no_grad():
            theirs = model(torch.tensor([ids])).logits[0].numpy()
        ours = np.fromfile(os.path.join(d, "logits_base.f32"), dtype=np.float32).reshape(len(ids), vocab)
        diff = float(np.abs(ours - theirs).max())
        ok = diff < TOL
        g = greedy(model, ref["greedy_prompt"], len(ref["greedy_base"]))
        gen_ok = g == ref["greedy_base"]
        print(f"{name:18s} base    max|dlogit| = {diff:.2e} {'OK' if ok else 'FAIL'}   greedy {'OK' if gen_ok else 'FAIL ' + str(g) + ' vs ' + str(ref['greedy_base'])}")
        failures += (not ok) + (not gen_ok)

        peft_model = PeftModel.from_pretrained(model, os.path.join(d, "adapter"))
        peft_model.eval()
        with torch.no_grad():
            theirs = peft_model(input_ids=torch.tensor([ids])).logits[0].numpy()
        ours = np.fromfile(os.path.join(d, "logits_adapter.f32"), dtype=np.float32).reshape(len(ids), vocab)
        diff = float(np.abs(ours - theirs).max())
        base_vs_adapter = float(np.abs(ours - np.fromfile(os.path.join(d, "logits_base.f32"), dtype=np.float32).reshape(len(ids), vocab)).max())
        ok = diff < TOL and base_vs_adapter > 10 * TOL
        g = greedy(peft_model, ref["greedy_prompt"], len(ref["greedy_adapter"]))
        gen_ok = g == ref["greedy_adapter"]
        print(f"{name:18s} adapter max|dlogit| = {diff:.2e} (adapter moves logits by {base_vs_adapter:.2e}) {'OK' if ok else 'FAIL'}   greedy {'OK' if gen_ok else 'FAIL'}")
        failures += (not ok) + (not gen_ok)
    print(f"{failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ".carry/hfref"))
