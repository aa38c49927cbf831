"""rrope_torch beyond the conformance suite: gradcheck, torch.compile, nn.Module, strided views, CUDA."""

import math
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the PyTorch backend needs torch")
rt = pytest.importorskip("rrope_torch", reason="rrope_torch is not installed")

import rrope_core as rr  # noqa: E402
from rrope_conformance.harness import assert_centred_phases  # noqa: E402
from rrope_conformance.tolerance import rotation_tolerance  # noqa: E402

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CFGS = [
    rr.RopeConfig(head_dim=64, scaling=rr.YaRN(8.0, 256), resonance=True),
    rr.RopeConfig(head_dim=64, rotary_dim=32, scaling=rr.Llama3(8.0, 256), layout="interleaved"),
    rr.RopeConfig(head_dim=32, scaling=rr.LongRoPE([1.0] * 16, [4.0] * 16, 64, factor=8.0)),
]
IDS = ["resonance_yarn", "llama3_partial_interleaved", "longrope"]


def within_reference(out: torch.Tensor, x: torch.Tensor, pos: torch.Tensor, cfg, seq_len=None):
    """|out - reference| <= the conformance suite's derived bound (conformance/tolerance.py)."""
    x64 = rt.to_numpy(x).astype(np.float64)
    p = rt.to_numpy(pos)
    want = rr.rotation.apply_rotary(x64, p, cfg, seq_len)
    eff = rr.rotation.resolve_seq_len(cfg, seq_len, int(p.max()))
    dtype = str(x.dtype).removeprefix("torch.")
    tol = rotation_tolerance(cfg, x64, want, p, eff, dtype, rr.attention_factor(cfg, eff))
    err = np.abs(rt.to_numpy(out).astype(np.float64) - want)
    assert np.all(err <= tol), f"max excess {(err - tol).max():.3g} for {cfg!r}"


@pytest.mark.parametrize("cfg", CFGS, ids=IDS)
def test_gradcheck_float64(cfg):
    x = torch.randn(2, 3, 5, cfg.head_dim, dtype=torch.float64, requires_grad=True)
    pos = torch.arange(5) + 1000
    assert torch.autograd.gradcheck(lambda t: rt.apply_rotary(t, pos, cfg, seq_len=2048), (x,))
    assert torch.autograd.gradcheck(lambda t: rt.inverse_rotary(t, pos, cfg, seq_len=2048), (x,))


@pytest.mark.parametrize("cfg", CFGS, ids=IDS)
def test_torch_compile_fullgraph_equal_results(cfg):
    def f(q, k, pos):
        return rt.apply_rotary(q, pos, cfg, seq_len=4096), rt.inverse_rotary(k, pos, cfg, seq_len=4096)

    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True)  # raises on any graph break
    q, k = torch.randn(2, 4, 16, cfg.head_dim), torch.randn(2, 2, 16, cfg.head_dim)
    pos = torch.arange(16) + 2**31 - 100
    cq, ck = compiled(q, k, pos)
    eq, ek = f(q, k, pos)
    # Inductor may fuse and reorder float32 operations: both must meet the reference's derived
    # bound; eager and compiled then differ by at most twice that bound.
    within_reference(cq, q, pos, cfg, 4096)
    within_reference(eq, q, pos, cfg, 4096)
    assert torch.allclose(ck, ek, rtol=0, atol=4 * 8 * torch.finfo(torch.float32).eps * float(k.abs().max()))


def test_torch_compile_module_with_backward():
    cfg = CFGS[0]
    emb = rt.RotaryEmbedding(cfg)
    torch._dynamo.reset()
    compiled = torch.compile(emb, fullgraph=True)
    q = torch.randn(1, 8, 4, 64, requires_grad=True)
    k = torch.randn(1, 2, 4, 64)
    rq, rk = compiled(q, k, torch.arange(4))
    (rq * 2).sum().backward()
    a = rr.attention_factor(cfg)
    want = a * a * rr.rotation.inverse_rotary(np.full(q.shape, 2.0), np.arange(4), cfg)
    np.testing.assert_allclose(q.grad.numpy(), want, rtol=0, atol=16 * a * 2 * 2 * float(np.finfo(np.float32).eps))


