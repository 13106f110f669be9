"""``python3 -m session.fileserver``: the ``session-fileserver`` command line."""

from session.fileserver.cli import main

main()
