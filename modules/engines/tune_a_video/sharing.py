"""Sharing tuned models on the Hugging Face Hub (no UI here).

- `upload_tuned(folder, repo_name=..., namespace="", token=None, private=True, files=TUNED_FILES)`
  pushes a tuned model's files (and nothing else of the folder) to a model repo, created if
  needed (private by default), in the token's user namespace or an organisation; returns the
  repo id.
- `download_tuned(repo_id, token=None, revision=None, on_progress=None, files=TUNED_FILES)`
  fetches only a tuned model's files into the Hugging Face cache and returns the folder; the Hub
  decides who may read a private model even when a copy is cached, and a model downloaded once
  runs offline.
- `is_repo_id(text)` tells a Hub id ("owner/name") from a local tuned model's name.

Everything goes through huggingface_hub's public API (HfApi.whoami / create_repo /
upload_folder, snapshot_download), so HF_ENDPOINT, HF_HUB_OFFLINE, HF_TOKEN, a stored
`hf auth login` and proxies work as they do for the app's other downloads. Every failure is a
`UserError` whose sentence says what to do. The token is passed to huggingface_hub and nowhere
else: no log line, message or return value holds it (messages that quote the Hub's answer are
scrubbed of it all the same).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path

from tqdm.std import tqdm

from ...errors import UserError, unexpected
from ...job_control import Cancelled
from ...hub import DownloadProgress, Report, error_reason, format_bytes, offline
from .files import CARD_NAME, FILES, WEIGHTS_NAME
from .weights import FORMAT, is_trained_key

log = logging.getLogger(__name__)

TUNED_FILES = FILES  # what a tuned model is, on disk and on the Hub: weights, card, source clip, sample
REQUIRED_FILES = (WEIGHTS_NAME, CARD_NAME)  # without these a folder is no tuned model
TOKENS_PAGE = "https://huggingface.co/settings/tokens"

# One part of a repo id, as the Hub allows it: letters, digits, "-", "_", "." (no "--" or ".."),
# starting and ending with a letter or digit; a repo name is at most 96 characters.
_PART = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
_NAME_MAX = 96

SIGN_IN = (
    "Sign in to share on the Hub: set HF_TOKEN (or run `hf auth login`) or paste a write token "
    f"from {TOKENS_PAGE}."
)
# A public server's visitor (token=False: the server's own token is not theirs to use).
VISITOR_SIGN_IN = (
    "Sign in with Hugging Face to share on the Hub (the Sign in button in Share), or paste a write token from "
    f"{TOKENS_PAGE}: this public server shares nothing with its owner's account."
)
TOKEN_REJECTED = (
    f"The Hub rejected the token (it is mistyped, expired or revoked): create a token at {TOKENS_PAGE} "
    "and sign in with it (HF_TOKEN or the token field)."
)
READ_ONLY_TOKEN = (
    f"This token can only read: sharing needs a write token. Create one at {TOKENS_PAGE} (role \"write\", or a "
    "fine-grained token with write access to the namespace) and sign in with it."
)
UPLOAD_OFFLINE = (
    "HF_HUB_OFFLINE=1 is set, so nothing can be uploaded: unset HF_HUB_OFFLINE (or set it to 0) on a machine "
    "with internet access, then share again."
)


class SharingError(UserError):
    """Sharing a tuned model on the Hub failed; the message says what to do."""


# --------------------------------------------------------------------------- names


def is_repo_id(text: object) -> bool:
    """Whether `text` is a Hub model id ("owner/name"), not the name of a local tuned model
    (local names have no "/")."""
    if not isinstance(text, str):
        return False
    owner, slash, name = text.strip().partition("/")
    return bool(slash) and _valid_part(owner) and _valid_part(name) and len(name) <= _NAME_MAX


def check_repo_id(text: object) -> str:
    """`text` stripped if it is a Hub model id, else a SharingError naming the expected form."""
    if not is_repo_id(text):
        raise SharingError(
            f"{str(text).strip()!r} is not a Hugging Face model id: expected \"owner/name\" (for example "
            "\"alice/tuned-skiing\"), letters, digits, '-', '_' or '.' on each side of the one '/'."
        )
    return str(text).strip()


def _valid_part(part: str) -> bool:
    return bool(_PART.fullmatch(part)) and "--" not in part and ".." not in part


def hub_url(repo_id: str) -> str:
    """The repo's page on the Hub this process talks to (HF_ENDPOINT)."""
    from huggingface_hub import constants

    return f"{constants.ENDPOINT.rstrip('/')}/{repo_id}"


