"""The one mark of a failure the user can act on: its message is shown to them as it is.

Each layer raises its own kind (bad request, unreadable video, missing model, ...); all of them
are `UserError`s, and `UserError` is the only type the UI catches. A message is a sentence about
the user's input or the server's state that says what to do; never a Python exception name.
Anything else (a bug, a driver failure) becomes one through `unexpected()`, which logs the
traceback on the server under a short reference the user can quote.
"""

from __future__ import annotations

import logging
import uuid

log = logging.getLogger(__name__)


class UserError(Exception):
    """A failure whose message tells the user what to change."""


def unexpected(error: BaseException, what: str = "making your video") -> UserError:
    """A UserError for a failure nobody foresaw; the traceback goes to the server log only."""
    reference = uuid.uuid4().hex[:8]
    log.error("unexpected failure %s while %s", reference, what, exc_info=(type(error), error, error.__traceback__))
    return UserError(
        f"Something went wrong on the server while {what} (reference {reference}). The server is ready for "
        "the next job: please try again, and if it fails again try fewer frames, a lower resolution or other "
        "settings, or report the reference to whoever runs this server."
    )
