"""Where the host time of one fused call goes (cProfile over repeated calls; needs CUDA)."""

import cProfile
import pstats

import torch

import rrope_core as rr
import rrope_torch as rt

cfg = rr.RopeConfig(head_dim=128, scaling=rr.YaRN(8.0, 4096), resonance=True)
q = torch.randn(1, 32, 4096, 128, device="cuda", dtype=torch.bfloat16)
k = torch.randn(1, 32, 4096, 128, device="cuda", dtype=torch.bfloat16)
pos = torch.arange(4096, device="cuda")
for _ in range(20):
    rt.apply_rotary_qk(q, k, pos, cfg, impl="triton")
torch.cuda.synchronize()
prof = cProfile.Profile()
prof.enable()
for _ in range(200):
    rt.apply_rotary_qk(q, k, pos, cfg, impl="triton")
torch.cuda.synchronize()
prof.disable()
pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
