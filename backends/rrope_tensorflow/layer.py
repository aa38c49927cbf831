"""``RotaryEmbedding``: a Keras 3 layer rotating queries and keys (serialized through ``RopeConfig.to_dict``)."""

from __future__ import annotations

import keras

import rrope_core as rr
from rrope_core.inputs import check_cfg

from .rotation import apply_rotary

__all__ = ["RotaryEmbedding"]


@keras.saving.register_keras_serializable(package="rrope")
class RotaryEmbedding(keras.layers.Layer):
    """``RotaryEmbedding(cfg)(q, k, positions)`` -> ``(apply_rotary(q), apply_rotary(k))``.

    ``q`` and ``k`` may have different head counts. No weights. Inputs keep their dtype
    (``autocast`` is off: a float16/bfloat16 tensor is rotated as such, not cast to float32).
    Needs Keras on its TensorFlow backend (the default).
    """

    def __init__(self, cfg: rr.RopeConfig, **kwargs):
        self.cfg = check_cfg(cfg)
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)

    def call(self, q, k, positions, seq_len: int | None = None):
        return apply_rotary(q, positions, self.cfg, seq_len), apply_rotary(k, positions, self.cfg, seq_len)

    def get_config(self) -> dict:
        return {**super().get_config(), "cfg": self.cfg.to_dict()}

    @classmethod
    def from_config(cls, config: dict) -> RotaryEmbedding:
        config = dict(config)
        return cls(rr.RopeConfig.from_dict(config.pop("cfg")), **config)
