"""Whole-model speed: a transformers Llama's training step and generation under torch.compile with
(a) transformers' own rope table, (b) our exact phases through the integration, (c) our fused
kernel on q and k.

    PYTHONPATH=.:backends python bench/hf_model_speed.py                 # CUDA, ~200M parameters
    PYTHONPATH=.:backends python bench/hf_model_speed.py --tiny --device cpu --steps 2 --repeats 1

(a) ``LlamaRotaryEmbedding``'s float32 ``cos/sin(m * inv_freq)`` table; (b)
``rrope_torch.transformers.use_exact_phases(model)``: exact cos/sin, the model's own
``apply_rotary_pos_emb``; (c) the rotary module returns the position ids and
``modeling_llama.apply_rotary_pos_emb`` is replaced by ``rrope_torch.apply_rotary_qk`` (the Triton
kernel on CUDA, computing the phases inside it). Prints, per variant, tokens per second of a
training step (forward, backward, AdamW) and of cached generation, as the median and min-max of
``--repeats`` timed loops in one run, the ratio to (a), and the max |logit - (a)'s logit| on one
batch at small positions (a sanity check: the variants compute the same function up to float32
table rounding), and the number of graphs Inductor ran without CUDA graphs during generation (its
``cudagraph_skips`` counter; the reason: ``TORCH_LOGS=perf_hints``). Inductor's fusions: rerun with
``TORCH_LOGS=output_code``. ``--profile`` adds one generation per variant under ``torch.profiler``:
device kernels launched, the device's busy time and the wall time of that generation (a variant
whose busy time matches (a)'s but whose wall time does not is bound by the host, not the GPU),
and for one training step the same totals plus the kernels whose device time differs most from
(a)'s, by kernel name (where a variant's extra time goes). ``--explain`` only prints, per variant,
the graphs and graph breaks ``torch._dynamo.explain`` finds in one training forward.

Training loops run variant after variant (each compiled afresh; they repeat within 0.3 % between
runs). Generation is host-bound on an H200 (the device is busy about a fifth of the wall time), so
its timings drift with the host: after every variant has compiled its decode step, the timed
generations go round-robin, one loop per variant per round with the order rotated each round, so
drift hits every variant alike; the table gives the median and the min-max of the rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
from torch._dynamo.utils import counters
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.models.llama import modeling_llama

import rrope_core as rr
import rrope_torch as rt
import rrope_torch.transformers as rtt
from rrope_core.commands.options import _positive_int

VARIANTS = ("hf table", "exact phases", "fused kernel")


def build(args, device, dtype) -> LlamaForCausalLM:
    rope = {
        "rope_type": "resonance_yarn",
        "rope_theta": 500000.0,
        "factor": 8.0,
        "original_max_position_embeddings": 4096,
    }
    sizes = (
        dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
        if args.tiny
        else dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=12, num_attention_heads=16, num_key_value_heads=4)
    )  # fmt: skip
    config = LlamaConfig(vocab_size=args.vocab, max_position_embeddings=32768, rope_parameters=rope, **sizes)
    torch.manual_seed(0)
    return LlamaForCausalLM(config).to(device=device, dtype=dtype)


@contextlib.contextmanager
def fused_rope(model: LlamaForCausalLM, cfg: rr.RopeConfig):
    """(c): the rotary module hands the position ids on; the attention rotates q and k with them."""
    own_apply, rotary = modeling_llama.apply_rotary_pos_emb, model.model.rotary_emb
    own_forward = rotary.forward

    def positions_only(x, position_ids):
        return position_ids, position_ids

    def apply(q, k, cos, sin, unsqueeze_dim=1):
        if cos.dtype.is_floating_point:
            return own_apply(q, k, cos, sin, unsqueeze_dim)
        return rt.apply_rotary_qk(q, k, cos[:, None, :], cfg)  # (B, H, S, D) at (B, 1, S)

    rotary.forward = positions_only
    modeling_llama.apply_rotary_pos_emb = apply
    try:
        yield
    finally:
        rotary.forward = own_forward
        modeling_llama.apply_rotary_pos_emb = own_apply


@contextlib.contextmanager
def variant(model, name: str, cfg: rr.RopeConfig):
    if name == "hf table":
        yield
    elif name == "exact phases":
        rtt.use_exact_phases(model)
        try:
            yield
        finally:
            rtt.use_exact_phases(model, False)
    else:
        with fused_rope(model, cfg):
            yield


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def loop_time(fn, n: int, device) -> float:
    sync(device)
    start = time.perf_counter()
    for _ in range(n):
        fn()
    sync(device)
    return (time.perf_counter() - start) / n


def profile_once(fn, device) -> tuple[int, float, float, dict[str, float]]:
    """``(kernels, device busy ms, wall ms, {kernel name: device ms})`` of one ``fn()`` under
    torch.profiler (no kernels on CPU)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    sync(device)
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        fn()
        sync(device)
        wall = time.perf_counter() - start
    on_device = [e for e in prof.key_averages() if e.device_type == DeviceType.CUDA]
    by_name = {e.key: e.self_device_time_total / 1e3 for e in on_device}
    return sum(e.count for e in on_device), sum(by_name.values()), wall * 1e3, by_name


