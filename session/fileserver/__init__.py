"""The blind file server (``session-fileserver``): stores opaque blobs under content-addressed
IDs and serves them over plain HTTPS and as a v4 onion destination (client spec §5.5).

It never learns who uploads or what a file is: no Session ID, file name or content type reaches
it, its database or its logs. Modules: :mod:`.config` (settings), :mod:`.store` (blobs on disk,
metadata in SQLite), :mod:`.server` (routes and the running service), :mod:`.cli` (commands).
"""