# --------------------------------------------------------------------------- the folder


def tuned_files(folder: str | os.PathLike, files: Sequence[str] = TUNED_FILES) -> list[str]:
    """The files of a tuned model's folder to share (those of `files` it has, the weights and
    the card always), after checking it is one: the Tune-A-Video weights (format and keys, read
    from the header only) and the model card. A SharingError says what is wrong."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SharingError(f"There is no tuned model at {folder}: pick one of the tuned models, or tune one first.")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise SharingError(
            f"{folder.name} is not a tuned model: it has no {' or '.join(missing)} (a finished tuning writes both). "
            "Pick one of the tuned models, or tune one first."
        )
    _check_weights(folder / WEIGHTS_NAME, folder.name)
    return [name for name in _names(files) if (folder / name).is_file()]


def _names(files: Sequence[str]) -> list[str]:
    """`files` with the weights and the card first (file names in the model's folder, no folders)."""
    if isinstance(files, str) or any(not isinstance(f, str) or "/" in f or f in ("", ".", "..") for f in files):
        raise ValueError(f"files must name files of the model's folder, not {files!r}")
    return list(dict.fromkeys((*REQUIRED_FILES, *files)))


def _check_weights(path: Path, label: str) -> None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as file:
            fmt = (file.metadata() or {}).get("format")
            keys = list(file.keys())
    except Exception as error:  # not safetensors at all, truncated
        raise SharingError(f"{label}: {WEIGHTS_NAME} can't be read ({error_reason(error)}); tune the model again.") from error
    if fmt != FORMAT or not keys or not all(is_trained_key(key) for key in keys):
        raise SharingError(
            f"{label}: {WEIGHTS_NAME} is not Tune-A-Video weights (only the tuned query projections and temporal "
            "layers, saved by this app); tune the model again."
        )


# --------------------------------------------------------------------------- upload


def upload_tuned(
    folder: str | os.PathLike,
    *,
    repo_name: str,
    namespace: str = "",
    token: str | None = None,
    private: bool = True,
    files: Sequence[str] = TUNED_FILES,
) -> str:
    """Push the tuned model in `folder` to the Hub repo `namespace/repo_name` and return its id.

    The token is `token`, else huggingface_hub's own (HF_TOKEN, then a stored `hf auth login`);
    `token=False` (a public server's visitor without one) never falls back to the server's.
    `namespace` "" is the token's user; an organisation must be one the user belongs to. The repo
    is created if it doesn't exist (`private`: only its owner sees it); an existing repo keeps
    its visibility and gets a new commit with the model's files (unchanged files are skipped).
    Only `files` (TUNED_FILES; a caller may add its own, such as a listing's info file) are
    sent, never anything else in the folder.
    Raises SharingError (a UserError): not a tuned model, a bad repo name, no token, a token the
    Hub rejects or one that can only read, no write access to the namespace, offline mode, the
    Hub unreachable or refusing the upload.
    """
    files = tuned_files(folder, files)
    name = str(repo_name or "").strip()
    if not _valid_part(name) or len(name) > _NAME_MAX:
        raise SharingError(
            f"{name!r} can't name a Hub repo: use up to {_NAME_MAX} letters, digits, '-', '_' or '.', starting and "
            "ending with a letter or digit (for example \"tuned-skiing\")."
        )
    namespace = str(namespace or "").strip()
    if namespace and not _valid_part(namespace):
        raise SharingError(f"{namespace!r} is not a Hub user or organisation name; leave it empty for your own.")
    secret = _token(token)
    if secret is None:
        raise SharingError(VISITOR_SIGN_IN if token is False else SIGN_IN)
    if offline():
        raise SharingError(UPLOAD_OFFLINE)
    from huggingface_hub import HfApi

    api = HfApi(token=secret)
    repo_id = f"{namespace}/{name}" if namespace else name
    try:
        me = api.whoami(token=secret)
        user = str(me.get("name") or "")
        role = ((me.get("auth") or {}).get("accessToken") or {}).get("role")
        if role == "read":
            raise SharingError(READ_ONLY_TOKEN)
        namespace = namespace or user
        repo_id = f"{namespace}/{name}"
        orgs = {org.get("name") for org in me.get("orgs") or [] if isinstance(org, dict)}
        if namespace != user and namespace not in orgs:
            raise SharingError(
                f"You (signed in as {user}) are not a member of the organisation {namespace}: share to your own "
                f"namespace ({user}), or ask an admin of {namespace} to add you with write access."
            )
        if private and _is_public(api, repo_id, secret):
            raise SharingError(
                f"{repo_id} exists and is public, so a private upload there would be public: untick Private to "
                "update it in public, or pick another repo name (a new repo is made private)."
            )
        log.info("sharing tuned model %s as %s (%s)", Path(folder).name, repo_id, "private" if private else "public")
        api.create_repo(repo_id, private=private, exist_ok=True, token=secret)
        card = _card_title(Path(folder))
        api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            allow_patterns=files,
            commit_message=f"Upload Tune-A-Video model{': ' + card if card else ''}",
            token=secret,
        )
    except UserError:
        raise
    except Exception as error:
        raise _upload_failure(error, repo_id, namespace, secret) from error
    log.info("shared tuned model %s: %s", repo_id, hub_url(repo_id))
    return repo_id


