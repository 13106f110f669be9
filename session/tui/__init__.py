"""``session tui``: a full-screen terminal messenger on the public client API (Textual).

Only ``session tui`` imports this package (and with it Textual): the other programs never load
it. :class:`~session.tui.app.SessionTui` is the app, :mod:`session.tui.model` what it shows
(pure functions over the client), :mod:`session.tui.widgets` and :mod:`session.tui.screens`
the pieces.
"""
