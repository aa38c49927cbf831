import os

from hypothesis import HealthCheck, Phase, settings

settings.register_profile(
    "ci", max_examples=60, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=30, deadline=None)
settings.register_profile("nightly", max_examples=2000, deadline=None)
# Mutation runs (noxfile.py, docs/mutation.md): the ci draws without shrinking the failure found.
settings.register_profile(
    "mutation", parent=settings.get_profile("ci"), phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