def _is_public(api, repo_id: str, secret: str) -> bool:
    """Whether `repo_id` exists and is public (a repo this token can't see is made anew, private)."""
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        return api.model_info(repo_id, token=secret).private is False
    except RepositoryNotFoundError:
        return False


def _token(token: str | bool | None) -> str | None:
    """The token to use: the argument, else huggingface_hub's lookup (HF_TOKEN, stored login); none for
    `False` (a public server's visitor: the server's own token is not theirs)."""
    if token is False:
        return None
    token = (token or "").strip()
    if token:
        return token
    from huggingface_hub import get_token

    return get_token()


def _hub_token(token: str | bool | None) -> str | bool | None:
    """What huggingface_hub's calls get: the token given, or False (never the stored one) for `False`,
    or None (its own lookup)."""
    secret = token.strip() if isinstance(token, str) else ""
    return secret or (False if token is False else None)


def _card_title(folder: Path) -> str:
    """The training prompt from the model card's header, for the commit message ("" if none)."""
    try:
        from huggingface_hub import ModelCard

        prompt = ModelCard((folder / CARD_NAME).read_text(encoding="utf-8")).data.to_dict().get("training_prompt")
    except Exception:
        return ""
    return str(prompt)[:80] if prompt else ""


def _status(error: BaseException) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def _unreachable(error: BaseException) -> bool:
    import httpx2  # huggingface_hub's HTTP client: its transport errors are what "no connection" raises

    from huggingface_hub.errors import HfHubHTTPError

    return not isinstance(error, HfHubHTTPError) and isinstance(error, (httpx2.TransportError, OSError))