def test_module_gqa_and_packed_qkv_views_without_copies():
    cfg = CFGS[1]
    b, t, hq, hk, d = 2, 6, 8, 2, cfg.head_dim
    qkv = torch.randn(b, t, (hq + 2 * hk) * d)  # a packed projection
    q = qkv[..., : hq * d].view(b, t, hq, d)  # (B,T,H,D) strided views into qkv
    k = qkv[..., hq * d : (hq + hk) * d].view(b, t, hk, d)
    assert not q.is_contiguous()
    pos = torch.arange(t)[:, None]  # (T,1) for (B,T,H,D)
    rq, rk = rt.RotaryEmbedding(cfg)(q, k, pos)
    torch.testing.assert_close(rq, rt.apply_rotary(q.contiguous(), pos, cfg), rtol=0, atol=0)
    torch.testing.assert_close(rk, rt.apply_rotary(k.contiguous(), pos, cfg), rtol=0, atol=0)

    from torch.utils._python_dispatch import TorchDispatchMode

    class Ops(TorchDispatchMode):
        seen: list = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.seen.append(str(func))
            return func(*args, **(kwargs or {}))

    with Ops() as ops:
        rt.RotaryEmbedding(cfg)(q, k, pos)
    assert not [op for op in ops.seen if "clone" in op or "contiguous" in op], ops.seen

    v_before = qkv[..., (hq + hk) * d :].clone()
    out_q, out_k = rt.RotaryEmbedding(cfg, inplace=True)(q, k, pos)
    assert out_q.data_ptr() == q.data_ptr() and out_k.data_ptr() == k.data_ptr()
    torch.testing.assert_close(qkv[..., : hq * d].view(b, t, hq, d), rq, rtol=0, atol=0)
    torch.testing.assert_close(qkv[..., hq * d : (hq + hk) * d].view(b, t, hk, d), rk, rtol=0, atol=0)
    torch.testing.assert_close(qkv[..., (hq + hk) * d :], v_before, rtol=0, atol=0)


def test_module_refuses_an_unknown_impl_when_built():
    with pytest.raises(rr.RopeInputError, match=r"^impl='cuda' is invalid: must be None or one of"):
        rt.RotaryEmbedding(CFGS[0], impl="cuda")


def test_inplace_autograd_is_the_inverse_rotation():
    cfg = CFGS[0]
    x = torch.randn(3, 64, requires_grad=True)
    y = x.clone()
    rt.apply_rotary_(y, torch.arange(3), cfg)
    w = torch.randn(3, 64)
    (y * w).sum().backward()
    a = rr.attention_factor(cfg)
    want = a * a * rt.inverse_rotary(w, torch.arange(3), cfg)
    torch.testing.assert_close(x.grad, want, rtol=0, atol=16 * a * float(w.abs().max()) * 1.2e-7)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_exact_phase_at_huge_positions(dtype):
    cfg = rr.RopeConfig(head_dim=128, scaling=rr.YaRN(32.0, 4096), resonance=True)
    pos = torch.tensor([2**31 - 1, 2**40, 2**62 + 12345])
    c, s = rt.cos_sin(cfg, pos)
    wc, ws = rr.cos_sin(cfg, pos.numpy())
    # Integer reduction then float32 angle (<= 2*pi*eps32) and trig (<= 2 eps32): <= (2*pi + 2) eps32.
    bound = (2 * np.pi + 2) * float(np.finfo(np.float32).eps)
    assert np.abs(c.double().numpy() - wc).max() <= bound and np.abs(s.double().numpy() - ws).max() <= bound
    x = torch.randn(3, 128).to(dtype)
    within_reference(rt.apply_rotary(x, pos, cfg), x, pos, cfg)


