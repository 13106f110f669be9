"""``session``: the command-line client.

Commands::

    session id new | restore | list | use ID | show | name NAME     (ids.py)
    session send ID TEXT / inbox / history ID                       (messaging.py)
    session requests [accept ID | decline ID] / block ID / unblock ID  (contacts.py)
    session chat ID                                                  (chat.py)
    session tui                  (full-screen messenger; Textual)    (tui.py)
    session group create | list | info | invite | accept | decline | send | history | chat |
                  remove | promote | rename | describe | leave | disappear     (groups.py)
    session community join URL | list | read | post | react | edit | delete | save | dm |
                      dms | chat | leave                             (community.py)

The group, the shared options and the helpers are in ``base.py``. Every command uses only the
public API of :class:`session.client.Client`, and every piece of someone else's text it prints
passes :func:`session.text.for_terminal` (``--json`` output is exact).
"""

from session.cli.client import (  # noqa: F401  (register commands)
    chat,
    community,
    contacts,
    groups,
    ids,
    messaging,
    names,
    tui,
)
from session.cli.client.base import main

__all__ = ["main"]
