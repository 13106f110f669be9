"""Shared test setup: hypothesis profiles (pick one with HYPOTHESIS_PROFILE).

Vector helpers live in ``tests/vectorlib.py``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

from vectorlib import VECTORS, case_ids, load_vectors  # noqa: F401  (re-exported)

settings.register_profile(
    "default", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("fast", max_examples=5, deadline=None)
settings.register_profile(
    "slow", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
