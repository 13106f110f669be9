"""The services' own Prometheus metrics (session/service/metrics.py): what they render is read
back with prometheus_client's parser (a test-only import: the node does not load it), label
values with backslashes, quotes and newlines included, histograms' cumulative buckets, sum and
count; and the node's metrics (NodeMetrics) render every family it declares."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from session.node.metrics import NodeMetrics
from session.service import metrics as m


def parse(registry: m.Registry) -> dict[str, object]:
    """Families by name, from the registry's text."""
    return {f.name: f for f in text_string_to_metric_families(registry.render().decode())}


def samples(registry: m.Registry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(registry.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_counters_gauges_and_info_read_back() -> None:
    r = m.Registry()
    c = m.Counter("app_requests", "Requests answered", ["endpoint", "status"], registry=r)
    plain = m.Counter("app_refused", "Refused\nwith a \\ backslash", registry=r)
    g = m.Gauge("app_inflight", "In flight", registry=r)
    fn = m.Gauge("app_read_at_scrape", "Read from a function", registry=r)
    info = m.Info("app_list", "Digest of the list", registry=r)
    c.labels("rpc", 200).inc()
    c.labels("rpc", "200").inc(2)
    c.labels("onion", 400).inc()
    plain.inc()
    g.set(3)
    g.dec()
    fn.set_function(lambda: 7)
    info.info({"version": "abc"})
    families = parse(r)
    assert {name: f.type for name, f in families.items()} == {  # type: ignore[attr-defined]
        "app_requests": "counter",
        "app_refused": "counter",
        "app_inflight": "gauge",
        "app_read_at_scrape": "gauge",
        "app_list_info": "gauge",  # an info, as the 0.0.4 text format has no info type
    }
    assert families["app_refused"].documentation == "Refused\nwith a \\ backslash"  # type: ignore[attr-defined]
    got = samples(r)
    assert got == {
        ("app_requests_total", (("endpoint", "rpc"), ("status", "200"))): 3.0,
        ("app_requests_total", (("endpoint", "onion"), ("status", "400"))): 1.0,
        ("app_refused_total", ()): 1.0,
        ("app_inflight", ()): 2.0,
        ("app_read_at_scrape", ()): 7.0,
        ("app_list_info", (("version", "abc"),)): 1.0,
    }
    assert plain.value == 1.0 and g.value == 2.0


@settings(max_examples=200, deadline=None)
@given(value=st.text(max_size=30))
def test_any_label_value_reads_back_unchanged(value: str) -> None:
    r = m.Registry()
    m.Counter("app_hits", "Hits", ["where"], registry=r).labels(value).inc()
    m.Info("app_build", "Build", registry=r).info({"text": value})
    got = samples(r)
    assert got[("app_hits_total", (("where", value),))] == 1.0
    assert got[("app_build_info", (("text", value),))] == 1.0


def test_histogram_buckets_sum_and_count() -> None:
    r = m.Registry()
    h = m.Histogram("app_seconds", "Time taken", ["endpoint"], buckets=(0.1, 1, 5), registry=r)
    for v in (0.05, 0.1, 0.5, 2.0, 100.0, float("nan")):
        h.labels("rpc").observe(v)
    h.labels("onion").observe(0.2)
    (family,) = [f for f in text_string_to_metric_families(r.render().decode())]
    assert family.type == "histogram"
    rpc = {
        (s.name, s.labels.get("le")): s.value
        for s in family.samples
        if s.labels["endpoint"] == "rpc"
    }
    assert rpc[("app_seconds_bucket", "0.1")] == 2  # 0.05 and 0.1 (bounds are inclusive)
    assert rpc[("app_seconds_bucket", "1.0")] == 3
    assert rpc[("app_seconds_bucket", "5.0")] == 4
    assert rpc[("app_seconds_bucket", "+Inf")] == 6  # 100 and NaN
    assert rpc[("app_seconds_count", None)] == 6
    assert math.isnan(rpc[("app_seconds_sum", None)])
    onion = {
        (s.name, s.labels.get("le")): s.value
        for s in family.samples
        if s.labels["endpoint"] == "onion"
    }
    assert onion[("app_seconds_bucket", "0.1")] == 0 and onion[("app_seconds_bucket", "1.0")] == 1
    assert onion[("app_seconds_sum", None)] == pytest.approx(0.2)


def test_labels_of_an_info_and_a_counter_named_with_total() -> None:
    """An info's own labels come before its pairs; an info with neither has no braces; a
    counter named ``x_total`` is exposed as ``x_total`` (not ``x_total_total``)."""
    r = m.Registry()
    m.Counter("app_done_total", "Done", registry=r).inc()
    m.Info("app_build", "Build", ["part"], registry=r).labels("core").info({"v": "1", "w": "2"})
    m.Info("app_empty", "Nothing yet", registry=r)
    assert r.render().decode().splitlines() == [
        "# HELP app_done_total Done",
        "# TYPE app_done_total counter",
        "app_done_total 1.0",
        "# HELP app_build_info Build",
        "# TYPE app_build_info gauge",
        'app_build_info{part="core",v="1",w="2"} 1.0',
        "# HELP app_empty_info Nothing yet",
        "# TYPE app_empty_info gauge",
        "app_empty_info 1.0",
    ]
    assert set(samples(r)) == {
        ("app_done_total", ()),
        ("app_build_info", (("part", "core"), ("v", "1"), ("w", "2"))),
        ("app_empty_info", ()),
    }


def test_misuse_is_refused() -> None:
    r = m.Registry()
    c = m.Counter("app_x", "X", ["a"], registry=r)
    with pytest.raises(ValueError, match="already registered"):
        m.Gauge("app_x", "again", registry=r)
    with pytest.raises(ValueError, match="takes labels"):
        c.labels("1", "2")
    with pytest.raises(ValueError, match="has labels"):
        c.inc()
    with pytest.raises(ValueError, match="only goes up"):
        c.labels("1").inc(-1)
    with pytest.raises(ValueError, match="not a valid"):
        m.Counter("bad name", "X")
    with pytest.raises(ValueError, match="reserved"):
        m.Histogram("app_h", "H", ["le"])


def test_the_nodes_metrics_render_as_prometheus_text() -> None:
    nm = NodeMetrics()
    nm.requests.labels("storage_rpc", "200").inc()
    nm.latency.labels("storage_rpc").observe(0.003)
    nm.onion.labels("relay").inc()
    nm.handoff.labels("out").inc(5)
    nm.ready.set_function(lambda: 1.0)
    nm.node_list.info({"version": "v1"})
    nm.gauge_fn("session_node_resident_bytes", "Resident memory", lambda: 1234)
    got = samples(nm.registry)
    assert (
        got[("session_node_requests_total", (("endpoint", "storage_rpc"), ("status", "200")))] == 1
    )
    assert (
        got[("session_node_request_seconds_bucket", (("endpoint", "storage_rpc"), ("le", "0.005")))]
        == 1
    )
    assert (
        got[
            ("session_node_request_seconds_bucket", (("endpoint", "storage_rpc"), ("le", "0.0025")))
        ]
        == 0
    )
    assert got[("session_node_onion_layers_total", (("decision", "relay"),))] == 1
    assert got[("session_node_handoff_messages_total", (("direction", "out"),))] == 5
    assert got[("session_node_ready", ())] == 1
    assert got[("session_node_list_info", (("version", "v1"),))] == 1
    assert got[("session_node_resident_bytes", ())] == 1234
    # the lines the devnet and the integration tests look for, as prometheus_client wrote them
    text = nm.render()
    assert b"\nsession_node_ready 1.0\n" in text
    assert b'session_node_requests_total{endpoint="storage_rpc",status="200"} 1.0' in text
