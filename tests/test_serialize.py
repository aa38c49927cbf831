"""RopeConfig.to_dict / from_dict round-trip every config (used by framework layers' get_config)."""

import json

import pytest
from hypothesis import given

import rrope_core as rr
from rrope_conformance.strategies import configs


@given(configs())
def test_dict_round_trip_is_lossless_and_json_safe(cfg):
    data = json.loads(json.dumps(cfg.to_dict()))
    assert rr.RopeConfig.from_dict(data) == cfg


@pytest.mark.parametrize(
    "data, field",
    [
        ({"head_dim": 8, "colour": "red"}, "data"),
        ({"head_dim": 8, "scaling": {"type": "xpos"}}, "scaling"),
        ({"head_dim": 8, "scaling": {"type": "linear", "factr": 2.0}}, "scaling"),
        ({"head_dim": 8, "scaling": {"type": "linear", "factor": 0.5}}, "Linear.factor"),
        ("head_dim=8", "data"),
    ],
)
def test_bad_dicts_raise(data, field):
    with pytest.raises(rr.RopeConfigError, match=f"^{field}="):
        rr.RopeConfig.from_dict(data)
