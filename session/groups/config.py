"""libsession's config messages and their merge (client spec §6.7; libsession ``config.cpp``,
``docs/config-merge-logic.md``).

Every synced config — the 1:1 UserProfile, Contacts, ConvoInfoVolatile and UserGroups, and the
Info and Members configs of a 03 group — is one bencoded *config message*::

    {"#": seqno, "&": data, "<": [[seqno, hash, diff], ...], "=": diff[, "~": signature]}

``data`` is a dict of byte-string keys to ints, byte strings, non-empty sorted sets of
ints/strings, or non-empty dicts of the same. ``"="`` records what this message changed
(``""`` set, ``"-"`` removed, nested dicts, ``[added, removed]`` for sets); ``"<"`` carries the
diffs of the last ``lag - 1`` messages (by seqno and BLAKE2b-256 hash of the message).

Two devices editing at once produce two messages with the same seqno. :func:`merge` combines
any collection of such messages deterministically — the same result whatever the order or
duplication of its inputs — by starting from the highest (seqno, hash) message and replaying
every known diff in (seqno, hash) order, so concurrent edits to different keys all survive
(not last-writer-wins); for one key the higher (seqno, hash) edit wins. The merged message gets
the next seqno and is pushed so every device converges on it. (The rules are libsession's,
kept for compatibility, including their edge: a diff is replayed against the data of the
message it came with, so removing a set's last element concurrently with additions to that
set drops or keeps the additions depending on hash order — deterministic, hence convergent.)

What is stored in a swarm is :func:`seal` of the serialized message (zstd-compressed with a
``z`` prefix when that is smaller, prefix-padded, encrypted with :mod:`session.config_crypto`
under the newest key); :func:`open_sealed` reverses it trying every key. Pure and sans-I/O:
bytes in, bytes out.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Self

from session import _core, config_crypto
from session.errors import DecodeError, DecryptionError, InvalidInput, InvalidSignature
from session.groups import bt

__all__ = [
    "DEFAULT_LAG",
    "ConfigData",
    "ConfigMessage",
    "ConfigParseError",
    "Diff",
    "Signer",
    "Verifier",
    "data_diff",
    "merge",
    "open_sealed",
    "seal",
]

DEFAULT_LAG = 5
"""How many seqnos of diffs are kept for conflict resolution (libsession ``DEFAULT_DIFF_LAGS``)."""

SIG_SUFFIX_LEN = len(b"1:~64:") + 64 + 1

Scalar = int | bytes
ConfigData = dict[bytes, Any]
"""Config data: bytes keys → int | bytes | set[int | bytes] (non-empty) | ConfigData."""
Diff = dict[bytes, Any]
"""A diff: bytes keys → b"" | b"-" | [added, removed] | Diff."""
Signer = Callable[[bytes], bytes]
"""Signs the encoded message up to the signature (returns 64 bytes)."""
Verifier = Callable[[bytes, bytes], bool]
"""Checks (signed bytes, 64-byte signature)."""


class ConfigParseError(DecodeError):
    """A config message does not follow the format (or its signature is missing or wrong)."""


def _hash(data: bytes) -> bytes:
    return _core.blake2b(data, None, 32)


def _set_key(v: Scalar) -> tuple[bool, int | bytes]:
    """Set order: integers before strings, each in natural order."""
    return (isinstance(v, bytes), v)


def _sorted_set(s: Iterable[Scalar]) -> list[Scalar]:
    return sorted(s, key=_set_key)


def _is_scalar(v: object) -> bool:
    return isinstance(v, (int, bytes)) and not isinstance(v, bool)


# ------------------------------------------------------------------------------ data parsing


def _parse_data(d: Any, top_level: bool = False) -> ConfigData:
    if not isinstance(d, dict):
        raise ConfigParseError("config data is not a dict")
    if not top_level and not d:
        raise ConfigParseError("config data contains an unpruned, empty dict")
    out: ConfigData = {}
    for k, v in d.items():
        if isinstance(v, (int, bytes)):
            out[k] = v
        elif isinstance(v, dict):
            out[k] = _parse_data(v)
        elif isinstance(v, list):
            if not v:
                raise ConfigParseError("config data contains an unpruned, empty set")
            for a, b in itertools.pairwise(v):
                if not (_is_scalar(a) and _is_scalar(b)):
                    raise ConfigParseError("config data contains a set with a non-scalar value")
                if _set_key(a) >= _set_key(b):
                    raise ConfigParseError("config data contains an unsorted set or duplicates")
            if not _is_scalar(v[0]):
                raise ConfigParseError("config data contains a set with a non-scalar value")
            out[k] = set(v)
    return out


def _check_sorted_scalars(items: Any) -> None:
    if not isinstance(items, list):
        raise ConfigParseError("a set diff must be a pair of lists")
    for x in items:
        if not _is_scalar(x):
            raise ConfigParseError("a set diff may only hold ints and strings")
    for a, b in itertools.pairwise(items):
        if _set_key(a) >= _set_key(b):
            raise ConfigParseError("a set diff is not sorted")


def _load_diff(d: Any) -> Diff:
    if not isinstance(d, dict):
        raise ConfigParseError("a config diff is not a dict")
    out: Diff = {}
    for k, v in d.items():
        if isinstance(v, bytes):
            if v not in (b"", b"-"):
                raise ConfigParseError("a config diff holds a value other than '' or '-'")
            out[k] = v
        elif isinstance(v, list):
            if len(v) != 2:
                raise ConfigParseError("a set diff must hold exactly two lists")
            _check_sorted_scalars(v[0])
            _check_sorted_scalars(v[1])
            out[k] = [list(v[0]), list(v[1])]
        elif isinstance(v, dict):
            out[k] = _load_diff(v)
        else:
            raise ConfigParseError("a config diff holds an integer")
    return out


def _encode_data(d: ConfigData) -> dict[bytes, Any]:
    out: dict[bytes, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out[k] = _encode_data(v)
        elif isinstance(v, (set, frozenset)):
            out[k] = _sorted_set(v)
        else:
            out[k] = v
    return out


# ------------------------------------------------------------------------- diffs and replay


def _prune(d: ConfigData) -> None:
    """Removes empty sets and dicts, recursively (they are never stored)."""
    for k in list(d):
        v = d[k]
        if isinstance(v, dict):
            _prune(v)
        if isinstance(v, (dict, set, frozenset)) and not v:
            del d[k]


def _kind(v: Any) -> int:
    if isinstance(v, dict):
        return 2
    if isinstance(v, (set, frozenset)):
        return 1
    return 0


def _set_diff(old: AbstractSet[Scalar], new: AbstractSet[Scalar]) -> list[Any] | None:
    added, removed = new - old, old - new
    if not added and not removed:
        return None
    return [_sorted_set(added), _sorted_set(removed)]


def data_diff(old: ConfigData, new: ConfigData) -> Diff | None:
    """What changed from ``old`` to ``new`` (libsession's diff rules), or None."""
    df: Diff = {}
    for k in sorted(old.keys() | new.keys()):
        if k not in new:
            o = old[k]
            sub = (
                data_diff(o, {})
                if isinstance(o, dict)
                else _set_diff(o, set())
                if isinstance(o, (set, frozenset))
                else b"-"
            )
            if sub is not None:
                df[k] = sub
            continue
        n = new[k]
        if k in old and _kind(old[k]) == _kind(n):
            o = old[k]
            if isinstance(n, dict):
                sub_d = data_diff(o, n)
                if sub_d is not None:
                    df[k] = sub_d
            elif isinstance(n, (set, frozenset)):
                sub_s = _set_diff(o, n)
                if sub_s is not None:
                    df[k] = sub_s
            elif o != n or type(o) is not type(n):
                df[k] = b""
            continue
        # a new key, or one whose type changed (treated as new)
        if isinstance(n, dict):
            sub_n = data_diff({}, n)
            if sub_n is not None:
                df[k] = sub_n
        elif isinstance(n, (set, frozenset)):
            sub_ns = _set_diff(set(), n)
            if sub_ns is not None:
                df[k] = sub_ns
        else:
            df[k] = b""
    return df or None


def _apply_diff(data: ConfigData, diff: Diff, source: ConfigData) -> None:
    """Replays ``diff`` onto ``data``, taking assigned values from ``source`` (the message the
    diff came with). A key whose source value is gone or of another type is removed: a later
    diff removes or replaces it. Empty containers are pruned afterwards by the caller."""
    for k, v in diff.items():
        src = source.get(k)
        wanted = 0 if isinstance(v, bytes) else 1 if isinstance(v, list) else 2
        if src is None or _kind(src) != wanted:
            data.pop(k, None)
            continue
        if isinstance(v, bytes):
            if v == b"-":
                data.pop(k, None)
            else:
                data[k] = src
        elif isinstance(v, dict):
            if not isinstance(data.get(k), dict):
                data[k] = {}
            _apply_diff(data[k], v, src)
        else:
            if not isinstance(data.get(k), (set, frozenset)):
                data[k] = set()
            target: set[Scalar] = data[k]
            target.update(v[0])
            target.difference_update(v[1])


# ----------------------------------------------------------------------------- the message


class ConfigMessage:
    """One config message: parse it (:meth:`parse`), change it (:meth:`increment`, then edit
    :attr:`data`), serialize it (:meth:`serialize`); combine several with :func:`merge`.

    A message made by :meth:`increment` (or :func:`merge`) is *mutable*: its diff is computed
    from the data it started with, so edits to :attr:`data` show up in the next serialization.
    A parsed message keeps its diff as received.
    """

    __slots__ = (
        "_diff",
        "_hash",
        "_orig",
        "_signature",
        "data",
        "lag",
        "lagged",
        "merged",
        "seqno",
        "signer",
        "unknown",
        "unmerged_index",
    )

    def __init__(
        self, seqno: int = 0, *, lag: int = DEFAULT_LAG, signer: Signer | None = None
    ) -> None:
        """A new, empty mutable message (seqno 0 unless given)."""
        self.seqno = seqno
        self.data: ConfigData = {}
        self.lagged: dict[tuple[int, bytes], Diff] = {}
        self.unknown: dict[bytes, Any] = {}
        self.lag = lag
        self.signer = signer
        self._diff: Diff = {}
        self._orig: ConfigData | None = {}
        self._signature: bytes | None = None
        self._hash = b""
        self.merged = False
        self.unmerged_index = 0

    # -- parsing

    @classmethod
    def parse(
        cls,
        serialized: bytes,
        *,
        verifier: Verifier | None = None,
        signer: Signer | None = None,
        lag: int = DEFAULT_LAG,
        trust_signature: bool = False,
    ) -> Self:
        """Parses one serialized (decrypted, unpadded) config message. With a ``verifier`` the
        message must carry a valid signature. Raises ConfigParseError / InvalidSignature."""
        serialized = bytes(serialized)
        try:
            top = bt.decode(serialized)
        except DecodeError as e:
            raise ConfigParseError(f"config message: {e}") from None
        if not isinstance(top, dict) or not top:
            raise ConfigParseError("a config message must be a non-empty dict")
        keys = list(top)
        if keys[0] != b"#" or not isinstance(top[b"#"], int):
            raise ConfigParseError('a config message must start with the "#" seqno')
        if b"&" not in top:
            raise ConfigParseError('a config message has no "&" data dict')
        if keys[-1] > b"~":
            raise ConfigParseError('a config message has keys after "~"')
        m = cls(top[b"#"], lag=lag, signer=signer)
        m._orig = None
        m.data = _parse_data(top[b"&"], top_level=True)
        if b"<" in top:
            m.lagged = _parse_lagged(top[b"<"], m.seqno, lag)
        if b"=" in top:
            m._diff = _load_diff(top[b"="])
        m.unknown = {k: v for k, v in top.items() if k not in (b"#", b"&", b"<", b"=", b"~")}
        sig = top.get(b"~")
        if sig is not None:
            if not isinstance(sig, bytes) or len(sig) != 64:
                raise ConfigParseError("the config signature is not 64 bytes")
            if verifier is not None and not verifier(serialized[:-SIG_SUFFIX_LEN], sig):
                raise InvalidSignature("the config message's signature does not verify")
            if verifier is not None or trust_signature:
                m._signature = sig
        elif verifier is not None:
            raise InvalidSignature("the config message is not signed")
        m._hash = _hash(serialized)
        return m

    # -- state

    @property
    def hash(self) -> bytes:
        """BLAKE2b-256 of the serialized message (recomputed for a mutable one)."""
        if self._orig is not None:
            self._hash = _hash(self.serialize())
        return self._hash

    @property
    def mutable(self) -> bool:
        return self._orig is not None

    @property
    def verified_signature(self) -> bytes | None:
        return self._signature

    def diff(self) -> Diff:
        """This message's own changes (for a mutable one: against the data it started with)."""
        if self._orig is not None:
            _prune(self.data)
            new = data_diff(self._orig, self.data) or {}
            if new != self._diff:
                self._signature = None
            self._diff = new
        return self._diff

    def serialize(self, *, sign: bool = True) -> bytes:
        """The encoded message; signed by :attr:`signer` when it has one (and ``sign``)."""
        diff = self.diff()
        outer: dict[bytes, Any] = dict(self.unknown)
        outer[b"#"] = self.seqno
        outer[b"&"] = _encode_data(self.data)
        outer[b"<"] = [
            [s, h, d]
            for (s, h), d in sorted(self.lagged.items())
            if self.seqno - self.lag < s < self.seqno
        ]
        outer[b"="] = diff
        enc = bt.encode(outer)
        sig = self._signature
        if sig is None and self.signer is not None and sign:
            sig = bytes(self.signer(enc[:-1]))
            if len(sig) != 64:
                raise InvalidInput("the config signer did not return 64 bytes")
        if sig is not None:
            enc = enc[:-1] + b"1:~64:" + sig + b"e"
        return enc

    def increment(self) -> ConfigMessage:
        """A new mutable message with the next seqno that records this one's diff among its
        lagged diffs; edit its :attr:`data`, then :meth:`serialize` it."""
        this_hash = self.hash
        nxt = ConfigMessage(self.seqno + 1, lag=self.lag, signer=self.signer)
        nxt.data = copy.deepcopy(self.data)
        nxt.unknown = copy.deepcopy(self.unknown)
        nxt.lagged = {
            sh: copy.deepcopy(d)
            for sh, d in self.lagged.items()
            if self.seqno - self.lag < sh[0] < self.seqno
        }
        nxt.lagged[(self.seqno, this_hash)] = copy.deepcopy(self.diff())
        nxt._orig = copy.deepcopy(self.data)
        return nxt

    def __repr__(self) -> str:
        kind = "merged" if self.merged else "mutable" if self.mutable else "parsed"
        return f"ConfigMessage(seqno={self.seqno}, {kind}, {len(self.data)} keys)"


def _parse_lagged(v: Any, seqno: int, lag: int) -> dict[tuple[int, bytes], Diff]:
    if not isinstance(v, list):
        raise ConfigParseError("the lagged diffs are not a list")
    out: dict[tuple[int, bytes], Diff] = {}
    last: tuple[int, bytes] | None = None
    for row in v:
        if not isinstance(row, list) or not row or not isinstance(row[0], int):
            raise ConfigParseError("a lagged diff row is not [seqno, hash, diff]")
        s = row[0]
        if s >= seqno:
            raise ConfigParseError("a lagged diff has a seqno at or above the message's")
        if s <= seqno - lag:
            continue  # too old to matter
        if len(row) != 3 or not isinstance(row[1], bytes) or len(row[1]) != 32:
            raise ConfigParseError("a lagged diff row is not [seqno, 32-byte hash, diff]")
        key = (s, row[1])
        if last is not None and key <= last:
            raise ConfigParseError("the lagged diffs are unsorted or repeated")
        last = key
        out[key] = _load_diff(row[2])
    return out


def merge(
    serialized: Sequence[bytes],
    *,
    verifier: Verifier | None = None,
    signer: Signer | None = None,
    lag: int = DEFAULT_LAG,
    on_error: Callable[[int, Exception], None] | None = None,
    for_edit: bool = False,
) -> ConfigMessage:
    """The config that results from all of ``serialized`` (libsession's merge).

    Invalid messages are skipped (``on_error(index, error)`` is told; it may raise). Messages
    already included in another's lagged diffs, duplicates and messages ``lag`` or more seqnos
    behind the newest are dropped. If one message remains it is returned as is (``merged`` is
    False, ``unmerged_index`` says which input it was). Otherwise the result has the next seqno,
    the data of the highest (seqno, hash) message with every known diff replayed in (seqno,
    hash) order, and all those diffs as its lagged diffs (``merged`` is True). When signatures
    are required but this device cannot sign, the highest message is kept instead (someone who
    can sign will publish the merge). Raises ConfigParseError when no input is valid.

    A merge result is mutable (edits to its data become its diff). ``for_edit=True`` also
    turns an unmerged result into its :meth:`~ConfigMessage.increment`, ready to be changed
    (libsession's ``MutableConfigMessage``).
    """
    configs: list[tuple[int, ConfigMessage]] = []
    for i, data in enumerate(serialized):
        try:
            configs.append(
                (i, ConfigMessage.parse(data, verifier=verifier, signer=signer, lag=lag))
            )
        except (ConfigParseError, InvalidSignature) as e:
            if on_error is not None:
                on_error(i, e)
    if not configs:
        raise ConfigParseError("no valid config messages to merge")
    max_seqno = max(c.seqno for _, c in configs)
    keep: list[tuple[int, ConfigMessage]] = []
    for pos, (i, c) in enumerate(configs):
        key = (c.seqno, c.hash)
        redundant = c.seqno + lag <= max_seqno
        for pos2, (_, c2) in enumerate(configs):
            if redundant:
                break
            if pos2 == pos:
                continue
            if key in c2.lagged or (pos2 < pos and (c2.seqno, c2.hash) == key):
                redundant = True
        if not redundant:
            keep.append((i, c))
    if len(keep) == 1 or (verifier is not None and signer is None):
        index, best = max(keep, key=lambda ic: (ic[1].seqno, ic[1].hash))
        best.merged = False
        best.unmerged_index = index
        if for_edit:
            nxt = best.increment()
            nxt.unmerged_index = index
            return nxt
        return best
    keep.sort(key=lambda ic: (ic[1].seqno, ic[1].hash), reverse=True)
    out = ConfigMessage(max_seqno + 1, lag=lag, signer=signer)
    out.data = copy.deepcopy(keep[0][1].data)
    replay: dict[tuple[int, bytes], tuple[ConfigData, Diff]] = {}
    for _, c in keep:  # the higher message's copy of a shared diff wins
        replay.setdefault((c.seqno, c.hash), (c.data, c.diff()))
        for sh, d in c.lagged.items():
            replay.setdefault(sh, (c.data, d))
    for sh in sorted(replay):
        source, d = replay[sh]
        _apply_diff(out.data, d, source)
        out.lagged[sh] = copy.deepcopy(d)
    _prune(out.data)
    out._orig = copy.deepcopy(out.data)
    out.merged = True
    out.unmerged_index = -1
    return out


MAX_DECOMPRESSED = 4 * 1024 * 1024
"""Largest config message accepted after decompression (a bound against zip bombs)."""


def seal(message: bytes, key: bytes, domain: str, *, compress: bool = True) -> bytes:
    """What to store for a serialized config message (libsession ``ConfigBase::push``):
    ``z`` + zstd when that is smaller, zero prefix padding, deterministic encryption under the
    32-byte ``key`` for ``domain``. Raises InvalidInput above 75 KiB."""
    msg = bytes(message)
    if compress:
        z = b"z" + _core.zstd_compress(msg)
        if len(z) < len(msg):
            msg = z
    out = config_crypto.encrypt(config_crypto.pad(msg), key, domain)
    if len(out) > config_crypto.MAX_MESSAGE_SIZE:
        raise InvalidInput(
            f"the config is too large: {len(out)} bytes, the limit is "
            f"{config_crypto.MAX_MESSAGE_SIZE}"
        )
    return out


def open_sealed(data: bytes, keys: Sequence[bytes], domain: str) -> bytes:
    """The serialized config message inside ``data``, trying each of ``keys``. Raises
    DecryptionError (no key opens it, bad compression) or ConfigParseError (not a message)."""
    for key in keys:
        try:
            plain = config_crypto.decrypt(data, key, domain)
        except DecryptionError:
            continue
        plain = plain.lstrip(b"\0")
        if plain.startswith(b"z"):
            plain = _core.zstd_decompress(plain[1:], MAX_DECOMPRESSED)
        if not plain.startswith(b"d"):
            raise ConfigParseError("the decrypted config is not a config message")
        return plain
    raise DecryptionError("none of the keys opens this config message")
