"""Side-by-side table of gpu_bench (ours) and bench_torch.py (PyTorch + peft) from the same run, with the issue-6
targets. Usage: bench_report.py OURS.json TORCH.json OUT.json   (prints the table; writes both plus the table)."""
import json
import sys


def load(p):
    try:
        return json.load(open(p))
    except Exception as e:  # noqa: BLE001
        return {"error": f"{p}: {e}"}


def main(ours_p, torch_p, out_p):
    o, t = load(ours_p), load(torch_p)
    rows = []

    def add(what, ours, theirs, unit, target=None, met=None):
        rows.append({"measure": what, "ours": ours, "pytorch": theirs, "unit": unit, "target": target, "met": met})

    speed_targets = {(4, 128): 5.0, (4, 512): 1.5, (8, 1024): 1.3}
    mem_targets = {(4, 512): 8.0, (8, 1024): 12.0}
    tt = {(r["batch"], r["seq"]): r for r in t.get("train", [])}
    for r in o.get("train", []):
        k = (r["batch"], r["seq"])
        th = tt.get(k, {})
        ours_tps, th_tps = r.get("tokens_per_s"), th.get("tokens_per_s")
        ratio = ours_tps / th_tps if ours_tps and th_tps else None
        tgt = speed_targets.get(k)
        add(f"train {k[0]}x{k[1]} tokens/s", ours_tps, th_tps, "tok/s",
            f">= {tgt}x PyTorch" if tgt else None, (ratio >= tgt) if (ratio and tgt) else None)
        if ratio:
            rows[-1]["ratio"] = ratio
        mt = mem_targets.get(k)
        add(f"train {k[0]}x{k[1]} peak memory", r.get("peak_gib"), th.get("peak_gib"), "GiB",
            f"<= {mt} GiB" if mt else None, (r["peak_gib"] <= mt) if (mt and r.get("peak_gib")) else None)
    oe, te = o.get("epoch", {}), t.get("epoch", {})
    otb = oe.get("token_budget", {}).get("tokens_per_s")
    opad = oe.get("padded_batches_of_4", {}).get("tokens_per_s")
    tpad = te.get("tokens_per_s")
    add("epoch, token budget (ours) vs padded batches of 4 (PyTorch)", otb, tpad, "tok/s", ">= 3x PyTorch padded",
        (otb / tpad >= 3) if (otb and tpad) else None)
    if otb and tpad:
        rows[-1]["ratio"] = otb / tpad
    add("epoch, padded batches of 4 (both)", opad, tpad, "tok/s")
    od, td = o.get("decode", {}), t.get("decode", {})
    add("decode 64 + 128 new tokens", od.get("tokens_per_s"), td.get("tokens_per_s"), "tok/s", ">= 250 tok/s",
        (od["tokens_per_s"] >= 250) if od.get("tokens_per_s") else None)
    add("load + quantize 8B (page cache)", o.get("load_seconds"), None, "s", "<= 30 s",
        (o["load_seconds"] <= 30) if o.get("load_seconds") else None)

    def f(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:,.2f}" if v < 100 else f"{v:,.0f}"
        return str(v)

    print(f"card: ours {o.get('device', '?')} | PyTorch {t.get('device', '?')} (torch {t.get('torch', '?')}, "
          f"transformers {t.get('transformers', '?')}, peft {t.get('peft', '?')})")
    print(f"our fast paths: {o.get('paths', '?')}")
    print(f"{'measure':58s} {'ours':>12s} {'PyTorch':>12s} {'ratio':>7s}  target")
    for r in rows:
        ratio = f"{r['ratio']:.2f}x" if r.get("ratio") else ""
        met = "" if r["met"] is None else ("MET" if r["met"] else "MISSED")
        print(f"{r['measure']:58s} {f(r['ours']):>12s} {f(r['pytorch']):>12s} {ratio:>7s}  {r['target'] or ''} {met}")
    for r in o.get("train", []):
        if "error" in r:
            print(f"  ours {r['batch']}x{r['seq']} error: {r['error'][:200]}")
    for r in t.get("train", []):
        if "error" in r:
            print(f"  pytorch {r['batch']}x{r['seq']} error: {r['error'][:200]}")
    json.dump({"ours": o, "pytorch": t, "table": rows}, open(out_p, "w"), indent=2)


if __name__ == "__main__":
    main(*sys.argv[1:4])
