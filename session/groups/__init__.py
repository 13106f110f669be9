"""Closed groups ("groups v2", ``03…`` group IDs): the pure, sans-I/O building blocks.

* :mod:`session.groups.crypto` — the group's own identity, group messages (sign, pad,
  encrypt under the group key; decrypt trying every key generation) and encryption for several
  recipients at once (key distribution);
* :mod:`session.groups.auth` — admin-issued member credentials (subaccount auth data) and the
  swarm request authentication of members and admins;
* :mod:`session.groups.keys` — the Keys config: key generations, rekeys (removals),
  supplements (additions), 60-day retention, concurrent rekeys;
* :mod:`session.groups.config` — libsession's config messages (seqno, diffs, lagged diffs),
  their merge and their sealing, shared by the group Info/Members configs and the 1:1
  multi-device configs;
* :mod:`session.groups.configs` — the group's signed Info and Members configs;
* :mod:`session.groups.control` — admin signatures of group control messages;
* :mod:`session.groups.user_groups` — the user's groups (seed or auth data) in the UserGroups
  config, shared by the user's devices;
* :mod:`session.groups.bt` — the canonical bencoding every group format uses.

Nothing here does I/O: the client stores and fetches the bytes these functions produce.
Byte-compatible with Session (libsession-util), checked against Session's vectors in
``tests/vectors/`` (``multi_encrypt.json``, ``subaccount.json``, ``group_signatures.json``).
"""
