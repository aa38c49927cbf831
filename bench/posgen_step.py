"""Time of one PosGen optimizer step, paper-sized model, for stacks of runs and each precision.

    PYTHONPATH=.:backends:experiments python bench/posgen_step.py                       # 1 and 12 runs, fp32/tf32/bf16
    PYTHONPATH=.:backends:experiments python bench/posgen_step.py --stacks 4 --precisions bf16 --profile
    PYTHONPATH=.:backends:experiments python bench/posgen_step.py --stacks 4,8 --precisions bf16 --compile both

Prints ms per step and per run-step (what ``rrope posgen --stack N --precision P`` costs per
epoch: x 79 steps). ``--profile`` adds torch.profiler's top CUDA ops for the last setting.
Needs CUDA for meaningful figures (runs on CPU, slowly).
"""

from __future__ import annotations

import argparse
import time

import torch

from rrope_posgen.data import loss_mask
from rrope_posgen.stacked import StackedPosGen
from rrope_posgen.train import PAPER, batch_loss, build_models, make_optimizer, training_precision

VARIANTS = ("rope", "resonance", "yarn", "resonance_yarn")


def step_ms(n_runs: int, precision: str, compile: bool, device: torch.device, steps: int, profile: bool) -> float:
    runs = [(VARIANTS[i % 4], i // 4) for i in range(n_runs)]
    model = StackedPosGen(build_models(PAPER.p, runs, PAPER), impl="eager" if compile else None).to(device)
    opt = make_optimizer(model, PAPER)
    mask = torch.from_numpy(loss_mask(PAPER.train_len, PAPER.j, PAPER.k)).to(device)
    x = torch.randint(0, PAPER.p, (n_runs, PAPER.batch_size, PAPER.train_len), device=device)

    def step(loss_of):
        loss = loss_of(x)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    with training_precision(precision, device) as autocast:
        loss_of = batch_loss(model, mask, autocast, compile)
        for _ in range(3):  # warm-up (and, with --compile, compilation)
            step(loss_of)
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            step(loss_of)
        sync()
        ms = (time.perf_counter() - start) / steps * 1e3
        if profile:
            from torch.profiler import ProfilerActivity
            from torch.profiler import profile as prof

            with prof(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
                for _ in range(3):
                    step(loss_of)
                sync()
            print(p.key_averages().table(sort_by="cuda_time_total", row_limit=14, max_name_column_width=60))
    return ms


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", default="1,12", help="comma-separated numbers of runs per stack")
    parser.add_argument("--precisions", default="fp32,tf32,bf16", help="comma-separated precisions")
    parser.add_argument("--compile", default="off", help="off, on or both: torch.compile of forward + loss")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per setting")
    parser.add_argument("--profile", action="store_true", help="torch.profiler table for the last setting")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.set_num_threads(4)
    compiles = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    settings = [(int(n), p, c) for n in args.stacks.split(",") for p in args.precisions.split(",") for c in compiles]
    print(f"# {torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}  torch {torch.__version__}")
    print("| runs stacked | precision | compiled | ms / step | ms / step / run |")
    print("|---|---|---|---|---|")
    for i, (n, precision, compile) in enumerate(settings):
        ms = step_ms(n, precision, compile, device, args.steps, args.profile and i == len(settings) - 1)
        print(f"| {n} | {precision} | {'yes' if compile else 'no'} | {ms:.1f} | {ms / n:.1f} |", flush=True)


if __name__ == "__main__":
    main()
