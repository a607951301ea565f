"""ZeroGPU: run one sampling call on a Hugging Face ZeroGPU Space, the way `spaces` (0.51.3) does it.

What `spaces` does (read from its source):
- `spaces.GPU` (`spaces/zero/decorator.py::GPU/_GPU`) returns the function unchanged unless
  `spaces.config.Config.zero_gpu` (env `SPACES_ZERO_GPU=true`, which also needs
  `SPACES_ZERO_DEVICE_API_URL`). It caches one wrapper per function (`decorated_cache`), so a
  per-call duration must be a callable of the call's arguments, not a new decoration.
- On ZeroGPU, importing `spaces` patches torch in this process (`spaces/zero/torch/patching.py`):
  `.to("cuda")` keeps weights on the CPU, registered as fake CUDA tensors.
- A call (`spaces/zero/wrappers.py::regular_function_wrapper.gradio_handler`) asks the device
  API for a GPU (`client.schedule`, sending the duration), forks a worker (`Worker`, a
  `multiprocessing.get_context('fork')` process), sends the arguments pickled (`arg_queue`); the
  child (`thread_wrapper` → `worker_init`: `client.allow`, `torch.unpatch/init/move`, the registered
  weights onto the real GPU) runs the function and sends back `OkResult(value)` pickled
  (`res_queue`). A child's exception comes back only as its class name and traceback text
  (`exception_result`), raised in the parent as a `gr.Error("ZeroGPU worker error")` — unless it
  is a `gr.Error`. The child is kept and reused for a later call when the API says the GPU is
  idle, and ends on SIGTERM (`signal.signal(SIGTERM, ... arg_queue.close)`).

So here:
- Loading runs in the parent, outside the GPU call (a download never counts against the GPU
  duration); only the `sample()` callable runs in the child. What the child caches is lost.
- One module-level function, `_gpu_entry(call_id)`, is decorated (once, at import when `spaces`
  is already imported: `spaces` reports the Space's GPU functions at launch), with a callable
  duration. The call itself (sample, control, channels) waits in `_calls`, which the child
  inherits through the fork: only the call id is pickled.
- Every child ends after its one call (it raises SIGTERM on itself: `spaces` then closes its
  argument queue and the child exits once its result is sent) and the parent waits for that, so
  the next call forks afresh and sees the models loaded since. A reused child that does not know
  the call (`stale`) ends and the call is retried once.
- Cancel: a fork-context Event made before the call is the child's `control.cancel_event`;
  `should_stop` is never called in the child. In the parent, a relay thread polls
  `control.cancel_event` / `control.should_stop()` and sets the shared Event.
- Progress: the child's `control.progress` writes (fraction, text, last step, last frame) into a
  fork-context pipe; the relay thread (run in a copy of the caller's context, so Gradio's progress
  finds its event) hands it to the parent's `control.publish` (the fraction is already placed on
  the job's bar), so the parent's control knows where the job stands and its progress shows it.
- Errors: the child returns its exception as a value (made sure to survive pickling) and the
  parent raises it: `Cancelled`, `UserError`s and out-of-memory errors arrive as themselves.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import math
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import UserError
from .job_control import JobControl, duration_text

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_DURATION_S = 300  # the most one call asks ZeroGPU for
RELAY_POLL_S = 0.02  # how often the parent passes a cancel on to the child
CHILD_EXIT_TIMEOUT_S = 10.0  # how long the parent waits for a finished child to end

_fork = multiprocessing.get_context("fork")


def zerogpu_spaces():
    """The `spaces` module when this process runs on ZeroGPU; None elsewhere (or without it)."""
    try:
        import spaces  # noqa: PLC0415 - only installed (and only active) on Hugging Face Spaces
    except ImportError:
        return None
    config = getattr(getattr(spaces, "config", None), "Config", None)
    return spaces if getattr(config, "zero_gpu", False) else None


def gpu_duration(duration_s: float) -> int:
    """Seconds to ask ZeroGPU for: the estimate rounded up, within 1..MAX_DURATION_S."""
    return int(min(max(math.ceil(duration_s), 1), MAX_DURATION_S))


def check_gpu_time(estimate_s: float, hint: str) -> None:
    """On ZeroGPU, refuse a job whose GPU time is estimated past what one call may ask for (`hint`: how to ask for
    less): asked for the limit, it would be killed there, its work lost. Elsewhere, nothing."""
    if zerogpu_spaces() is not None and estimate_s > MAX_DURATION_S:
        raise UserError(f"This job needs about {duration_text(estimate_s)} of GPU time, more than the "
                        f"{duration_text(MAX_DURATION_S)} one job may have on this Space (ZeroGPU): {hint}.")


def run_on_gpu(fn: Callable[[], T], control: JobControl, duration_s: float) -> T:
    """Run `fn()` (sampling only) under `spaces.GPU` on ZeroGPU, else just call it here.

    On ZeroGPU `fn` runs in a forked child: it must return something picklable (numpy arrays,
    tuples of them), and must report to `control` (the one given here) for cancel and progress.
    """
    spaces = zerogpu_spaces()
    if spaces is None:
        return fn()
    entry = _decorated_entry(spaces)
    receiver, sender = _fork.Pipe(duplex=False)
    call = _Call(fn, control, gpu_duration(duration_s), os.getpid(), _fork.Event(), sender)
    call_id = next(_call_ids)
    _calls[call_id] = call
    relay = _Relay(call, receiver)
    relay.start()
    outcome: _Outcome | None = None
    try:
        for _attempt in range(2):
            outcome = entry(call_id)
            if not outcome.stale:
                break
            log.warning("ZeroGPU reused a worker forked before this call; retrying in a fresh one")
            _wait_for_exit(outcome.pid)
        else:
            raise RuntimeError("ZeroGPU kept handing this call to an outdated worker process.")
    finally:
        relay.stop()
        for pid in {relay.child_pid, outcome.pid if outcome else None}:
            _wait_for_exit(pid)
        del _calls[call_id]
        receiver.close()
        sender.close()
    if outcome.error is not None:
        raise outcome.error
    return outcome.value


# ---------------------------------------------------------------------------------- internals
@dataclass
class _Call:
    sample: Callable[[], Any]
    control: JobControl
    duration: int
    parent_pid: int
    cancel: Any  # a fork-context Event: set in the parent, seen in the child
    sender: Any  # the child's end of a one-way pipe to the parent


@dataclass
class _Outcome:
    """What the GPU function returns (pickled back by `spaces`): a value or an error, never a raise."""

    pid: int
    value: Any = None
    error: BaseException | None = None
    stale: bool = False  # the child was forked before this call existed


_calls: dict[int, _Call] = {}
_call_ids = itertools.count(1)
_entries: dict[int, tuple[Any, Callable[[int], _Outcome]]] = {}
_entries_lock = threading.Lock()


def _duration_of(call_id: int) -> int:
    """The duration `spaces` asks for, computed (in the parent) from the call's arguments."""
    call = _calls.get(call_id)
    return call.duration if call is not None else 60


