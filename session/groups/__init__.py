"""Closed groups ("groups v2", ``03…`` group IDs): the pure, sans-I/O building blocks.

* :mod:`session.groups.crypto` — the group's own identity, group messages (sign, pad,
  encrypt under the group key; decrypt trying every key generation) and encryption for several
  recipients at once (key distribution);
* :mod:`session.groups.auth` — admin-issued member credentials (subaccount auth data) and the
  swarm request authentication of members and admins;
* :mod:`session.groups.bt` — the canonical bencoding every group format uses;
* :mod:`session.groups.config` — libsession's config messages (seqno, diffs, lagged diffs) and
  their merge, shared by the group Keys/Info/Members configs and the 1:1 multi-device configs.

Nothing here does I/O: the client stores and fetches the bytes these functions produce.
Byte-compatible with Session (libsession-util), checked against Session's vectors in
``tests/vectors/`` (``multi_encrypt.json``, ``subaccount.json``, ``group_signatures.json``).
"""
