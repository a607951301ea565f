"""A full queue says so in our words, with when to try again.

Gradio 6.31 refuses a job past `queue(max_size=...)` with its own text (the Python client even
replaces it with a fixed "Queue is full! Please try again."), and `validator=` runs too late to
help: Gradio checks the size before it calls the validator. So the queue's `push` is wrapped:
a GPU job that finds `limit` GPU jobs already waiting is refused with our sentence, as a
validation error (HTTP 422), which both the page and gradio_client show as written
(gradio_client raises `ValidationError("... - queue: The queue is full ...")`). The check and
Gradio's enqueue run without an await between them, so a burst of submissions cannot overshoot.
The wait is estimated from the worker's recent job durations.
"""

from __future__ import annotations

import logging
import math
import statistics

import gradio as gr

log = logging.getLogger(__name__)

GPU_QUEUE = "gpu"  # the concurrency_id every GPU event shares (common.gpu_options)
RECENT_JOBS = 10  # durations that the wait estimate averages
DEFAULT_JOB_S = 60.0  # the estimate before any job has run
MIN_RETRY_S = 5


def recent_job_seconds(studio) -> float:
    """Mean duration of the last jobs on the workers (loading and sampling), or a default."""
    spans = sorted(span for worker in studio.pool.workers for span in worker.busy_log)[-RECENT_JOBS:]
    return statistics.fmean(end - start for start, end in spans) if spans else DEFAULT_JOB_S


def retry_after_s(studio) -> int:
    """About when a place in the queue frees up: when the job in front of the line is done.

    Rounded up to 5 s; at least 5 s.
    """
    per_slot = recent_job_seconds(studio) / max(len(studio.pool), 1)
    return max(MIN_RETRY_S, int(math.ceil(per_slot / MIN_RETRY_S) * MIN_RETRY_S))


def queue_full_message(studio, waiting: int) -> str:
    job_s = recent_job_seconds(studio)
    return (
        f"The queue is full: {waiting} jobs are waiting for the GPU, each taking about {job_s:.0f} s. "
        f"Please try again in about {retry_after_s(studio)} s."
    )


def waiting_gpu_jobs(queue) -> int:
    event_queue = queue.event_queue_per_concurrency_id.get(GPU_QUEUE)
    return len(event_queue.queue) if event_queue is not None else 0


def refuse_when_full(demo: gr.Blocks, studio, limit: int) -> bool:
    """Wrap the demo's queue so that a GPU job past `limit` waiting gets our message.

    Returns False (and leaves Gradio's own max_size check in place) if this Gradio's queue
    doesn't look as expected; then Gradio's "Queue is full" is what users read.
    """
    from gradio import route_utils

    queue = getattr(demo, "_queue", None)
    push = getattr(queue, "push", None)
    if push is None or not hasattr(queue, "event_queue_per_concurrency_id") or not hasattr(route_utils, "get_fn"):
        log.warning("this Gradio's queue has no push() to wrap: a full queue shows Gradio's own message")
        return False

    async def push_unless_full(body, request, username):
        try:
            fn = route_utils.get_fn(demo, None, body)
            gpu_job = getattr(fn, "concurrency_id", None) == GPU_QUEUE
        except Exception:  # an unknown function: Gradio's push answers that itself
            gpu_job = False
        waiting = waiting_gpu_jobs(queue) if gpu_job else 0
        if gpu_job and waiting >= limit:
            message = queue_full_message(studio, waiting)
            return False, [{"__type__": "validate", "is_valid": False, "message": message,
                            "parameter_name": "queue"}], "validator_error"
        return await push(body=body, request=request, username=username)

    queue.push = push_unless_full
    queue.max_size = None  # ours counts GPU jobs; Gradio's would count every event, with its own text
    return True


def line_sentence(demo: gr.Blocks, studio, *, queued: bool = False) -> str:
    """Where a job pressed now stands, in words: "Starting now." or "2 jobs ahead of yours, about 40 s."

    Jobs ahead are the ones on the workers now (`Studio.activity`) and the ones already waiting for the GPU
    (`queued`: the job itself is one of those, so one fewer); the wait is their count over the workers, times
    the recent jobs' mean duration.
    """
    queue = getattr(demo, "_queue", None)
    waiting = waiting_gpu_jobs(queue) if queue is not None and hasattr(queue, "event_queue_per_concurrency_id") else 0
    waiting = max(waiting - 1, 0) if queued else waiting
    busy = len(studio.activity())
    workers = max(len(studio.pool), 1)
    if busy < workers and waiting == 0:
        return "Starting…"
    ahead = busy + waiting
    wait_s = math.ceil(ahead / workers) * recent_job_seconds(studio)
    return f"Waiting for the worker: {ahead} job{'s' if ahead != 1 else ''} ahead of yours, about {wait_s:.0f} s."