def _gpu_entry(call_id: int) -> _Outcome:
    """The one function given to `spaces.GPU`: on ZeroGPU it runs in a forked child."""
    pid = os.getpid()
    call = _calls.get(call_id)
    if call is not None and pid == call.parent_pid:  # not forked (a stand-in for spaces.GPU)
        return _Outcome(pid, value=call.sample())
    _end_after_this_call()
    if call is None:
        return _Outcome(pid, stale=True)
    _attach(call)
    try:
        call.control.check()  # cancelled while waiting for a GPU
        return _Outcome(pid, value=call.sample())
    except Exception as error:  # noqa: BLE001 - every error goes back to the parent as a value
        return _Outcome(pid, error=portable_error(error))


def _decorated_entry(spaces) -> Callable[[int], _Outcome]:
    with _entries_lock:
        cached = _entries.get(id(spaces))
        if cached is None or cached[0] is not spaces:
            cached = (spaces, spaces.GPU(duration=_duration_of)(_gpu_entry))
            _entries[id(spaces)] = cached
        return cached[1]


def _end_after_this_call() -> None:
    """In the child: have `spaces` end this worker once its result is sent, so none is reused.

    `spaces` answers SIGTERM by closing the worker's argument queue (`thread_wrapper`); the child
    then sends this call's result and leaves its loop. Without that handler, SIGTERM would kill
    the child at once, so it is only raised when a Python handler is installed.
    """
    handler = signal.getsignal(signal.SIGTERM)
    if callable(handler) and handler not in (signal.SIG_DFL, signal.SIG_IGN):
        os.kill(os.getpid(), signal.SIGTERM)


