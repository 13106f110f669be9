"""Namespace rules of Session's storage server, shared by the RPC layer and the message store.

Namespaces are int16. ``"all"`` (:data:`ALL`) selects every namespace of an account in
``delete_all`` / ``delete_before`` / ``expire_all``.
"""

from __future__ import annotations

import enum

NAMESPACE_MIN, NAMESPACE_MAX = -32768, 32767


class AllNamespaces(enum.Enum):
    """Type of :data:`ALL` (a one-member enum, so ``ns is ALL`` narrows for type checkers)."""

    ALL = "all"

    def __repr__(self) -> str:
        return "ALL"


#: The ``"all"`` namespace value of delete_all / delete_before / expire_all.
ALL = AllNamespaces.ALL
NamespaceVar = int | AllNamespaces


def is_public_inbox_namespace(ns: int) -> bool:
    """Namespaces anyone may store to without a signature (0, 10, -10, …)."""
    return ns % 10 == 0


def is_public_outbox_namespace(ns: int) -> bool:
    """Negative namespaces of the form -(20n+1): one message at a time, readable by anyone."""
    return ns < 0 and (-ns) % 20 == 1


def is_noauth_retrieve_namespace(ns: int) -> bool:
    """Namespaces retrieved without a signature: -10 and the public outboxes."""
    return ns == -10 or is_public_outbox_namespace(ns)


def is_unrevocable_namespace(ns: int) -> bool:
    """Namespaces where revoked subaccount tokens still read (-11, -111, …)."""
    return ns < 0 and (-ns) % 100 == 11


#: The namespaces of a ``03`` group's swarm (Session's ``namespace::GroupMessages`` …).
GROUP_MESSAGES = 11
GROUP_KEYS = 12
GROUP_INFO = 13
GROUP_MEMBERS = 14
REVOKED_RETRIEVABLE_GROUP_MESSAGES = -11

#: Group namespaces written only with the group key itself (admins): the signed configs and
#: the revoked-member notices. Members (subaccount tokens) store to the others, chiefly 11.
GROUP_ADMIN_NAMESPACES = frozenset(
    {GROUP_KEYS, GROUP_INFO, GROUP_MEMBERS, REVOKED_RETRIEVABLE_GROUP_MESSAGES}
)


def is_group_admin_namespace(ns: int) -> bool:
    """Whether only a ``03`` group's admins (the group key, no subaccount) may store to ``ns``."""
    return ns in GROUP_ADMIN_NAMESPACES


def namespace_sig_string(ns: NamespaceVar) -> str:
    """Namespace as it appears in signed texts: "" for 0, "all", or the decimal value."""
    if ns is ALL:
        return "all"
    return "" if ns == 0 else str(ns)


def namespace_param(ns: NamespaceVar) -> int | str:
    """Namespace as a JSON request parameter."""
    return "all" if ns is ALL else ns


def namespace_or_none(ns: NamespaceVar) -> int | None:
    """The namespace as the message store takes it: an int, or None for all namespaces."""
    return None if ns is ALL else ns


__all__ = [
    "ALL",
    "GROUP_ADMIN_NAMESPACES",
    "GROUP_INFO",
    "GROUP_KEYS",
    "GROUP_MEMBERS",
    "GROUP_MESSAGES",
    "NAMESPACE_MAX",
    "NAMESPACE_MIN",
    "REVOKED_RETRIEVABLE_GROUP_MESSAGES",
    "AllNamespaces",
    "NamespaceVar",
    "is_group_admin_namespace",
    "is_noauth_retrieve_namespace",
    "is_public_inbox_namespace",
    "is_public_outbox_namespace",
    "is_unrevocable_namespace",
    "namespace_or_none",
    "namespace_param",
    "namespace_sig_string",
]
