#!/usr/bin/env python3
"""Compares our tokenizer work with Hugging Face's own libraries (Rust `tokenizers`, transformers' Jinja
apply_chat_template). Run where transformers is installed (the GPU machine), on a folder written by
writeHfFixture.ts:

    python3 tests/main/tokenizer/python/check_hf_tokenizers.py .carry/hf-fixture

Checks, per folder: tokenizer.json loads in the Rust library; plain texts encode to our ids and decode back;
texts with control-token strings encode (split_special_tokens=True) to our injection-free ids; chat renderings
equal apply_chat_template; their ids equal the tokenizer's ids of the rendered string. Exit 1 on any mismatch.
"""
import json
import sys
from pathlib import Path

from tokenizers import Tokenizer
from transformers import AutoTokenizer


def main(root: Path) -> int:
    failures = 0
    for folder in sorted(p for p in root.iterdir() if (p / "expected.json").exists()):
        exp = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
        raw = Tokenizer.from_file(str(folder / "tokenizer.json"))
        hf = AutoTokenizer.from_pretrained(str(folder))
        checks = 0

        def fail(what: str, ours, theirs) -> None:
            nonlocal failures
            failures += 1
            print(f"FAIL {folder.name}: {what}\n  ours:   {ours!r}\n  theirs: {theirs!r}")

        for t in exp["texts"]:
            theirs = raw.encode(t["text"], add_special_tokens=False).ids
            checks += 1
            if theirs != t["ids"]:
                fail(f"encode {t['text']!r}", t["ids"], theirs)
            if raw.decode(t["ids"], skip_special_tokens=False) != t["text"] and folder.name.startswith("tiny"):
                fail(f"decode {t['text']!r}", t["text"], raw.decode(t["ids"], skip_special_tokens=False))
        for t in exp["injected"]:
            theirs = hf(t["text"], add_special_tokens=False, split_special_tokens=True)["input_ids"]
            checks += 1
            if theirs != t["ids"]:
                fail(f"split_special_tokens {t['text']!r}", t["ids"], theirs)
        for c in exp["chats"]:
            kwargs = {"chat_template": exp["chat_template"]} if exp["chat_template"] else {}
            rendered = hf.apply_chat_template(c["messages"], tokenize=False, add_generation_prompt=c["add_generation_prompt"], **kwargs)
            checks += 2
            if rendered != c["rendered"]:
                fail("apply_chat_template", c["rendered"], rendered)
            ids = hf(c["rendered"], add_special_tokens=False)["input_ids"]
            if ids != c["ids"]:
                fail("ids of the rendered chat", c["ids"], ids)
        print(f"{folder.name}: {checks} checks, vocab {raw.get_vocab_size(with_added_tokens=True)}, stop ids {exp['stop_ids']}")
    print("PASS" if failures == 0 else f"{failures} FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else ".carry/hf-fixture")))