def _attach(call: _Call) -> None:
    """In the child: point its copy of the control at the shared cancel flag and the pipe."""
    control, sender, lock = call.control, call.sender, threading.Lock()

    def progress(fraction: float, text: str) -> None:
        try:
            with lock:  # the fraction is on the job's bar already; where it stands goes along for Stop's message
                sender.send(control.report_message(fraction, text))
        except (OSError, ValueError):
            pass  # the parent stopped listening; sampling goes on

    control.cancel_event = call.cancel
    control.should_stop = _never  # Gradio's queue lives in the parent: the relay asks it there
    control.progress = progress
    try:
        with lock:
            sender.send(("pid", os.getpid()))
    except (OSError, ValueError):
        pass


def _never() -> bool:
    return False


def portable_error(error: BaseException) -> BaseException:
    """`error` as it can cross a pickle: itself when it survives one, else a stand-in with its text.

    The child's traceback is kept as a note (shown with the traceback, never in the message).
    A stand-in keeps the message, so a `UserError` stays one and "out of memory" stays visible.
    """
    detail = "".join(traceback.format_exception(error)).rstrip()
    try:
        error.add_note(f"[raised in ZeroGPU worker process {os.getpid()}]\n{detail}")
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # noqa: BLE001 - any failure to cross means a stand-in
        kind = UserError if isinstance(error, UserError) else RuntimeError
        text = str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"
        stand_in = kind(text)
        stand_in.add_note(f"[raised in ZeroGPU worker process {os.getpid()}]\n{detail}")
        return stand_in


class _Relay:
    """In the parent while the child samples: progress comes in, a cancel goes out."""

    def __init__(self, call: _Call, receiver):
        self.call, self.receiver = call, receiver
        self.child_pid: int | None = None
        self._done = threading.Event()
        context = contextvars.copy_context()  # Gradio's progress looks up its event in here
        self._thread = threading.Thread(target=context.run, args=(self._loop,), name="zerogpu-relay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop after forwarding what the child sent (it has all arrived: the result came after)."""
        self._done.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            self._pass_cancel_on()
            try:
                ready = self.receiver.poll(RELAY_POLL_S)
                message = self.receiver.recv() if ready else None
            except (EOFError, OSError):
                return
            if message is not None:
                self._handle(message)
            elif self._done.is_set():
                return

    def _pass_cancel_on(self) -> None:
        call, control = self.call, self.call.control
        if call.cancel.is_set():
            return
        try:
            stop = control.cancel_event.is_set() or control.should_stop()
        except Exception:  # noqa: BLE001 - a broken probe must not end the relay
            log.exception("should_stop failed")
            return
        if stop:
            control.cancel_event.set()
            call.cancel.set()

    def _handle(self, message: tuple) -> None:
        if message[0] == "pid":
            self.child_pid = message[1]
        elif message[0] == "progress":
            try:
                self.call.control.publish(*message[1:])
            except Exception:  # noqa: BLE001 - progress is best effort
                log.exception("progress callback failed")


def _wait_for_exit(pid: int | None) -> None:
    """Wait until a finished child has ended (so `spaces` cannot reuse it); kill it if it lingers."""
    timeout_s = CHILD_EXIT_TIMEOUT_S
    if pid is None or pid == os.getpid() or _ended_within(pid, timeout_s):
        return
    log.warning("ZeroGPU worker %s did not end; killing it", pid)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    _ended_within(pid, timeout_s)


def _ended_within(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while _alive(pid) or not _reaped(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def _alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie has ended: `spaces` reaps it and sees it dead)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _reaped(pid: int) -> bool:
    """Whether the `Process` object of child `pid` (if any) knows that it ended.

    `spaces` reuses a worker while `process.is_alive()`; that reads the exit status, which its
    sentinel thread's `join()` collects. Between that thread's `waitpid` and its storing the
    status, `is_alive()` still says True (its own `waitpid` finds nothing left to reap), so the
    next call would go to the dead worker ("GPU task aborted"). Wait for the status here.
    """
    from multiprocessing import process  # noqa: PLC0415

    for child in list(process._children):  # noqa: SLF001 - the registry `is_alive` reads too
        if child.pid == pid:
            popen = getattr(child, "_popen", None)
            return popen is None or popen.returncode is not None
    return True


def prepare() -> None:
    """Decorate the GPU function now when `spaces` is already imported and on ZeroGPU.

    `spaces` reports the Space's GPU functions when the app launches (`spaces/zero/__init__.py`
    `startup`: nothing decorated, no report), so this runs at import, before the launch.
    """
    if "spaces" in sys.modules and (spaces := zerogpu_spaces()) is not None:
        _decorated_entry(spaces)


prepare()
