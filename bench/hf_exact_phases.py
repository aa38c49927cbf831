"""Cost of ``use_exact_phases`` in a transformers model: prefill and one cached decode step of a
small random Llama, transformers' own float32 tables vs exact tables, interleaved in one run.

    PYTHONPATH=.:backends python bench/hf_exact_phases.py                      # CUDA if present
    PYTHONPATH=.:backends python bench/hf_exact_phases.py --rope-type yarn --repeats 7

Prints, per setting, the median ms of each (over ``--iters`` calls, repeated ``--repeats`` times
alternating the two tables so drift hits both) and the ratio exact/own with its min..max over repeats.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

import rrope_torch.transformers as rtt


def build(rope_type: str, device: str, dtype: torch.dtype) -> LlamaForCausalLM:
    rope = {"rope_type": rope_type, "rope_theta": 500000.0}
    if "yarn" in rope_type:
        rope.update(factor=8.0, original_max_position_embeddings=4096)
    config = LlamaConfig(
        vocab_size=32000,
        hidden_size=1024,
        intermediate_size=2816,
        num_hidden_layers=8,
        num_attention_heads=16,
        num_key_value_heads=4,
        max_position_embeddings=32768,
        rope_parameters=rope,
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(config).to(device=device, dtype=dtype).eval()


def timed(fn, iters: int, device: str) -> float:
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    fn()
    sync()
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    sync()
    return (time.perf_counter() - start) / iters * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rope-type", default="resonance_yarn")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--prompt", type=int, default=2048)
    parser.add_argument("--offset", type=int, default=1_000_000, help="first position (exactness matters far out)")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rtt.register()
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    model = build(args.rope_type, args.device, dtype)
    ids = torch.randint(0, 32000, (1, args.prompt), device=args.device)
    pos = args.offset + torch.arange(args.prompt, device=args.device)[None]
    with torch.no_grad():
        cache = model(ids, position_ids=pos, use_cache=True).past_key_values
    step_ids, step_pos = ids[:, :1], pos[:, -1:] + 1

    def prefill():
        model(ids, position_ids=pos, use_cache=False)

    def decode():
        model(step_ids, position_ids=step_pos, past_key_values=cache, use_cache=True)
        cache.crop(-1)  # drop the step: the cache length stays the prompt

    figures = {(kind, exact): [] for kind in ("prefill", "decode") for exact in (False, True)}
    with torch.no_grad():
        for _ in range(args.repeats):
            for exact in (False, True):
                rtt.use_exact_phases(model, exact)
                figures[("prefill", exact)].append(timed(prefill, max(2, args.iters // 4), args.device))
                figures[("decode", exact)].append(timed(decode, args.iters, args.device))
    print(f"{args.device} {torch.cuda.get_device_name() if args.device == 'cuda' else ''} {dtype} {args.rope_type}, "
          f"8 layers d1024, prompt {args.prompt} at offset {args.offset}, {args.repeats} repeats")  # fmt: skip
    for kind in ("prefill", "decode"):
        own, exact = figures[(kind, False)], figures[(kind, True)]
        ratios = [e / o for e, o in zip(exact, own, strict=True)]
        print(
            f"{kind:8s} own {statistics.median(own):8.3f} ms  exact {statistics.median(exact):8.3f} ms  "
            f"exact/own {statistics.median(ratios):.3f} ({min(ratios):.3f}..{max(ratios):.3f})"
        )


if __name__ == "__main__":
    main()
