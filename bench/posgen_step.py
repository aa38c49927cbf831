"""Time of one PosGen optimizer step, paper-sized model, for stacks of runs and each precision.

    PYTHONPATH=.:backends python bench/posgen_step.py                       # 1 and 12 runs, fp32/tf32/bf16
    PYTHONPATH=.:backends python bench/posgen_step.py --stacks 4 --precisions bf16 --profile

Prints ms per step and per run-step (what ``rrope posgen --stack N --precision P`` costs per
epoch: x 79 steps). ``--profile`` adds torch.profiler's top CUDA ops for the last setting.
Needs CUDA for meaningful figures (runs on CPU, slowly).
"""

from __future__ import annotations

import argparse
import time

import torch

from rrope_torch.posgen.data import loss_mask
from rrope_torch.posgen.stacked import StackedPosGen
from rrope_torch.posgen.train import PAPER, build_models, masked_loss, training_precision

VARIANTS = ("rope", "resonance", "yarn", "resonance_yarn")


def step_ms(n_runs: int, precision: str, device: torch.device, steps: int, profile: bool) -> float:
    runs = [(VARIANTS[i % 4], i // 4) for i in range(n_runs)]
    model = StackedPosGen(build_models(PAPER.p, runs, PAPER)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=PAPER.lr, weight_decay=PAPER.weight_decay)
    mask = torch.from_numpy(loss_mask(PAPER.train_len, PAPER.j, PAPER.k)).to(device)
    x = torch.randint(0, PAPER.p, (n_runs, PAPER.batch_size, PAPER.train_len), device=device)

    def step():
        loss = masked_loss(model(x[..., :-1]), x, mask)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    with training_precision(precision, device):
        for _ in range(3):
            step()
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        ms = (time.perf_counter() - start) / steps * 1e3
        if profile:
            from torch.profiler import ProfilerActivity
            from torch.profiler import profile as prof

            with prof(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
                for _ in range(3):
                    step()
                sync()
            print(p.key_averages().table(sort_by="cuda_time_total", row_limit=14, max_name_column_width=60))
    return ms


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", default="1,12", help="comma-separated numbers of runs per stack")
    parser.add_argument("--precisions", default="fp32,tf32,bf16", help="comma-separated precisions")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per setting")
    parser.add_argument("--profile", action="store_true", help="torch.profiler table for the last setting")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.set_num_threads(4)
    settings = [(int(n), p) for n in args.stacks.split(",") for p in args.precisions.split(",")]
    print(f"# {torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}  torch {torch.__version__}")
    print("| runs stacked | precision | ms / step | ms / step / run |")
    print("|---|---|---|---|")
    for i, (n, precision) in enumerate(settings):
        ms = step_ms(n, precision, device, args.steps, args.profile and i == len(settings) - 1)
        print(f"| {n} | {precision} | {ms:.1f} | {ms / n:.1f} |", flush=True)


if __name__ == "__main__":
    main()
