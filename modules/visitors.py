"""Who a request is for, on a public server: the identity that owns tuned models, and the Hub token it acts with.

Public or private is decided once (`Settings.public`, `settings.decide_public`). Private: one user, the
server's owner (`OWNER`); the tuned models are one folder and the server's HF_TOKEN works as it always did.
Public (a Space, a share link, a non-loopback address, T2VZ_PUBLIC=1): each request is a visitor's,

- an *account* when the visitor signed in with Hugging Face: the page's `gr.LoginButton` (a Space with
  `hf_oauth: true`), or a script's `gradio_client.Client(..., oauth_token=...)`. Both reach the handler as
  its `gr.OAuthToken | None` parameter; the account is the token's `whoami` name (asked of the Hub once,
  then cached for a while: a token is never trusted for a name it does not have);
- else the *session*: the browser page (or client) session, `gr.Request.session_hash`. A reload of the
  page is a new session; such models expire after `T2VZ_TUNED_TTL_S`.

A `Visitor` is a small frozen value that the UI builds (`visitor_of`) and passes to every Studio method
about tuned models, so scripts and the Ray backend pass one explicitly too. Its token is the visitor's own
(OAuth, or pasted in the token field) and is never printed (`repr=False`), logged, written nor sent to a
worker: Studio uses it for the Hub calls of that request only. In public mode the server's HF_TOKEN is
never used on a visitor's behalf (`server_token` is False).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field

from .errors import UserError

log = logging.getLogger(__name__)

OWNER_KIND, ACCOUNT_KIND, SESSION_KIND = "owner", "account", "session"
WHOAMI_TTL_S = 600.0  # how long a token's account name is kept (a sign-in lasts hours)
TOKENS_PAGE = "https://huggingface.co/settings/tokens"


@dataclass(frozen=True)
class Visitor:
    """The owner of a request's tuned models, and the Hub token it may use (never shown)."""

    kind: str = OWNER_KIND  # "owner" (private mode), "account" (signed in) or "session" (anonymous)
    name: str = ""  # the Hub account name, or the session hash; "" for the owner
    token: str = field(default="", repr=False, compare=False)  # the visitor's own Hub token, "" = none

    def __post_init__(self):
        if self.kind not in (OWNER_KIND, ACCOUNT_KIND, SESSION_KIND):
            raise ValueError(f"unknown visitor kind {self.kind!r}")
        if self.kind != OWNER_KIND and not self.name:
            raise ValueError(f"a visitor of kind {self.kind} needs a name")

    @property
    def is_owner(self) -> bool:
        return self.kind == OWNER_KIND

    @property
    def anonymous(self) -> bool:
        return self.kind == SESSION_KIND

    @property
    def server_token(self) -> bool:
        """Whether the server's own HF_TOKEN (or stored login) may be used for this request: only its owner's."""
        return self.is_owner

    @property
    def folder(self) -> str:
        """This visitor's folder under the tuned-models folder ("" = the folder itself: the owner's). A session
        hash is hashed again, so that no folder name is a secret another client could present."""
        if self.is_owner:
            return ""
        if self.kind == ACCOUNT_KIND:
            return f"hf-{self.name}"
        return "session-" + hashlib.sha256(self.name.encode()).hexdigest()[:32]

    def with_token(self, token: str) -> "Visitor":
        return Visitor(self.kind, self.name, token)

    def describe(self) -> str:
        """In words, for the page (no secret in it)."""
        if self.is_owner:
            return "the server's owner"
        if self.kind == ACCOUNT_KIND:
            return f"signed in as {self.name}"
        return "not signed in (this page's session)"


OWNER = Visitor()


def oauth_available(environ=os.environ) -> bool:
    """Whether Hugging Face sign-in (OAuth) works here: on a Space (Gradio's own test: SYSTEM=spaces and
    SPACE_ID) whose README asks for it (`hf_oauth: true`, which sets OAUTH_CLIENT_ID). Elsewhere Gradio
    would mock the sign-in with the server's own account, which must not stand for a visitor."""
    return environ.get("SYSTEM") == "spaces" and bool(environ.get("SPACE_ID")) and bool(environ.get("OAUTH_CLIENT_ID"))


def visitor_of(settings, request=None, oauth=None) -> Visitor:
    """The visitor of a Gradio event: `OWNER` in private mode; in public mode the signed-in account of
    `oauth` (a `gr.OAuthToken`), else the session of `request` (a `gr.Request`)."""
    if not settings.public:
        return OWNER
    token = (getattr(oauth, "token", None) or "").strip()
    if token:
        return Visitor(ACCOUNT_KIND, account_of(token), token)
    session = getattr(request, "session_hash", None) or ""
    if not session:
        raise UserError("This public server could not tell your session: reload the page, or sign in with Hugging "
                        "Face.")
    return Visitor(SESSION_KIND, session)


_accounts: dict[str, tuple[str, float]] = {}  # sha256 of a token -> (its account name, when asked)
_accounts_lock = threading.Lock()


def account_of(token: str) -> str:
    """The Hub account name of `token` (its whoami), cached for WHOAMI_TTL_S; a sentence where the Hub
    rejects it or can't be asked."""
    key = hashlib.sha256(token.encode()).hexdigest()
    now = time.monotonic()
    with _accounts_lock:
        known = _accounts.get(key)
        if known is not None and now - known[1] < WHOAMI_TTL_S:
            return known[0]
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    from .hub import error_reason

    try:
        name = str(HfApi().whoami(token=token).get("name") or "")
    except HfHubHTTPError as error:
        status = getattr(getattr(error, "response", None), "status_code", None)
        if status == 401:
            raise UserError("The Hub did not accept your sign-in (the token expired or was revoked): sign in with "
                            f"Hugging Face again, or use a token from {TOKENS_PAGE}.") from None
        raise UserError(f"The Hub could not say who you are ({error_reason(error).replace(token, '***')}): try "
                        "again in a minute.") from None
    except Exception as error:  # offline, unreachable
        log.info("whoami failed: %s", type(error).__name__)
        raise UserError("The Hub can't be reached to check your sign-in: try again in a minute (or sign out to "
                        "work in this page's session).") from None
    if not name:
        raise UserError("The Hub gave no account name for your sign-in: sign in with Hugging Face again.")
    with _accounts_lock:
        _accounts[key] = (name, now)
        if len(_accounts) > 10_000:  # a flood of tokens: start again
            _accounts.clear()
    return name


def mode_text(settings) -> str:
    """The server details' words for the mode."""
    if settings.public:
        return f"**public** ({settings.public_reason}): each visitor's tuned models are theirs"
    return f"**private** ({settings.public_reason or 'single user'})"
