"""The fused Triton kernel: logic on CPU through Triton's interpreter, numbers on CUDA when present."""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the PyTorch backend needs torch")
rt = pytest.importorskip("rrope_torch", reason="rrope_torch is not installed")

import rrope_core as rr  # noqa: E402

from .test_torch import within_reference  # noqa: E402

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
ROOT = Path(__file__).resolve().parents[2]
CFGS = {
    "resonance_yarn": rr.RopeConfig(head_dim=128, scaling=rr.YaRN(8.0, 4096), resonance=True),
    "llama3_interleaved_partial": rr.RopeConfig(
        head_dim=96, rotary_dim=48, base=500000.0, scaling=rr.Llama3(8.0, 8192), layout="interleaved"
    ),
    "plain_float_phase": rr.RopeConfig(head_dim=64),
}

INTERPRETER_SCRIPT = """
import numpy as np, torch, rrope_core as rr
from rrope_torch.triton_kernel import rope_launch
from rrope_torch.constants import device_constants
from tests.backends.test_torch import within_reference
for cfg in [rr.RopeConfig(head_dim=64, scaling=rr.YaRN(8.0, 256), resonance=True),
            rr.RopeConfig(head_dim=48, rotary_dim=24, scaling=rr.Llama3(8.0, 256), layout="interleaved"),
            rr.RopeConfig(head_dim=32, rotary_dim=20)]:
    for dtype in (torch.float32, torch.bfloat16):
        for token_axis in (1, 2):
            shape = lambda h: (2, h, 19, cfg.head_dim) if token_axis == 2 else (2, 19, h, cfg.head_dim)
            q, k = torch.randn(shape(4)).to(dtype), torch.randn(shape(2)).to(dtype)
            pos = torch.arange(19)[None, :] + torch.tensor([[5], [2**31 - 50]])
            periods, theta, step, a = device_constants(cfg, None, q.device, torch.float32)
            qo, ko = torch.empty_like(q), torch.empty_like(k)
            rope_launch(q, k, qo, ko, pos, periods if periods is not None else theta, step, rotary_dim=cfg.rotary_dim,
                        half=cfg.layout == "half", resonance=cfg.resonance, scale=a, sin_sign=1.0, token_axis=token_axis)
            p = pos[:, None, :] if token_axis == 2 else pos[:, :, None]
            within_reference(qo, q, p, cfg)
            within_reference(ko, k, p, cfg)
            if dtype == torch.float32:  # q alone (apply_rotary's launch): no programs for k
                qo = torch.full_like(q, float("nan"))
                rope_launch(q, None, qo, None, pos, periods if periods is not None else theta, step,
                            rotary_dim=cfg.rotary_dim, half=cfg.layout == "half", resonance=cfg.resonance,
                            scale=a, sin_sign=1.0, token_axis=token_axis)
                within_reference(qo, q, p, cfg)
                qi = q.clone()  # and in place: a program for a k that is not there would rotate twice
                rope_launch(qi, None, qi, None, pos, periods if periods is not None else theta, step,
                            rotary_dim=cfg.rotary_dim, half=cfg.layout == "half", resonance=cfg.resonance,
                            scale=a, sin_sign=1.0, token_axis=token_axis)
                within_reference(qi, q, p, cfg)
print("interpreter ok")
"""


