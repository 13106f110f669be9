"""``python3 -m session.community``: the ``session-community`` command line."""

from session.community.cli import main

main()
