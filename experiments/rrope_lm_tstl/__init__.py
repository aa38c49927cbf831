"""LM-level train-short-test-long: YaRN vs Resonance YaRN on a byte-level Llama (Wang et al. 2024,
arXiv 2403.00071, a scaled-down analogue of sec. 6.2).

``corpus`` reads and splits the Python standard library's sources into byte tokens (NumPy only),
``protocol`` holds the knobs, presets and each variant's rope, ``model`` builds transformers'
``LlamaForCausalLM`` with our registered rope types and exact phases, ``train`` and ``evaluate``
are the loops, ``runs`` turns them into one JSON record per run, ``report`` writes the
JSON/Markdown/PNG results, ``cli`` is ``rrope lm-tstl``. See docs/lm_tstl.md.
"""

from .protocol import GPU, METHODS, MODES, PRETRAIN, QUICK, Protocol

__all__ = ["Protocol", "GPU", "QUICK", "PRETRAIN", "METHODS", "MODES"]