BAD = {
    "float positions": ("positions.dtype", lambda: (torch.zeros(3, 8), torch.arange(3.0))),
    "bool positions": ("positions.dtype", lambda: (torch.zeros(3, 8), torch.ones(3, dtype=torch.bool))),
    "positions on another device": ("positions.device", lambda: (torch.zeros(3, 8), torch.arange(3, device="meta"))),
    "not broadcastable": ("positions.shape", lambda: (torch.zeros(3, 8), torch.arange(4))),
    "wrong head_dim": ("x.shape", lambda: (torch.zeros(3, 6), torch.arange(3))),
    "integer x": ("x.dtype", lambda: (torch.zeros(3, 8, dtype=torch.int32), torch.arange(3))),
    "x not a tensor": ("x", lambda: (np.zeros((3, 8)), torch.arange(3))),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_a_clear_error(case):
    field, make = BAD[case]
    x, pos = make()
    with pytest.raises(rr.RopeInputError, match=f"^{field}="):
        rt.apply_rotary(x, pos, rr.RopeConfig(head_dim=8))


def test_import_hygiene():
    code = "import rrope_torch, sys; bad = {'tensorflow', 'mlx'} & set(sys.modules); assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True)


@CUDA
@pytest.mark.parametrize("cfg", CFGS, ids=IDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_matches_reference_and_cpu(cfg, dtype):
    x = torch.randn(2, 8, 64, cfg.head_dim).to(dtype)
    pos = torch.arange(64) + 2**31 - 100
    out = rt.apply_rotary(x.cuda(), pos.cuda(), cfg, seq_len=4096)
    assert out.device.type == "cuda" and out.dtype == dtype
    within_reference(out.cpu(), x, pos, cfg, 4096)


def test_rrope_torch_impl_is_read_and_validated_at_each_call(monkeypatch):
    """``RROPE_TORCH_IMPL`` (auto | triton | eager) is read at each call; another value is a
    RopeInputError naming the variable and the value. Kills fused.x_default_impl__mutmut_7 (the
    variable never read), _14, _16 (the error's class or value lost)."""
    cfg, x, pos = rr.RopeConfig(head_dim=8), torch.ones(1, 2, 3, 8), torch.arange(3)
    monkeypatch.setenv("RROPE_TORCH_IMPL", "fastest")
    with pytest.raises(rr.RopeInputError, match=r"^RROPE_TORCH_IMPL='fastest' is invalid: must be one of"):
        rt.apply_rotary(x, pos, cfg)
    monkeypatch.setenv("RROPE_TORCH_IMPL", "eager")
    assert torch.equal(rt.apply_rotary(x, pos, cfg), rt.apply_rotary(x, pos, cfg, impl="eager"))
    # The impl argument and a non-tensor x are refused the same way (rotation.x__plan__mutmut_8,
    # x_prepare__mutmut_5: the rule or the value dropped from the message).
    with pytest.raises(rr.RopeInputError, match=r"^impl='fastest' is invalid: must be one of"):
        rt.apply_rotary(x, pos, cfg, impl="fastest")
    with pytest.raises(rr.RopeInputError, match=r"^x='list' is invalid: must be a torch\.Tensor"):
        rt.apply_rotary([[0.0] * 8], pos[:1], cfg)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_apply_rotary_qk_refuses_negative_positions_when_checked(device):
    """Checked mode covers apply_rotary_qk too. On CUDA its single fused launch checks for both
    (rotation.x_apply_rotary_qk__mutmut_35, which checks nothing there, dies only on CUDA); on the
    CPU each tensor's own rotation checks."""
    cfg = rr.RopeConfig(head_dim=8)
    q, k = torch.ones(1, 4, 3, 8, device=device), torch.ones(1, 2, 3, 8, device=device)
    with rr.checked_positions(), pytest.raises(rr.RopeInputError, match=r"positions.*<min -1>.*>= 0"):
        rt.apply_rotary_qk(q, k, torch.tensor([0, -1, 2], device=device), cfg)


def test_device_constants_live_on_the_device_asked_and_match_under_compile(monkeypatch):
    """rrope_torch.constants: the tables are on ``device`` (a ``meta`` device shows it without a
    GPU) and the branch taken while torch.compile traces gives the eager tables. Kills, in
    ``nox -s "mutation_backend(backend='torch')"`` (which cannot run torch.compile itself),
    x__tensors__mutmut_7, _11, _14, _17, _20 and x_device_constants__mutmut_27 (tables left on the
    CPU) and x_device_constants__mutmut_6, _8, _12, _14 (the traced branch broken)."""
    from rrope_torch.constants import device_constants

    for cfg in (rr.RopeConfig(head_dim=16, resonance=True), rr.RopeConfig(head_dim=16)):
        eager = device_constants(cfg, None, torch.device("cpu"), torch.float32)
        on_meta = device_constants(cfg, None, torch.device("meta"), torch.float32)
        assert [t.device.type for t in on_meta[:3] if t is not None] == ["meta"] * (2 if cfg.resonance else 1)
        with monkeypatch.context() as m:
            m.setattr(torch.compiler, "is_compiling", lambda: True)
            traced = device_constants(cfg, None, torch.device("cpu"), torch.float32)
            traced_meta = device_constants(cfg, None, torch.device("meta"), torch.float32)  # kills _10
        assert {t.device.type for t in traced_meta[:3] if t is not None} == {"meta"}
        assert len(traced) == 4 and traced[3] == eager[3], cfg
        for t, e in zip(traced[:3], eager[:3], strict=True):
            assert (t is None) == (e is None) and (t is None or (t.dtype == e.dtype and torch.equal(t, e))), cfg


def test_phases_are_centred_like_the_reference():
    """Mutation testing (nox -s "mutation_backend(backend='torch')"): the re-centring of
    rrope_torch.phases, which cos/sin alone cannot see. Kills x_phases__mutmut_28, _30 (resonance
    residues centred to another range), _51, _62, _63, _64, _65 (the non-resonance re-centring),
    _5, _66 (angles not in the compute dtype, as the docstring says they are).
    Angles must lie in [-pi, pi], ``m = L/2`` is +pi (the reference's ``(-L/2, L/2]``), and at
    negative positions they equal the reference's within 2*pi*eps32 + pi*eps32 (float64 angle
    within ~1e-12, one float32 rounding of |angle| <= pi, the reference's own rounding)."""
    from rrope_torch.phases import phases

    def angles(cfg, pos):
        ang, _ = phases(torch.tensor(pos), cfg, None, torch.float32)
        assert ang.dtype == torch.float32, cfg
        return ang.numpy()

    eps32 = float(np.finfo(np.float32).eps)
    pos = np.array([-(10**6) - 7, -12345, -3, -1, 0, 2, 777, 10**6 + 3])
    assert_centred_phases(angles, pos, lambda cfg, p: 3 * math.pi * eps32, eps32)


def test_the_traced_branch_of_the_rotation_gives_the_eager_result(monkeypatch):
    """The branch ``_rotary`` takes while torch.compile traces (plain ops instead of the autograd
    Function) computes the eager result, bit for bit, with the attention factor (a YaRN config) and
    for the inverse. Called with ``is_compiling`` patched, so that ``nox -s
    "mutation_backend(backend='torch')"`` (which cannot run torch.compile) sees it: kills
    rotation.x__rotary__mutmut_119 (the factor passed as None)."""
    cfg = rr.RopeConfig(head_dim=16, rotary_dim=12, scaling=rr.YaRN(4.0, 64))
    assert rr.attention_factor(cfg) != 1.0
    x = torch.randn(2, 3, 5, 16, generator=torch.Generator().manual_seed(0))
    pos = torch.arange(5) + 100
    eager = [rt.apply_rotary(x, pos, cfg, impl="eager"), rt.inverse_rotary(x, pos, cfg, impl="eager")]
    with monkeypatch.context() as m:
        m.setattr(torch.compiler, "is_compiling", lambda: True)
        traced = [rt.apply_rotary(x, pos, cfg, impl="eager"), rt.inverse_rotary(x, pos, cfg, impl="eager")]
    for t, e in zip(traced, eager, strict=True):
        assert torch.equal(t, e)


def test_phases_are_computed_on_the_positions_device():
    """rrope_torch.phases asks for its tables on the positions' device: on a ``meta`` device (no GPU
    needed) the angles are ``meta`` tensors of the right shape and dtype. Kills phases.x_phases__mutmut_4
    (the tables made on the default device: on CUDA positions a device mismatch)."""
    from rrope_torch.phases import phases

    for cfg in (rr.RopeConfig(head_dim=16, resonance=True), rr.RopeConfig(head_dim=16)):
        ang, _ = phases(torch.arange(4, device="meta"), cfg, None, torch.float32)
        assert (ang.device.type, tuple(ang.shape), ang.dtype) == ("meta", (4, 8), torch.float32), cfg