def _upload_failure(error: Exception, repo_id: str, namespace: str, secret: str) -> UserError:
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError

    if isinstance(error, OfflineModeIsEnabled):
        return SharingError(UPLOAD_OFFLINE)
    if isinstance(error, RepositoryNotFoundError):
        return SharingError(
            f"The Hub lost {repo_id} during the upload (deleted, renamed, or the token can't see it): check it on "
            f"{hub_url(repo_id)} and share again."
        )
    if isinstance(error, HfHubHTTPError):
        status = _status(error)
        if status == 401:
            return SharingError(TOKEN_REJECTED)
        if status == 403:
            return SharingError(
                f"The token has no write access to {namespace}: use a write token of a member of {namespace} (a "
                f"fine-grained token needs write access to it), or share to your own namespace."
            )
        if status == 412:
            return SharingError(f"Someone pushed to {repo_id} during the upload: share again.")
        if status == 429:
            return SharingError("The Hub asks to slow down (too many requests): wait a minute and share again.")
        if status is not None and status >= 500:
            return SharingError(f"The Hub failed (HTTP {status}); nothing is lost: share again in a few minutes.")
        return SharingError(_scrub(f"The Hub refused the upload to {repo_id} ({error_reason(error)}).", secret))
    if _unreachable(error):
        return SharingError(_scrub(
            f"The Hub can't be reached ({error_reason(error)}): check the internet connection (and HTTPS_PROXY), then "
            "share again.", secret))  # fmt: skip
    if isinstance(error, ValueError):  # huggingface_hub's checks of the Hub's answers (model card, LFS)
        return SharingError(_scrub(f"The Hub refused the upload to {repo_id} ({error_reason(error)}).", secret))
    return unexpected(error, "sharing the tuned model")


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


# --------------------------------------------------------------------------- download


def download_tuned(
    repo_id: str,
    *,
    token: str | None = None,
    revision: str | None = None,
    on_progress: Report | None = None,
    files: Sequence[str] = TUNED_FILES,
    max_bytes: int = 0,
) -> Path:
    """The folder of the tuned model `repo_id` in the Hugging Face cache, downloading only its
    files (`files`: TUNED_FILES, or a caller's list) that are not there yet. The Hub is asked
    first whether the token may read the repo (a cached copy of a private model is not given to
    a token the Hub refuses); offline, or with the Hub out of reach, a copy downloaded before is
    used. `token`: for a private repo (else HF_TOKEN / a stored login; `False`: none, not even those).
    `on_progress(fraction, text)` hears the bytes downloaded. `max_bytes` (0: no cap): the most the
    model's files may weigh on the Hub, asked before any byte is downloaded (a server's cap).
    Raises SharingError (a UserError): a malformed id, a repo that doesn't exist or that the
    token can't see, a rejected token, an unknown revision, offline or unreachable with nothing
    cached, a repo that is not a tuned model, one heavier than `max_bytes`.
    """
    repo_id = check_repo_id(repo_id)
    secret = _hub_token(token)
    from huggingface_hub import snapshot_download

    sizes = _check_access(repo_id, revision or None, secret)
    _check_size(repo_id, sizes, _names(files), max_bytes)
    try:
        folder = Path(
            snapshot_download(
                repo_id,
                revision=revision or None,
                allow_patterns=_names(files),
                token=secret,
                tqdm_class=_byte_bars(repo_id, on_progress) if on_progress is not None else None,
            )
        )
    except Cancelled:  # the caller's Stop, raised from `on_progress`: finished files stay in the cache
        raise
    except Exception as error:
        raise _download_failure(error, repo_id, revision, secret) from error
    if not (folder / WEIGHTS_NAME).is_file():
        raise SharingError(
            f"{repo_id} is not a Tune-A-Video model: it has no {WEIGHTS_NAME}. Check the id (a model shared from "
            "this app's Tune tab has one)."
        )
    _check_weights(folder / WEIGHTS_NAME, repo_id)
    if on_progress is not None:
        on_progress(1.0, f"{repo_id} is ready")
    return folder


def _check_access(repo_id: str, revision: str | None, secret: str | None) -> dict[str, int]:
    """Ask the Hub whether this token may read the repo, and the sizes of its files (none where the Hub
    can't be asked). snapshot_download alone would fall back to a cached copy when the Hub says no, so on
    a shared server anyone could run a private model that its owner fetched; here a refusal (no such repo
    or revision to this token, a rejected token) is final, and only a Hub that can't be reached (or
    offline mode) leaves the choice to the cache."""
    if offline():
        return {}
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        info = HfApi().model_info(repo_id, revision=revision, token=secret, files_metadata=True)
    except (RepositoryNotFoundError, RevisionNotFoundError) as error:
        raise _download_failure(error, repo_id, revision, secret) from error
    except HfHubHTTPError as error:
        if _status(error) in (401, 403):
            raise _download_failure(error, repo_id, revision, secret) from error
        return {}
    except Exception:  # the Hub out of reach: a copy downloaded before may do
        log.debug("the Hub can't be reached to check %s; a cached copy may be used", repo_id, exc_info=True)
        return {}
    return {sibling.rfilename: int(sibling.size or 0) for sibling in info.siblings or ()}


