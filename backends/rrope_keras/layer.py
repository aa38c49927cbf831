"""``RotaryEmbedding``: a Keras 3 layer for every Keras backend (serialized through ``RopeConfig.to_dict``)."""

from __future__ import annotations

import keras

import rrope_core as rr
from rrope_core.errors import RopeInputError, bad
from rrope_core.inputs import check_cfg, check_positions_dtype, check_positions_shape, check_x_dtype, check_x_shape

from .convert import DTYPES, MAX_POSITION, as_positions, meta
from .rotation import apply_rotary

__all__ = ["RotaryEmbedding"]

_ONE_TENSOR = "layer(x, positions=None, start_index=0)"


@keras.saving.register_keras_serializable(package="rrope", name="KerasRotaryEmbedding")
class RotaryEmbedding(keras.layers.Layer):
    """Rotary embedding of ``rrope_keras.apply_rotary`` as a layer without weights; two call forms:

    * ``layer(q, k, positions)`` -> ``(q_rot, k_rot)``: positions broadcast to each of
      ``q.shape[:-1]`` and ``k.shape[:-1]`` (head counts may differ), as ``apply_rotary``.
    * ``layer(x, positions=None, start_index=0)`` -> ``x_rot`` (keras-hub's ``RotaryEmbedding``
      call): positions ``arange(seq) + start_index`` along ``sequence_axis`` (default 1, for
      ``(batch, seq, heads, head_dim)``); given positions are ``(seq,)`` or ``(batch, seq)``.
      Features are the last axis. An int ``start_index`` is range-checked; a tensor one is not
      read (no device sync): ``start_index + seq`` must stay below 2**31.

    ``seq_len=`` is passed on (dynamic NTK / LongRoPE need it inside jit / tf.function).
    Inputs keep their dtype (``autocast`` is off) and are converted by rrope_keras, not by Keras,
    so positions beyond int32 raise instead of being narrowed. Registered for ``.keras`` files as
    ``rrope>KerasRotaryEmbedding`` (``rrope_tensorflow.RotaryEmbedding`` is ``rrope>RotaryEmbedding``).
    """

    def __init__(self, cfg: rr.RopeConfig, sequence_axis: int = 1, **kwargs):
        check_cfg(cfg)
        if isinstance(sequence_axis, bool) or not isinstance(sequence_axis, int):
            raise bad(
                "sequence_axis", sequence_axis, "must be an int (an axis of x other than the last)", RopeInputError
            )
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.cfg = cfg
        self.sequence_axis = sequence_axis
        # NumPy / Python arguments reach call() as they are (as Keras' own StringLookup does): Keras would
        # convert them first, and on JAX that narrows int64 positions to int32 silently, before our range check.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.built = True

    def _axis(self, x_shape: tuple) -> int:
        lead = len(x_shape) - 1
        axis = self.sequence_axis + (len(x_shape) if self.sequence_axis < 0 else 0)
        if not 0 <= axis < lead:
            raise bad(
                "sequence_axis",
                self.sequence_axis,
                f"must name an axis of x.shape[:-1]={tuple(x_shape[:-1])} (the last axis holds the features)",
                RopeInputError,
            )
        return axis

    def _check_start(self, start_index) -> None:
        if not (isinstance(start_index, int) and start_index == 0):
            raise bad("start_index", start_index, "must be 0 when positions are given", RopeInputError)

    def _placed(self, positions, x_shape: tuple, axis: int) -> tuple:
        """Where the one-tensor call's positions go: the shape they are reshaped to (1 = broadcast)."""
        shape, _, _, _ = meta(positions)
        lead = len(x_shape) - 1
        if len(shape) == 1:
            return shape + (1,) * (lead - 1 - axis)
        if len(shape) == 2 and axis > 0:
            return shape[:1] + (1,) * (axis - 1) + shape[1:] + (1,) * (lead - 1 - axis)
        raise bad(
            "positions.shape",
            shape,
            f"must be (seq,) or (batch, seq) in the one-tensor call {_ONE_TENSOR} with sequence_axis={self.sequence_axis}; "
            "layer(q, k, positions) takes positions broadcastable to q.shape[:-1]",
            RopeInputError,
        )

    def _sequence_positions(self, x, positions, start_index):
        """Int32 positions for ``x`` placed along ``sequence_axis`` (``arange(seq) + start_index`` by default)."""
        x_shape = meta(x)[0]
        axis = self._axis(x_shape)
        if positions is None:
            seq = x_shape[axis]
            if keras.ops.is_tensor(start_index):  # not read (no device sync): start + seq must stay < 2**31
                shape, _, _, integer = meta(start_index)
                if not integer or shape != ():
                    raise bad("start_index", start_index, "must be an int or an integer scalar tensor", RopeInputError)
                start = as_positions(start_index)
            elif isinstance(start_index, int) and not isinstance(start_index, bool):
                start = start_index
                if seq is not None and not -MAX_POSITION <= start <= MAX_POSITION - seq:
                    raise bad(
                        "start_index",
                        start_index,
                        f"puts positions outside int32: must lie in [-2**31, 2**31 - {seq}]",
                        RopeInputError,
                    )
            else:
                raise bad("start_index", start_index, "must be an int or an integer scalar tensor", RopeInputError)
            positions = keras.ops.add(keras.ops.arange(keras.ops.shape(x)[axis], dtype="int32"), start)
        else:
            self._check_start(start_index)
            _, pd, _, pi = meta(positions)
            check_positions_dtype(pd, pi)
        self._placed(positions, x_shape, axis)  # (seq,) or (batch, seq)
        p = as_positions(positions)  # int32 before any Keras op narrows it
        rank = len(meta(p)[0])
        if rank == 2:
            for _ in range(axis - 1):
                p = keras.ops.expand_dims(p, 1)
        for _ in range(len(x_shape) - 2 - axis):
            p = keras.ops.expand_dims(p, -1)
        return p

    def call(self, inputs, k=None, positions=None, start_index=0, seq_len: int | None = None):
        cfg = self.cfg
        if k is not None:
            if positions is None:
                raise bad(
                    "positions",
                    None,
                    f"must be given with k: layer(q, k, positions); one tensor: {_ONE_TENSOR}",
                    RopeInputError,
                )
            self._check_start(start_index)
            return apply_rotary(inputs, positions, cfg, seq_len), apply_rotary(k, positions, cfg, seq_len)
        return apply_rotary(inputs, self._sequence_positions(inputs, positions, start_index), cfg, seq_len)

    def _spec(self, x, name: str, positions_shape) -> keras.KerasTensor:
        shape, dtype, floating, _ = meta(x)
        check_x_dtype(dtype, floating, name)
        check_x_shape(shape, self.cfg, name)
        if dtype not in DTYPES:
            raise bad(f"{name}.dtype", dtype, f"must be one of {DTYPES}", RopeInputError)
        if positions_shape is not None:
            check_positions_shape(positions_shape, shape, name)
        return keras.KerasTensor(shape, dtype=dtype)

    def compute_output_spec(self, inputs, k=None, positions=None, start_index=0, seq_len=None):
        """KerasTensors of the inputs' shapes and dtypes (functional models), after the metadata checks."""
        if positions is not None:
            _, pd, _, pi = meta(positions)
            check_positions_dtype(pd, pi)
        if k is not None:
            if positions is None:
                raise bad(
                    "positions",
                    None,
                    f"must be given with k: layer(q, k, positions); one tensor: {_ONE_TENSOR}",
                    RopeInputError,
                )
            ps = meta(positions)[0]
            return self._spec(inputs, "x", ps), self._spec(k, "k", ps)
        axis = self._axis(meta(inputs)[0])
        placed = None if positions is None else self._placed(positions, meta(inputs)[0], axis)
        return self._spec(inputs, "x", placed)

    def compute_output_shape(self, input_shape, k_shape=None):
        """``input_shape`` (or ``(q_shape, k_shape)`` for the q/k call): the rotation keeps shapes."""
        for shape, name in ((input_shape, "x"), (k_shape, "k")):
            if shape is not None:
                check_x_shape(tuple(shape), self.cfg, name)
        return tuple(input_shape) if k_shape is None else (tuple(input_shape), tuple(k_shape))

    def get_config(self) -> dict:
        return {**super().get_config(), "cfg": self.cfg.to_dict(), "sequence_axis": self.sequence_axis}

    @classmethod
    def from_config(cls, config: dict) -> RotaryEmbedding:
        config = dict(config)
        return cls(rr.RopeConfig.from_dict(config.pop("cfg")), **config)
