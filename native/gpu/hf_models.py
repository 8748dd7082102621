"""Random Llama-3-architecture checkpoints for the GPU checks and the benchmark (no downloads).

write_llama(folder, layers, ...) writes config.json (through transformers' own LlamaConfig, so the file is what
this transformers version writes: rope_parameters in 5.x, rope_scaling in 4.x) and model.safetensors in bf16,
streaming one tensor at a time from the GPU so an 8B model never sits in host memory whole. Weights: N(0, 0.02)
for embeddings and linears (transformers' initializer_range), norms 1 + U(-0.1, 0.1) so they matter.
"""
import json
import os
import struct
import time

import torch

LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 8192}


def llama_config(layers, hidden=4096, ffn=14336, heads=32, kv_heads=8, vocab=128256):
    import transformers
    from transformers import LlamaConfig
    kw = dict(vocab_size=vocab, hidden_size=hidden, intermediate_size=ffn, num_hidden_layers=layers,
              num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=8192,
              rms_norm_eps=1e-5, hidden_act="silu", tie_word_embeddings=False, attention_bias=False,
              mlp_bias=False, bos_token_id=128000, eos_token_id=128009)
    if int(transformers.__version__.split(".")[0]) >= 5:
        cfg = LlamaConfig(**kw, rope_parameters=dict(LLAMA3_ROPE, rope_theta=500000.0))
    else:
        cfg = LlamaConfig(**kw, rope_theta=500000.0, rope_scaling=dict(LLAMA3_ROPE))
    cfg.architectures = ["LlamaForCausalLM"]
    try:
        cfg.torch_dtype = torch.bfloat16
    except Exception:  # noqa: BLE001 (5.x may spell it dtype)
        pass
    return cfg


def tensor_specs(layers, hidden, ffn, heads, kv_heads, vocab):
    hd = hidden // heads
    specs = [("model.embed_tokens.weight", (vocab, hidden), "normal")]
    for i in range(layers):
        p = f"model.layers.{i}."
        specs += [(p + "input_layernorm.weight", (hidden,), "norm"),
                  (p + "post_attention_layernorm.weight", (hidden,), "norm"),
                  (p + "self_attn.q_proj.weight", (heads * hd, hidden), "normal"),
                  (p + "self_attn.k_proj.weight", (kv_heads * hd, hidden), "normal"),
                  (p + "self_attn.v_proj.weight", (kv_heads * hd, hidden), "normal"),
                  (p + "self_attn.o_proj.weight", (hidden, heads * hd), "normal"),
                  (p + "mlp.gate_proj.weight", (ffn, hidden), "normal"),
                  (p + "mlp.up_proj.weight", (ffn, hidden), "normal"),
                  (p + "mlp.down_proj.weight", (hidden, ffn), "normal")]
    specs += [("model.norm.weight", (hidden,), "norm"), ("lm_head.weight", (vocab, hidden), "normal")]
    return specs


def write_safetensors_streaming(path, specs, make):
    """specs: [(name, shape, kind)]; make(name, shape, kind) -> a bf16 CUDA tensor. Writes one tensor at a time."""
    header, off = {}, 0
    for name, shape, _ in specs:
        n = 1
        for d in shape:
            n *= d
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + 2 * n]}
        off += 2 * n
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for name, shape, kind in specs:
            t = make(name, shape, kind)
            f.write(t.contiguous().view(torch.int16).cpu().numpy().tobytes())
    os.replace(tmp, path)


def write_llama(folder, layers, hidden=4096, ffn=14336, heads=32, kv_heads=8, vocab=128256, seed=0):
    """Writes the model folder unless it is already complete (marker file). Returns seconds spent."""
    t0 = time.time()
    marker = os.path.join(folder, ".complete")
    if os.path.exists(marker):
        return 0.0
    os.makedirs(folder, exist_ok=True)
    llama_config(layers, hidden, ffn, heads, kv_heads, vocab).save_pretrained(folder)
    g = torch.Generator(device="cuda")
    g.manual_seed(seed)

    def make(name, shape, kind):
        if kind == "norm":
            return (1.0 + 0.2 * (torch.rand(shape, generator=g, device="cuda") - 0.5)).to(torch.bfloat16)
        return (torch.randn(shape, generator=g, device="cuda", dtype=torch.float32) * 0.02).to(torch.bfloat16)

    write_safetensors_streaming(os.path.join(folder, "model.safetensors"),
                                tensor_specs(layers, hidden, ffn, heads, kv_heads, vocab), make)
    open(marker, "w").close()
    return time.time() - t0