def _check_size(repo_id: str, sizes: dict[str, int], names: Sequence[str], max_bytes: int) -> None:
    """Refuse, before downloading, a model whose files weigh more on the Hub than the server takes."""
    total = sum(sizes.get(name, 0) for name in names)
    if max_bytes and total > max_bytes:
        raise SharingError(
            f"{repo_id} is {format_bytes(total)} to download, more than the {format_bytes(max_bytes)} this server "
            "takes for a tuned model (T2VZ_MAX_TUNED_DOWNLOAD_MB): run a smaller one, or run the app on your own "
            "machine."
        )


def _download_failure(error: Exception, repo_id: str, revision: str | None, secret: str | None) -> UserError:
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(error, GatedRepoError):
        return SharingError(f"{repo_id} is gated: accept its conditions on {hub_url(repo_id)} and sign in.")
    if isinstance(error, RepositoryNotFoundError):
        signed_in = isinstance(secret, str) or (secret is None and _token(None) is not None)
        why = "the token you signed in with has no access to it" if signed_in else "you are not signed in"
        how = "with Hugging Face" if secret is False else "(HF_TOKEN or the token field) with a token of its owner"
        return SharingError(f"{repo_id} is not on the Hub, or it is private and {why}: check the id, or sign in {how}.")
    if isinstance(error, RevisionNotFoundError):
        return SharingError(f"{repo_id} has no revision {revision!r}: leave the revision empty for its latest upload.")
    if isinstance(error, LocalEntryNotFoundError):  # nothing (or not all of it) cached, and no Hub to ask
        if offline():
            return SharingError(
                f"{repo_id} is not downloaded and HF_HUB_OFFLINE=1 is set: unset HF_HUB_OFFLINE (or set it to 0) "
                "with internet access to download it once; after that it runs offline."
            )
        return SharingError(
            f"{repo_id} is not downloaded and the Hub can't be reached: check the internet connection (and "
            "HTTPS_PROXY) and try again; once downloaded it runs offline."
        )
    if isinstance(error, HfHubHTTPError):
        status = _status(error)
        if status == 401:
            return SharingError(TOKEN_REJECTED)
        if status is not None and status >= 500:
            return SharingError(f"The Hub failed (HTTP {status}) sending {repo_id}: try again in a few minutes.")
        return SharingError(_scrub(f"The Hub refused to send {repo_id} ({error_reason(error)}).", secret))
    if _unreachable(error):
        return SharingError(_scrub(
            f"Downloading {repo_id} failed ({error_reason(error)}): check the internet connection (and HTTPS_PROXY) and "
            "try again; finished files are kept.", secret))  # fmt: skip
    return unexpected(error, f"downloading {repo_id}")


def _byte_bars(label: str, report: Report) -> type[tqdm]:
    """A silent tqdm class for snapshot_download that reports its downloaded bytes to `report`
    (through hub.DownloadProgress: bytes, total, speed). snapshot_download feeds the same bytes to
    two byte bars (transfer and written); the furthest one, against the smallest total, counts."""
    progress = DownloadProgress(label, 0, report)
    bars: list[tqdm] = []
    lock = threading.Lock()

    class Bar(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.pop("name", None)
            self.counted = 0
            self.is_bytes = kwargs.get("unit") == "B"
            super().__init__(*args, **{**kwargs, "disable": True})
            if self.is_bytes:
                with lock:
                    bars.append(self)

        def update(self, n=1):
            if not self.is_bytes or not n:
                return
            with lock:
                self.counted += int(n)
                lead = max(bar.counted for bar in bars)
                totals = [int(bar.total) for bar in bars if bar.counted == lead and bar.total]
                progress.total = min(totals) if totals else 0
                if lead > progress.done:
                    progress.add(lead - progress.done)

    return Bar
