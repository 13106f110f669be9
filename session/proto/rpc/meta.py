"""Meta requests: ``batch`` / ``sequence`` (several sub-requests in one) and ``ifelse`` (a
request chosen by the node's hard fork, version or height).

Nesting follows Session's storage server: a batch or sequence holds plain methods only; an
``ifelse`` branch may be any request, including a batch, a sequence or another ``ifelse``. The
``ifelse`` chain is bounded by :data:`MAX_IFELSE_DEPTH` (Session sets no bound; parsing an
unbounded chain would recurse without limit).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar

from session.proto.rpc.constants import BATCH_REQUEST_MAX, MAX_IFELSE_DEPTH
from session.proto.rpc.fields import Params, ParseError, f_int, f_int_array
from session.proto.rpc.requests import METHOD_CLASSES, SubRequest, parse_sub_request

#: Names of the meta requests.
META_METHODS = frozenset({"batch", "sequence", "ifelse"})


@dataclasses.dataclass(frozen=True, slots=True)
class Batch:
    """``batch`` (``sequence=False``: sub-requests may run in parallel) or ``sequence`` (in
    order, stopping after the first non-2xx)."""

    RECURSIVE: ClassVar[bool] = False
    requests: tuple[SubRequest, ...]
    sequence: bool = False

    @property
    def METHOD(self) -> str:
        return "sequence" if self.sequence else "batch"

    @classmethod
    def parse(cls, p: Params, sequence: bool) -> Batch:
        reqs = p.get("requests")
        if not isinstance(reqs, list) or not reqs:
            raise ParseError('Invalid batch request: no valid "requests" field')
        if len(reqs) > BATCH_REQUEST_MAX:
            raise ParseError("Invalid batch request: subrequest limit exceeded")
        out = []
        for r in reqs:
            if not isinstance(r, dict):
                raise ParseError("Invalid batch request: requests must be objects")
            m, params = r.get("method"), r.get("params")
            if not isinstance(m, str) or not isinstance(params, dict):
                raise ParseError("Invalid batch request: subrequests must have method/params keys")
            if m in META_METHODS:
                raise ParseError(
                    "Invalid batch subrequest: subrequests may not contain meta-requests"
                )
            if m not in METHOD_CLASSES:
                raise ParseError(f'Invalid batch subrequest: invalid method "{m}"')
            out.append(parse_sub_request(m, params))
        return cls(tuple(out), sequence)


def _fixed(v: list[int] | None, n: int) -> tuple[int, ...] | None:
    if not v:
        return None
    return tuple((v[i] if i < len(v) else 0) for i in range(n))


@dataclasses.dataclass(frozen=True, slots=True)
class Condition:
    """``ifelse`` condition; every given bound must hold. Versions and hard forks compare as
    tuples (missing parts are 0)."""

    height_at_least: int | None = None
    height_before: int | None = None
    hf_at_least: tuple[int, ...] | None = None
    hf_before: tuple[int, ...] | None = None
    v_at_least: tuple[int, ...] | None = None
    v_before: tuple[int, ...] | None = None

    @classmethod
    def parse(cls, cond: Params) -> Condition:
        c = cls(
            height_at_least=f_int(cond, "height_at_least"),
            height_before=f_int(cond, "height_before"),
            hf_at_least=_fixed(f_int_array(cond, "hf_at_least"), 2),
            hf_before=_fixed(f_int_array(cond, "hf_before"), 2),
            v_at_least=_fixed(f_int_array(cond, "v_at_least"), 3),
            v_before=_fixed(f_int_array(cond, "v_before"), 3),
        )
        if c == cls():
            raise ParseError('Invalid ifelse request: must specify at least one "if" condition')
        return c

    def holds(self, hf: Sequence[int], version: Sequence[int], height: int) -> bool:
        hf_t, v_t = tuple(hf), tuple(version)
        ok = True
        if self.hf_at_least is not None:
            ok &= hf_t >= self.hf_at_least
        if self.hf_before is not None:
            ok &= hf_t < self.hf_before
        if self.v_at_least is not None:
            ok &= v_t >= self.v_at_least
        if self.v_before is not None:
            ok &= v_t < self.v_before
        if self.height_at_least is not None:
            ok &= height >= self.height_at_least
        if self.height_before is not None:
            ok &= height < self.height_before
        return ok


@dataclasses.dataclass(frozen=True, slots=True)
class IfElse:
    """``ifelse``: run ``then`` when the condition holds on this node, else ``otherwise``."""

    METHOD: ClassVar[str] = "ifelse"
    RECURSIVE: ClassVar[bool] = False
    condition: Condition
    then: Request | None
    otherwise: Request | None

    @classmethod
    def parse(cls, p: Params, depth: int = 1) -> IfElse:
        """``depth``: how many ``ifelse`` levels this one is (1 for a top-level request)."""
        cond = p.get("if")
        if not isinstance(cond, dict):
            raise ParseError('Invalid ifelse request: no valid "if" field')
        c = Condition.parse(cond)

        def branch(key: str) -> Request | None:
            b = p.get(key)
            if b is None:
                return None
            if not isinstance(b, dict):
                raise ParseError(f"Invalid ifelse request: {key} must be an object")
            m, params = b.get("method"), b.get("params")
            if not isinstance(m, str) or not isinstance(params, dict):
                raise ParseError(f"Invalid ifelse request: {key} must have method/params keys")
            if m == "ifelse":
                if depth >= MAX_IFELSE_DEPTH:
                    raise ParseError(
                        f"Invalid ifelse request: ifelse may be nested at most "
                        f"{MAX_IFELSE_DEPTH} levels deep"
                    )
                return cls.parse(params, depth + 1)
            if m in ("batch", "sequence"):
                return Batch.parse(params, m == "sequence")
            if m not in METHOD_CLASSES:
                raise ParseError(f'Invalid ifelse request method "{key}"')
            return parse_sub_request(m, params)

        then, other = branch("then"), branch("else")
        if then is None and other is None:
            raise ParseError('Invalid ifelse request: at least one of "then"/"else" required')
        return cls(c, then, other)


#: Any request the node answers.
Request = SubRequest | Batch | IfElse


__all__ = ["META_METHODS", "Batch", "Condition", "IfElse", "Request"]
