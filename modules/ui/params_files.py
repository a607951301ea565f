"""params.json uploads: read one, check that it belongs to the tab, and fill the tab's form from it (the answer
goes to the tab's status box)."""

from __future__ import annotations

import json
import threading
import logging
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import gradio as gr

from ..errors import UserError
from ..request_types import RequestError, request_from_dict
from ..settings import Settings
from ..jobs import user_errors
from .common import tab_title, uploaded

log = logging.getLogger(__name__)

MAX_PARAMS_BYTES = 1_000_000  # a params.json is a few kB


def read_params_file(path) -> dict:
    """The parsed params.json an upload holds, or a UserError that says what is wrong with it."""
    if not path:
        raise UserError("Please choose a params.json file saved with a result of this app.")
    path = Path(path)
    try:
        if os.path.getsize(path) > MAX_PARAMS_BYTES:
            raise UserError("That file is too large to be a params.json from this app; please pick the params.json "
                            "saved next to a result.")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        raise UserError("That file is not a params.json from this app (it is not readable JSON); please pick "
                        "the params.json saved next to a result.") from None
    if not isinstance(data, dict) or not isinstance(data.get("request"), dict) or "mode" not in data:
        raise UserError("That JSON file is not a params.json from this app (it has no \"mode\" and \"request\"); "
                        "please pick the params.json saved next to a result.")
    return data


def wrong_mode_message(data: dict, this_tab: str) -> str:
    mode = data.get("mode")
    tab = tab_title(mode, data.get("request"))
    if tab is None:
        return (f"This params.json is from a mode this app does not know ({str(mode)[:40]!r}); it cannot fill the "
                f"{this_tab} tab.")
    return f"This params.json is from the {tab} tab; open that tab and load it there."


def request_from_params(cls, data: dict, settings: Settings, *, video_stand_in: str | None = None, **validate_options):
    """The request stored in params.json, checked against this server's limits.

    A video request's upload is not in params.json's folder and may be gone: `video_stand_in`
    (any existing file) stands in for it so that every other field is checked.
    """
    request = request_from_dict(cls, data["request"])
    if video_stand_in is not None:
        request = replace(request, video=video_stand_in)
    try:
        return request.validate(settings, **validate_options)
    except RequestError as error:
        raise UserError(f"This params.json does not fit this server: {error}") from error


_filled = threading.local()  # what the running `fill` said: a handler runs in one thread from start to end


def filled(text: str) -> None:
    """What a tab's `fill` says after filling its form from a params.json (shown in the tab's status box)."""
    _filled.text = text


def load_params(path, fill: Callable[[dict], list], count: int) -> list:
    """The `count` form values `fill(data)` makes of an uploaded params.json, None for the upload, and the
    sentence for the tab's status box (what to do next, or why the file cannot fill the form).

    The upload box is emptied either way, ready for another file; a file that cannot fill the
    form leaves the form as it was. Nothing pops up: the status box is the tab's one place for words.
    """
    _filled.text = "Filled the form from params.json."
    try:
        with user_errors("reading the params.json"):
            values = fill(read_params_file(uploaded(path, "params.json")))
        return [*values, None, _filled.text]
    except UserError as error:
        return [gr.skip()] * count + [None, f"**Could not load params.json:** {error}"]
