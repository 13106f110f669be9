"""``python -m bench.http_site`` runs (once, in the normal test run): both servers answer the
same ``info`` requests over keep-alive HTTPS and their CPU clocks are read. Figures are in
docs/performance.md; no figure is asserted."""

from __future__ import annotations

import pytest

from bench import http_site

pytestmark = pytest.mark.integration


def test_both_servers_answer_and_are_measured() -> None:
    doc = http_site.measure(rounds=1, duration=0.5, connections=2)
    for kind in http_site.SERVERS:
        (one,) = doc["rounds"][kind]
        assert one["requests"] > 0 and one["cpu_us_per_request"] > 0
    assert set(doc["ratio_http1_to_aiohttp"]) == {"requests_per_s", "cpu_us_per_request"}