def test_kernel_logic_in_triton_interpreter():
    """Indexing, layouts, partial dims, GQA, per-batch offsets and both arrangements, on CPU."""
    pytest.importorskip("triton", reason="needs triton (its CPU interpreter)")
    env = {
        **os.environ,
        "TRITON_INTERPRET": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "backends"), os.environ.get("PYTHONPATH", "")]),
    }
    res = subprocess.run(
        [sys.executable, "-c", INTERPRETER_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0 and "interpreter ok" in res.stdout, res.stdout[-2000:] + res.stderr[-3000:]


def test_impl_triton_on_cpu_is_a_clear_error():
    with pytest.raises(rr.RopeInputError, match="^impl='triton' is invalid: cannot run here"):
        rt.apply_rotary(torch.zeros(1, 2, 3, 8), torch.arange(3), rr.RopeConfig(head_dim=8), impl="triton")
    with pytest.raises(rr.RopeInputError, match="^impl="):
        rt.apply_rotary(torch.zeros(1, 2, 3, 8), torch.arange(3), rr.RopeConfig(head_dim=8), impl="cuda")


class _FakeCompiled:
    """Stands in for a Triton CompiledKernel: ``kernel[grid](*all_params)`` launches."""

    def __init__(self, calls, fail):
        self.calls, self.fail = calls, fail

    def __getitem__(self, grid):
        def launch(*args):
            if self.fail:
                raise TypeError("launcher takes 26 positional arguments")
            self.calls.append(("direct", grid, len(args)))

        return launch


class _FakeJit:
    """Stands in for ``_rope_kernel``: ``_rope_kernel[grid](*args, **constexprs)`` returns the kernel."""

    def __init__(self, calls, fail=False):
        self.calls, self.fail = calls, fail

    def __getitem__(self, grid):
        def run(*args, **kwargs):
            self.calls.append(("triton", grid, len(args) + len(kwargs) - 1))  # minus num_warps
            return _FakeCompiled(self.calls, self.fail)

        return run


def test_launch_params_honour_the_overrides(monkeypatch):
    """``OVERRIDES`` (the benchmark sweep's knobs) reach the tiling: kills
    x_launch_params__mutmut_28 and _37 (TARGET or WARPS ignored), which change no result."""
    pytest.importorskip("triton", reason="needs triton")
    from rrope_torch import triton_kernel as tk

    shape = (4096, 1, 32, 8, 64)  # s, b, hq, hk, pairs
    monkeypatch.setattr(tk, "OVERRIDES", {})
    default = tk.launch_params(*shape)
    monkeypatch.setattr(tk, "OVERRIDES", {"TARGET": 64, "WARPS": 2})
    tuned = tk.launch_params(*shape)
    assert tuned == tk._launch_params(*shape, 16, 64, 2) and tuned != default


def test_launch_cache_keys_every_specialization(monkeypatch):
    """The compiled-kernel cache, without a GPU: the first call of each specialization goes through
    Triton's launcher, a repeat launches the cached kernel with every parameter (constexprs too),
    and a change of shape or of pointer alignment is a new entry. A compiled launcher that rejects
    the arguments switches the direct path off with a warning, and launches still happen."""
    pytest.importorskip("triton", reason="needs triton")
    from rrope_torch import triton_kernel as tk
    from rrope_torch.constants import device_constants

    cfg = CFGS["resonance_yarn"]
    periods, _, step, a = device_constants(cfg, None, torch.device("cpu"), torch.float32)
    calls = []
    monkeypatch.setattr(tk, "_rope_kernel", _FakeJit(calls))
    monkeypatch.setattr(tk, "DIRECT_LAUNCH", True)
    monkeypatch.setattr(tk, "_COMPILED", {})

    def launch(q, k):
        pos = torch.arange(q.shape[2])[None]
        tk.rope_launch(q, k, torch.empty_like(q), torch.empty_like(k), pos, periods, step, rotary_dim=128,
                       half=True, resonance=True, scale=a, sin_sign=1.0, token_axis=2)  # fmt: skip

    q, k = torch.zeros(1, 4, 8, 128), torch.zeros(1, 2, 8, 128)
    launch(q, k)
    launch(q, k)
    assert [c[0] for c in calls] == ["triton", "direct"] and calls[0][2] == calls[1][2]  # same parameters
    launch(q[:, :, 1:], k[:, :, 1:])  # 7 tokens: other integer arguments
    misaligned = torch.zeros(q.numel() + 1)[1:].view(q.shape)  # data_ptr % 16 == 4
    launch(misaligned, k)
    assert [c[0] for c in calls[2:]] == ["triton", "triton"] and len(tk._COMPILED) == 3
    launch(misaligned, k)
    assert calls[-1][0] == "direct"

    monkeypatch.setattr(tk, "_COMPILED", {})
    monkeypatch.setattr(tk, "_rope_kernel", _FakeJit(calls, fail=True))
    launch(q, k)
    with pytest.warns(UserWarning, match="direct Triton launch unavailable"):
        launch(q, k)
    assert tk.DIRECT_LAUNCH is False and calls[-1][0] == "triton"
    launch(q, k)
    assert calls[-1][0] == "triton"


@CUDA
@pytest.mark.parametrize("name", list(CFGS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("arrangement", ["BHSD", "BSHD"])
def test_kernel_matches_reference(name, dtype, arrangement):
    cfg = CFGS[name]
    b, hq, hk, s = 2, 8, 2, 77
    shape = (lambda h: (b, h, s, cfg.head_dim)) if arrangement == "BHSD" else (lambda h: (b, s, h, cfg.head_dim))
    q, k = torch.randn(shape(hq), device="cuda").to(dtype), torch.randn(shape(hk), device="cuda").to(dtype)
    offsets = torch.tensor([[3], [2**31 - 200]], device="cuda")
    pos2 = torch.arange(s, device="cuda")[None] + offsets  # per-batch offsets (B, S)
    pos = pos2[:, None, :] if arrangement == "BHSD" else pos2[:, :, None]
    assert not isinstance(rt.kernel_plan(q, pos), str)
    rq, rk = rt.apply_rotary_qk(q, k, pos, cfg, impl="triton")
    within_reference(rq.cpu(), q.cpu(), pos.cpu(), cfg)
    within_reference(rk.cpu(), k.cpu(), pos.cpu(), cfg)
    iq = rt.inverse_rotary(rq, pos, cfg, impl="triton")
    eq = rt.inverse_rotary(rq, pos, cfg, impl="eager")
    # Both implement the same float32 formulas; they may differ by the trig/FMA roundings:
    # 2 * (8 eps32 + eps_d) * scale * max|x| (the conformance bound without the phase term).
    bound = 2 * (8 * 1.2e-7 + torch.finfo(dtype).eps) * float(rq.float().abs().max()) * 2
    assert float((iq.float() - eq.float()).abs().max()) <= bound


@CUDA
def test_kernel_in_place_on_packed_qkv_and_backward():
    cfg = CFGS["resonance_yarn"]
    b, s, hq, hk, d = 2, 33, 8, 2, cfg.head_dim
    qkv = torch.randn(b, s, (hq + 2 * hk) * d, device="cuda", dtype=torch.bfloat16)
    q = qkv[..., : hq * d].view(b, s, hq, d)
    k = qkv[..., hq * d : (hq + hk) * d].view(b, s, hk, d)
    pos = torch.arange(s, device="cuda")[:, None]
    want_q, want_k = rt.apply_rotary_qk(q, k, pos, cfg, impl="eager")
    v = qkv[..., (hq + hk) * d :].clone()
    rt.RotaryEmbedding(cfg, inplace=True, impl="triton")(q, k, pos)
    eps = torch.finfo(torch.bfloat16).eps
    assert float((q.float() - want_q.float()).abs().max()) <= 2 * eps * float(want_q.float().abs().max())
    assert torch.equal(qkv[..., (hq + hk) * d :], v)

    x = torch.randn(2, 8, 16, d, device="cuda", requires_grad=True)
    w = torch.randn(2, 8, 16, d, device="cuda")
    p = torch.arange(16, device="cuda") + 2**31 - 100
    (rt.apply_rotary(x, p, cfg, impl="triton") * w).sum().backward()
    a = rr.attention_factor(cfg)
    want = a * a * rt.inverse_rotary(w, p, cfg, impl="eager")
    assert float((x.grad - want).abs().max()) <= 32 * 1.2e-7 * a * float(w.abs().max())


@CUDA
def test_kernel_under_torch_compile_fullgraph():
    cfg = CFGS["resonance_yarn"]
    emb = rt.RotaryEmbedding(cfg, impl="triton")
    torch._dynamo.reset()
    compiled = torch.compile(emb, fullgraph=True)
    q = torch.randn(1, 8, 64, 128, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(1, 2, 64, 128, device="cuda", dtype=torch.bfloat16)
    pos = torch.arange(64, device="cuda")
    # Inductor compiles the same Triton source with its own options (FMA contraction), so the float32
    # results may differ in the last bits and flip a bf16 rounding: measured 1 bf16 ulp on an H200.
    # Bound: each side is within (8 eps32 + eps_bf16) * scale * |x| of the exact rotation.
    eps = 8 * torch.finfo(torch.float32).eps + torch.finfo(torch.bfloat16).eps
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outs = compiled(q, k, pos)
    # Dynamo warns when it traces through an lru_cache; the launch path must not hand it one.
    assert not [str(w.message) for w in caught if "lru_cache" in str(w.message)]
    for got, want, x in zip(outs, emb(q, k, pos), (q, k), strict=True):
        bound = 2 * eps * rr.attention_factor(cfg) * float(x.float().abs().max())
        assert float((got.float() - want.float()).abs().max()) <= bound


@CUDA
def test_cuda_phase_error_at_huge_positions():
    """Issue target: cos/sin error <= 2e-6 up to 2**31-1 for resonance configs (float32 I/O)."""
    cfg = CFGS["resonance_yarn"]
    pos = torch.tensor([2**20, 2**24, 2**31 - 1], device="cuda")
    first, second = rr.pair_slices(cfg)
    x = torch.zeros(1, 1, 3, 128, device="cuda")
    x[..., first] = 1.0  # R(phi) maps it to (cos phi_i, sin phi_i) on each pair
    out = rt.apply_rotary(x, pos, cfg, impl="triton")[0, 0].double().cpu().numpy() / rr.attention_factor(cfg)
    c, s = rr.cos_sin(cfg, pos.cpu().numpy())
    err = max(np.abs(out[:, first] - c).max(), np.abs(out[:, second] - s).max())
    assert err <= 2e-6, err


@CUDA
def test_repeat_calls_take_the_fast_path_and_launch_the_same_kernel(monkeypatch):
    """A repeat call skips validation/planning (fused._RECIPES) and Triton's launcher
    (triton_kernel._COMPILED); it must give bitwise the results of the full path."""
    from rrope_torch import fused, triton_kernel

    cfg = CFGS["resonance_yarn"]
    q = torch.randn(2, 8, 33, 128, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(2, 2, 33, 128, device="cuda", dtype=torch.bfloat16)
    pos = torch.arange(33, device="cuda")
    fused._RECIPES.clear()
    triton_kernel._COMPILED.clear()
    first = rt.apply_rotary_qk(q, k, pos, cfg)
    assert len(fused._RECIPES) == 1 and len(triton_kernel._COMPILED) == 1
    calls = []
    monkeypatch.setattr(rt.rotation, "prepare", lambda *a, **kw: calls.append(a) or pytest.fail("not fast"))
    repeat = rt.apply_rotary_qk(q, k, pos, cfg)
    far = rt.apply_rotary_qk(q, k, pos + 2**31 - 100, cfg)  # new values, same metadata: fast path
    monkeypatch.undo()
    monkeypatch.setattr(triton_kernel, "DIRECT_LAUNCH", False)
    fused._RECIPES.clear()
    plain = rt.apply_rotary_qk(q, k, pos, cfg)
    for a, b, c in zip(first, repeat, plain, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)
    within_reference(far[0].cpu(), q.cpu(), (pos + 2**31 - 100).cpu(), cfg)
    # Same shapes but bad metadata is a new key, so it is validated and refused as before.
    with pytest.raises(rr.RopeInputError, match="^positions"):
        rt.apply_rotary_qk(q, k, pos.float(), cfg)
    # Through the fast path with autograd: backward is still the inverse rotation.
    x = torch.randn(2, 8, 33, 128, device="cuda", requires_grad=True)
    w = torch.randn_like(x)
    for _ in range(2):  # the second call is the fast one
        x.grad = None
        (rt.apply_rotary(x, pos, cfg) * w).sum().backward()
    a = rr.attention_factor(cfg)
    want = a * a * rt.inverse_rotary(w, pos, cfg, impl="eager")
    assert float((x.grad - want).abs().max()) <= 32 * 1.2e-7 * a * float(w.abs().max())
