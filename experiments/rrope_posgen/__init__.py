"""PosGen: the train-short-test-long benchmark of Resonance RoPE (Wang et al. 2024, arXiv 2403.00071, sec. 5).

``data`` generates the three tasks (NumPy only), ``model`` is the small decoder whose only variable
part is the position encoding, ``train`` runs the protocol (train at length 64, evaluate at 256 with
teacher forcing), ``report`` writes the JSON/Markdown/PNG results, ``cli`` is ``rrope posgen``.
See docs/posgen.md.
"""

from .data import COMBINE, TASKS, far_start, generate, loss_mask

__all__ = ["TASKS", "COMBINE", "generate", "far_start", "loss_mask"]
