"""Property tests of the config merge: devices edit one config concurrently from a common
history; merging is order-independent, idempotent, keeps every device's edits to different
keys (a real merge, not last-writer-wins) and converges however the messages are delivered."""

from __future__ import annotations

import copy
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from session.groups.config import ConfigMessage, merge

KEYS = [b"a", b"b", b"c", b"d"]
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalar = st.one_of(st.integers(-5, 5), st.sampled_from([b"x", b"y", b""]))
op = st.tuples(
    st.sampled_from(["set", "del", "sadd", "sdel", "nested", "ndel"]),
    st.sampled_from(KEYS),
    scalar,
)


def apply(data: dict[bytes, Any], prefix: bytes, ops: list[tuple[str, bytes, Any]]) -> None:
    """Edits keys under ``prefix`` (one namespace per device in the disjoint-keys test)."""
    for kind, key, val in ops:
        k = prefix + key
        if kind == "set":
            data[k] = val
        elif kind == "del":
            data.pop(k, None)
        elif kind in ("sadd", "sdel"):
            cur = data.get(b"set" + prefix)
            if not isinstance(cur, set):
                cur = data[b"set" + prefix] = set()
            (cur.add if kind == "sadd" else cur.discard)(val)
        elif kind == "nested":
            sub = data.get(b"dict" + prefix)
            if not isinstance(sub, dict):
                sub = data[b"dict" + prefix] = {}
            sub[k] = val
        else:
            sub = data.get(b"dict" + prefix)
            if isinstance(sub, dict):
                sub.pop(k, None)


def pruned(d: dict[bytes, Any]) -> dict[bytes, Any]:
    out: dict[bytes, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            v = pruned(v)
        if isinstance(v, (dict, set)) and not v:
            continue
        out[k] = v
    return out


def history(base_ops: list, rounds: int) -> ConfigMessage:
    m = ConfigMessage(7)
    apply(m.data, b"", base_ops)
    for _ in range(rounds):
        m = m.increment()
    return m


devices_ops = st.lists(st.lists(op, min_size=1, max_size=4), min_size=2, max_size=4)


@SETTINGS
@given(st.lists(op, max_size=6), st.integers(0, 3), devices_ops, st.randoms())
def test_merge_is_order_independent_and_idempotent(
    base_ops: list, rounds: int, dev_ops: list, rnd: random.Random
) -> None:
    base = history(base_ops, rounds)
    msgs = []
    for ops in dev_ops:
        m = base.increment()
        apply(m.data, b"", ops)
        msgs.append(m.serialize())
    merged = merge(msgs)
    out = merged.serialize()
    for _ in range(3):
        shuffled = msgs[:]
        rnd.shuffle(shuffled)
        assert merge(shuffled).serialize() == out
    assert merge(msgs + msgs).serialize() == out  # duplicates change nothing
    assert merge([base.serialize(), *msgs]).serialize() == out  # an included ancestor neither
    # the merge supersedes its inputs: merging it again with them gives the merge itself
    again = merge([out, *msgs])
    assert not again.merged and again.serialize() == out
    assert merge([out, out]).serialize() == out


@SETTINGS
@given(st.lists(op, max_size=6), devices_ops)
def test_concurrent_edits_to_different_keys_all_survive(base_ops: list, dev_ops: list) -> None:
    base = history(base_ops, 1)
    expected = copy.deepcopy(base.data)
    msgs = []
    for i, ops in enumerate(dev_ops):
        m = base.increment()
        prefix = b"%d" % i  # each device edits its own keys
        apply(m.data, prefix, ops)
        apply(expected, prefix, ops)
        msgs.append(m.serialize())
    merged = merge(msgs)
    assert merged.data == pruned(expected)


@SETTINGS
@given(st.lists(op, max_size=4), devices_ops, st.randoms())
def test_devices_converge_under_any_delivery_order(
    base_ops: list, dev_ops: list, rnd: random.Random
) -> None:
    """Each device first receives the others' messages one at a time, in its own order,
    merging as it goes and publishing every merge (so devices hold different intermediate
    states). Then, as clients do, each polls the swarm and merges its own config with
    everything stored there at once, and publishes the result. After two such polls every
    device holds the same config, byte for byte, whatever the delivery orders were.

    (Intermediate merges may differ from merging the originals at once: libsession replays a
    diff against the data of the message it came with, so e.g. removing a set's last element
    concurrently with additions drops the set or keeps the additions depending on hash order.
    The rule is deterministic, which is what convergence needs.)"""
    base = history(base_ops, 2)
    originals = []
    for ops in dev_ops:
        m = base.increment()
        apply(m.data, b"", ops)
        originals.append(m.serialize())
    swarm: list[bytes] = list(originals)
    states = []
    for own in originals:
        state = own
        order = [o for o in originals if o != own]
        rnd.shuffle(order)
        for incoming in order:
            state = merge([state, incoming]).serialize()
            swarm.append(state)
        states.append(state)
    for _ in range(2):
        snapshot = swarm[:]
        for i, own in enumerate(states):
            seen = snapshot[:]
            rnd.shuffle(seen)
            states[i] = merge([own, *seen]).serialize()
            swarm.append(states[i])
    assert len(set(states)) == 1