def print_profiles(title: str, profiled: dict, top: int) -> None:
    """The totals per variant, then per variant the ``top`` kernels whose device ms differ most
    from (a)'s (a kernel (a) does not launch counts from 0)."""
    print(f"\n# {title} under torch.profiler")
    print("| variant | device kernels | device busy ms | wall ms | busy / wall |")
    print("|---|---|---|---|---|")
    for name, (kernels, busy, wall, _) in profiled.items():
        print(f"| {name} | {kernels} | {busy:.1f} | {wall:.1f} | {busy / wall:.2f} |")
    base = profiled[VARIANTS[0]][3]
    for name, (*_, by_name) in list(profiled.items())[1:]:
        diffs = {k: by_name.get(k, 0.0) - base.get(k, 0.0) for k in set(by_name) | set(base)}
        worst = sorted(diffs, key=lambda k: -abs(diffs[k]))[:top]
        print(f"\n{name}: kernels whose device ms differ most from {VARIANTS[0]}'s")
        print("| kernel | ms | ms in (a) | difference |")
        print("|---|---|---|---|")
        for k in worst:
            print(f"| `{k[:90]}` | {by_name.get(k, 0.0):.3f} | {base.get(k, 0.0):.3f} | {diffs[k]:+.3f} |")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer d64 model (a CPU check of the script)")
    parser.add_argument("--vocab", type=_positive_int, default=32000)
    parser.add_argument("--batch", type=_positive_int, default=4)
    parser.add_argument("--seq", type=_positive_int, default=2048, help="training sequence length")
    parser.add_argument("--prompt", type=_positive_int, default=512)
    parser.add_argument("--new-tokens", type=_positive_int, default=128)
    parser.add_argument("--steps", type=_positive_int, default=10, help="timed training steps per loop")
    parser.add_argument("--repeats", type=_positive_int, default=3)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--gen-loops", type=_positive_int, default=2, help="generations per timed generation loop")
    parser.add_argument(
        "--profile", action="store_true", help="also profile one training step and one generation per variant"
    )
    parser.add_argument("--top", type=_positive_int, default=8, help="kernels listed per variant by --profile")
    parser.add_argument(
        "--explain",
        action="store_true",
        help="only print each variant's graphs and graph breaks (torch._dynamo.explain)",
    )
    args = parser.parse_args(argv)
    if args.tiny:
        args.vocab, args.seq, args.prompt, args.new_tokens = 256, 64, 16, 8
    device = args.device
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    rtt.register()
    model = build(args, device, dtype)
    cfg = rtt.rope_config(model.config)
    n_params = sum(p.numel() for p in model.parameters())
    gen = torch.Generator(device="cpu").manual_seed(1)
    ids = torch.randint(0, args.vocab, (args.batch, args.seq + 1), generator=gen).to(device)
    prompt = ids[:, : args.prompt]
    forward = model if args.no_compile else torch.compile(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def train_step():
        loss = forward(ids[:, :-1], labels=ids[:, 1:]).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def generate():
        kwargs = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False)
        if not args.no_compile:
            kwargs["cache_implementation"] = "static"
        model.generate(prompt, **kwargs)

    if args.explain:  # one training forward per variant, traced: does a variant break the graph?
        for name in VARIANTS:
            with variant(model, name, cfg):
                torch._dynamo.reset()
                ex = torch._dynamo.explain(model)(ids[:, :-1], labels=ids[:, 1:])
            print(f"{name}: {ex.graph_count} graphs, {ex.graph_break_count} graph breaks {ex.break_reasons}")
        return
    state = {k: v.clone() for k, v in model.state_dict().items()}  # every variant trains from the same weights
    train, decode, logits, skips, prof_train, prof_gen = {}, {}, {}, {}, {}, {}
    for name in VARIANTS:
        model.load_state_dict(state)
        opt.state.clear()
        with variant(model, name, cfg):
            with torch.no_grad():
                logits[name] = model(ids[:1, :64]).logits.float()
            torch._dynamo.reset()
            train_step()  # compile + warm-up
            train[name] = [
                args.batch * args.seq / loop_time(train_step, args.steps, device) for _ in range(args.repeats)
            ]
            if args.profile:
                prof_train[name] = profile_once(train_step, device)
    model.load_state_dict(state)
    torch._dynamo.reset()  # generation: each variant's decode step compiled once, then timed round-robin
    for name in VARIANTS:
        counters["inductor"]["cudagraph_skips"] = 0
        with variant(model, name, cfg), torch.no_grad():
            generate()
            if args.profile:
                prof_gen[name] = profile_once(generate, device)
        skips[name] = counters["inductor"]["cudagraph_skips"]
        decode[name] = []
    graphs_before = counters["stats"]["unique_graphs"]
    for r in range(args.repeats):
        for name in VARIANTS[r % len(VARIANTS) :] + VARIANTS[: r % len(VARIANTS)]:
            with variant(model, name, cfg), torch.no_grad():
                decode[name].append(args.batch * args.new_tokens / loop_time(generate, args.gen_loops, device))
    name0 = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print(f"# {name0}  torch {torch.__version__}  {n_params / 1e6:.1f}M parameters  {dtype}  config {cfg!r}")
    print(f"# train: batch {args.batch} x {args.seq} tokens, {args.steps} steps per loop; generate: "
          f"batch {args.batch}, prompt {args.prompt}, {args.new_tokens} new tokens, {args.gen_loops} per loop, "
          f"round-robin; {args.repeats} repeats; "
          f"compile {not args.no_compile}")  # fmt: skip
    print(
        "| variant | train tok/s median (min-max) | vs hf table | generate tok/s median (min-max) | vs hf table "
        "| cudagraph skips in generate | max abs logit diff vs hf |"
    )
    print("|---|---|---|---|---|---|---|")
    base_t, base_g = statistics.median(train[VARIANTS[0]]), statistics.median(decode[VARIANTS[0]])
    for name in VARIANTS:
        tr, de = train[name], decode[name]
        t, g = statistics.median(tr), statistics.median(de)
        diff = (logits[name] - logits[VARIANTS[0]]).abs().max().item()
        print(
            f"| {name} | {t:.0f} ({min(tr):.0f}-{max(tr):.0f}) | {t / base_t:.3f} "
            f"| {g:.0f} ({min(de):.0f}-{max(de):.0f}) | {g / base_g:.3f} | {skips[name]} | {diff:.3g} |"
        )
    print(f"# graphs compiled during the timed generation rounds: {counters['stats']['unique_graphs'] - graphs_before}")
    if args.profile:
        print_profiles("one training step per variant", prof_train, args.top)
        print_profiles(f"one generation per variant ({args.new_tokens} new tokens)", prof_gen, args.top)


if __name__ == "__main__":
    main()
