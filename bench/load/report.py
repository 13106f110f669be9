"""Results of a load run: the JSON document (schema ``session-load/1``), its validation, the
PNG plots and ``--compare``.

The document::

    {"schema": "session-load/1", "scenario", "command", "started", "machine": {...},
     "network": {"nodes", "own_devnet"}, "options": {...}, "floors": {...},
     "steps": [STEP, ...], "extra": {...}, "files": {"json", "plots": [...], "profiles": [...]}}

A STEP: ``name``, ``mode`` (``rate``/``closed``/``burst``/``backlog``, and ``store-scale``
and ``community`` for those scenarios' one step), ``offered_per_s`` (null unless open loop),
``duration_s``, ``wall_s``, ``sent``, ``acked``, ``delivered`` (fanout: member copies),
``lost`` (acknowledged by the swarm, never received), ``errors`` (kind → count),
``error_examples`` (kind → the first message), ``delivered_per_s`` (over the step's sending
window — ``--duration``, or the time a ``--count`` took — or up to the last delivery if that
came later), ``latency_ms`` and ``store_latency_ms`` (``count``, ``p50``, ``p90``, ``p99``,
``max``, ``mean``), ``cpu`` (``nodes_s``, ``workers_s``, ``driver_s``, ``per_delivered_ms``,
``per_layer_us``, ``idle_s`` (the nodes' idle CPU over the step, measured before the first
step), ``net_per_delivered_ms`` and ``net_per_layer_us`` (idle subtracted), ``layers``,
``layers_source`` (the nodes' counters, or the clients' onion requests × 4), and in message
steps ``onion_requests``, ``client_share``, ``driver_cores``, ``total_cores``,
``client_per_delivered_ms``, ``threads`` and ``worker_threads`` (per delivered message, by
thread: see ``cli.thread_figures``)), ``ratios`` (to the floors), ``nodes`` (per node:
``name``, ``cpu_s``, ``rss_mb``, ``db_mb``, ``layers``), ``timeline`` (per second: ``t``,
``sent``, ``delivered``, ``p50_ms``, ``p99_ms``, ``errors``), ``events`` (``t``, ``what``:
kills, restarts, joins), in message steps ``work_per_delivered`` (node counters' growth per
delivered message) and ``client_work_per_delivered`` (``onion_requests``, ``polls``,
``empty_polls``), and ``extra`` (figures of one scenario: the backlog's ``fill_s``,
``drain_s``; the community's figures, its ``latency_ms`` being the polls').
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

SCHEMA = "session-load/1"
#: Latencies are recorded in microseconds, 1 µs .. 10 min, 3 significant digits.
HIST_MAX_US = 600_000_000


def new_histogram() -> HdrHistogram:
    return HdrHistogram(1, HIST_MAX_US, 3)


def record(h: HdrHistogram, seconds: float) -> None:
    h.record_value(min(HIST_MAX_US, max(1, int(seconds * 1e6))))


def summary(h: HdrHistogram) -> dict[str, float | int]:
    """count, p50/p90/p99/max and mean of a histogram, in milliseconds."""
    n = h.get_total_count()
    if n == 0:
        return {"count": 0, "p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0, "mean": 0.0}
    return {
        "count": n,
        "p50": h.get_value_at_percentile(50) / 1000,
        "p90": h.get_value_at_percentile(90) / 1000,
        "p99": h.get_value_at_percentile(99) / 1000,
        "max": h.get_max_value() / 1000,
        "mean": round(h.get_mean_value() / 1000, 3),
    }


def live_percentiles(h: HdrHistogram) -> dict[str, float]:
    """p50 and p99 so far, in milliseconds, in one walk of the histogram (the live display;
    ``summary`` walks it once per figure and once more for the mean)."""
    if h.get_total_count() == 0:
        return {"p50": 0.0, "p99": 0.0}
    at = h.get_percentile_to_value_dict([50, 99])
    return {"p50": at[50] / 1000, "p99": at[99] / 1000}


# ---------------------------------------------------------------------- schema

_TOP: dict[str, Any] = {
    "schema": str,
    "scenario": str,
    "command": list,
    "started": str,
    "machine": dict,
    "network": dict,
    "options": dict,
    "floors": dict,
    "steps": list,
    "extra": dict,
    "files": dict,
}
_STEP: dict[str, Any] = {
    "name": str,
    "mode": str,
    "duration_s": (int, float),
    "wall_s": (int, float),
    "sent": int,
    "acked": int,
    "delivered": int,
    "lost": int,
    "errors": dict,
    "delivered_per_s": (int, float),
    "latency_ms": dict,
    "store_latency_ms": dict,
    "cpu": dict,
    "ratios": dict,
    "nodes": list,
    "timeline": list,
    "events": list,
}
_LAT = ("count", "p50", "p90", "p99", "max", "mean")
_CPU = (
    "nodes_s",
    "workers_s",
    "driver_s",
    "per_delivered_ms",
    "per_layer_us",
    "net_per_delivered_ms",
    "net_per_layer_us",
    "layers",
)
_FLOORS = ("peel_us", "seal_us", "sign_us", "open_us", "https_rtt_us", "sqlite_insert_us")


def validate(doc: Any) -> list[str]:
    """What is wrong with a results document (empty: it follows the schema)."""
    bad: list[str] = []

    def need(obj: Any, key: str, typ: Any, where: str) -> None:
        if not isinstance(obj, dict) or key not in obj:
            bad.append(f"{where}: missing {key!r}")
        elif not isinstance(obj[key], typ) or isinstance(obj[key], bool):
            bad.append(f"{where}.{key}: {type(obj[key]).__name__}, wanted {typ}")

    if not isinstance(doc, dict):
        return ["the document is not a JSON object"]
    for k, t in _TOP.items():
        need(doc, k, t, "top")
    if doc.get("schema") != SCHEMA:
        bad.append(f"schema is {doc.get('schema')!r}, wanted {SCHEMA!r}")
    for k in _FLOORS:
        need(doc.get("floors"), k, (int, float), "floors")
    for i, s in enumerate(doc.get("steps") or []):
        where = f"steps[{i}]"
        for k, typ in _STEP.items():
            need(s, k, typ, where)
        if "offered_per_s" not in s:
            bad.append(f"{where}: missing 'offered_per_s'")
        for k in _LAT:
            need(s.get("latency_ms"), k, (int, float), where + ".latency_ms")
        for k in _CPU:
            need(s.get("cpu"), k, (int, float), where + ".cpu")
        for n in s.get("nodes") or []:
            for k in ("cpu_s", "rss_mb", "db_mb"):
                need(n, k, (int, float), where + ".nodes[]")
    if not doc.get("steps"):
        bad.append("no steps")
    return bad


# ---------------------------------------------------------------------- plots


def plot(doc: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write the PNG plots of a run; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files: list[Path] = []
    steps = doc["steps"]
    title = f"bench.load {doc['scenario']} — {doc['network']['nodes']} nodes"

    # 1. latency percentiles and throughput against offered load: open-loop steps as lines,
    # closed-loop (saturation) steps as stars at the rate they achieved
    opened = sorted((s for s in steps if s["offered_per_s"] is not None),
                    key=lambda s: s["offered_per_s"])  # fmt: skip
    closed = [s for s in steps if s["offered_per_s"] is None]
    xs = [s["offered_per_s"] for s in opened]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, style in (("p50", "o-"), ("p90", "s-"), ("p99", "^-"), ("max", "x:")):
        (line,) = ax1.plot(xs, [s["latency_ms"][key] for s in opened], style, label=key)
        ax1.plot([s["delivered_per_s"] for s in closed],
                 [s["latency_ms"][key] for s in closed], "*", ms=12,
                 color=line.get_color())  # fmt: skip
    ax1.set_xlabel("offered load (messages/s; ★ closed loop at what it achieved)")
    ax1.set_ylabel("send → plaintext latency (ms)")
    if any(s["latency_ms"]["max"] > 0 for s in steps):
        ax1.set_yscale("log")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend()
    ax2.plot(xs, [s["delivered_per_s"] for s in opened], "o-", label="delivered (open loop)")
    if closed:
        ax2.axhline(max(s["delivered_per_s"] for s in closed), color="tab:red", ls="--",
                    label="closed loop (saturation)")  # fmt: skip
    top = max([*xs, *(s["delivered_per_s"] for s in steps), 1])
    ax2.plot([0, top], [0, top], "k:", alpha=0.5, label="offered = delivered")
    ax2.set_xlabel("offered load (messages/s)")
    ax2.set_ylabel("delivered messages/s")
    ax2.grid(True, alpha=0.3)
    ax2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    p = out_dir / "latency-throughput.png"
    fig.savefig(p, dpi=100)
    plt.close(fig)
    files.append(p)

    # 2. timeline of the whole run (steps back to back)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    offset = 0.0
    for s in steps:
        tl = s["timeline"]
        t = [offset + r["t"] for r in tl]
        ax1.plot(t, [r["sent"] for r in tl], color="tab:blue", alpha=0.6)
        ax1.plot(t, [r["delivered"] for r in tl], color="tab:green")
        errs = [r["errors"] for r in tl]
        if any(errs):
            ax1.bar(t, errs, width=0.8, color="tab:red", alpha=0.6)
        ax2.plot(t, [r["p50_ms"] for r in tl], color="tab:blue")
        ax2.plot(t, [r["p99_ms"] for r in tl], color="tab:orange")
        for ev in s["events"]:
            for ax in (ax1, ax2):
                ax.axvline(offset + ev["t"], color="k", ls="--", alpha=0.5)
            # at the foot of the axes whatever the data's range (y=0 may be below it)
            ax1.annotate(
                ev["what"],
                (offset + ev["t"], 0.03),
                xycoords=("data", "axes fraction"),
                rotation=90,
                fontsize=7,
                va="bottom",
            )
        ax1.axvline(offset, color="grey", alpha=0.3)
        offset += s["wall_s"]
    ax1.set_ylabel("messages/s")
    ax1.legend(["sent", "delivered"], loc="upper left")
    ax2.set_ylabel("latency (ms), delivered that second")
    if any(r["p99_ms"] > 0 for s in steps for r in s["timeline"]):
        ax2.set_yscale("log")
    ax2.legend(["p50", "p99"], loc="upper left")
    ax2.set_xlabel("seconds since the first step began")
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
    fig.suptitle(title + " — timeline")
    fig.tight_layout()
    p = out_dir / "timeline.png"
    fig.savefig(p, dpi=100)
    plt.close(fig)
    files.append(p)

    # 3. store-scale: cost per message as the swarm fills
    scale = doc["extra"].get("store_scale")
    if scale:
        marks = scale["checkpoints"]
        n = [m["messages"] for m in marks]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
        ax1.plot(n, [m["store_cpu_us"] for m in marks], "o-", label="store (node CPU, all nodes)")
        ax1.plot(n, [m["retrieve_cpu_us"] for m in marks], "s-", label="retrieve (node CPU)")
        ax1.set_xscale("log")
        ax1.set_xlabel("messages in the swarm")
        ax1.set_ylabel("µs CPU per request")
        ax1.set_ylim(bottom=0)
        ax1.grid(True, which="both", alpha=0.3)
        ax1.legend()
        ax2.plot(n, [m["max_rss_mb"] for m in marks], "o-", label="largest node RSS (MB)")
        ax2.plot(n, [m["max_db_mb"] for m in marks], "s-", label="largest node DB (MB)")
        ax2.set_xscale("log")
        ax2.set_xlabel("messages in the swarm")
        ax2.grid(True, which="both", alpha=0.3)
        ax2.legend()
        fig.suptitle(title + " — store-scale")
        fig.tight_layout()
        p = out_dir / "store-scale.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        files.append(p)
    return files


# ---------------------------------------------------------------------- compare

_COMPARED = (
    ("delivered_per_s", ("delivered_per_s",)),
    ("latency p50 ms", ("latency_ms", "p50")),
    ("latency p99 ms", ("latency_ms", "p99")),
    ("node CPU per delivered ms", ("cpu", "per_delivered_ms")),
    ("node CPU per layer µs", ("cpu", "per_layer_us")),
    ("net node CPU per delivered ms", ("cpu", "net_per_delivered_ms")),
    ("net CPU/delivered ÷ crypto floor", ("ratios", "net_cpu_per_delivered_vs_crypto_floor")),
    ("net CPU/layer ÷ peel", ("ratios", "net_cpu_per_layer_vs_peel")),
)


def _get(d: dict[str, Any], path: tuple[str, ...]) -> float | None:
    cur: Any = d
    for k in path:
        if not isinstance(cur, dict) or k not in cur:
            return None
        cur = cur[k]
    return float(cur) if isinstance(cur, (int, float)) else None


def compare(new: dict[str, Any], old: dict[str, Any]) -> list[tuple[str, str, Any, Any, Any]]:
    """Rows ``(step, measure, old, new, new/old)`` for the steps both runs have (by name)."""
    rows: list[tuple[str, str, Any, Any, Any]] = []
    old_steps = {s["name"]: s for s in old.get("steps", [])}
    for s in new["steps"]:
        o = old_steps.get(s["name"])
        if o is None:
            continue
        for label, path in _COMPARED:
            a, b = _get(o, path), _get(s, path)
            ratio = round(b / a, 3) if a and b is not None else None
            rows.append((s["name"], label, a, b, ratio))
    for label, key in (("floor peel µs", "peel_us"), ("floor seal µs", "seal_us")):
        a, b = old["floors"].get(key), new["floors"].get(key)
        rows.append(("floors", label, a, b, round(b / a, 3) if a and b else None))
    return rows


def load(path: str | Path) -> dict[str, Any]:
    doc = json.loads(Path(path).read_text())
    bad = validate(doc)
    if bad:
        raise ValueError(f"{path} is not a bench.load result: " + "; ".join(bad[:5]))
    return doc
