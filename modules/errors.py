"""The one mark of a failure the user can act on: its message is shown to them as it is.

Each layer raises its own kind (bad request, unreadable video, missing model, ...); all of them
are `UserError`s, so the Studio can tell them from bugs without importing every layer.
"""


class UserError(Exception):
    """A failure whose message tells the user what to change."""
