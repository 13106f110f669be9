"""The community server (``session-community``): Session's open groups, compatible with the
community server API of Session's apps (SOGS v3, client spec §4).

Rooms of posts, reactions, pins, files, moderators and bans, and blinded direct messages. Every
request is signed by the member's key *blinded for this server* (``X-SOGS-*`` headers), so the
server, its database and its logs only ever see blinded IDs. It is reachable over plain HTTPS
and as a v4 onion destination under its X25519 key (the ``public_key`` of its join URLs).

Modules: :mod:`.config` (settings), :mod:`.store` (SQLite and files on disk), :mod:`.auth`
(request signatures), :mod:`.server` (routes and the running service), :mod:`.cli` (commands).
"""
