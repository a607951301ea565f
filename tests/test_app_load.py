"""Many clients at once, through gradio_client (tiny preset, tiny jobs).

The bursts run the Edge preview (a 2-frame clip's Canny maps, written as a video): a GPU job like
any other (same queue, same generic job), cheap enough that 20 of them finish well inside the
bound on a shared 2-core machine.

Every client gets a video or our "The queue is full ... try again in about N s" (never Gradio's
fixed "Queue is full! Please try again."), none hangs or is lost, and waiting jobs see their
queue position and an ETA. Results stay downloadable for the outputs' TTL, and no longer.
"""

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import ValidationError
from gradio_client.utils import Status

from gradio_client import handle_file

from modules import video_io
from tests.test_app_client import text2video_args, video_path

pytestmark = pytest.mark.slow  # 20 clients at once, and more launched apps (a small queue, a short TTL)

CLIENTS = 20
BOUND_S = 90  # the whole burst, from the first submit to the last answer
TINY_JOB = dict(num_frames=2, width=64, height=64, steps=2, chunk_size=2)


def preview_args(video: str, i: int = 0) -> list:
    """Edge preview of 0.5 s at 4 fps, long side 64: 2 frames; each `i` starts on other frames of the 15 fps clip."""
    return [handle_file(video), 0.07 * i, 0.07 * i + 0.5, 4, 64, 100, 200]
QUEUE_FULL = re.compile(
    r"The queue is full: (\d+) jobs are waiting for the GPU, each taking about \d+ s\. "
    r"Please try again in about (\d+) s\."
)


def make_clients(url: str, count: int, folder) -> list[Client]:
    def make(_):
        return Client(url, analytics_enabled=False, verbose=False, download_files=str(folder))

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(make, range(count)))


def burst(clients: list[Client], video: str):
    """Submit one tiny job per client at once; (outcomes, statuses seen, seconds taken).

    An outcome is ("video", result) or ("full", message); anything else fails the test.
    """
    start = time.monotonic()
    jobs = [client.submit(*preview_args(video, i), api_name="/edge_preview") for i, client in enumerate(clients)]
    seen: list[tuple[int, Status, int | None, float | None]] = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            for i, job in enumerate(jobs):
                if not job.done():
                    status = job.status()
                    seen.append((i, status.code, status.rank, status.eta))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    outcomes = []
    try:
        for job in jobs:
            remaining = BOUND_S - (time.monotonic() - start)
            try:
                outcomes.append(("video", job.result(timeout=max(remaining, 1))))
            except ValidationError as error:
                outcomes.append(("full", str(error)))
    finally:
        stop.set()
        watcher.join()
    return outcomes, seen, time.monotonic() - start


def test_twenty_clients_at_once_all_get_a_video_with_position_and_eta(served, client_factory, sample_videos, tmp_path):
    """The session app's queue (20 waiting) takes all 20; the ones waiting see their rank and an ETA."""
    client_factory().predict(*preview_args(sample_videos["mp4"]), api_name="/edge_preview")  # Gradio has a duration
    clients = make_clients(served[2], CLIENTS, tmp_path)
    outcomes, seen, took = burst(clients, sample_videos["mp4"])
    assert took < BOUND_S
    assert [kind for kind, _ in outcomes] == ["video"] * CLIENTS
    videos = [video_path(result) for _, result in outcomes]
    assert all(video_io.read_video(video)[0].shape == (2, 40, 64, 3) for video in videos)
    waiting = [(rank, eta) for _, code, rank, eta in seen if code == Status.IN_QUEUE and rank is not None]
    assert waiting and max(rank for rank, _ in waiting) >= 5  # many stood in line, each told where
    assert any(eta is not None and eta > 0 for _, eta in waiting)  # ... and about how long


def test_a_full_queue_says_when_to_try_again(app_factory, sample_videos, tmp_path):
    """A second app with room for 3 waiting jobs: the rest are told, in our words, when to come back."""
    limit = 3
    studio, _, url = app_factory(queue_size=limit)
    first = Client(url, analytics_enabled=False, verbose=False, download_files=str(tmp_path))
    first.predict(*preview_args(sample_videos["mp4"]), api_name="/edge_preview")  # N comes from a real duration
    outcomes, seen, took = burst(make_clients(url, CLIENTS, tmp_path), sample_videos["mp4"])
    assert took < BOUND_S
    videos = [result for kind, result in outcomes if kind == "video"]
    refusals = [message for kind, message in outcomes if kind == "full"]
    assert len(videos) + len(refusals) == CLIENTS  # nobody lost
    assert len(videos) >= limit and refusals
    for message in refusals:
        found = QUEUE_FULL.search(message)
        assert found, message
        assert int(found.group(1)) == limit and int(found.group(2)) >= 5
        assert "Queue is full!" not in message
    ranks = [rank for _, code, rank, _ in seen if code == Status.IN_QUEUE and rank is not None]
    assert ranks and max(ranks) < limit  # never more than `limit` waiting
    assert all(len(video_io.read_video(video_path(result))[0]) == 2 for result in videos)
    # A place frees up once the line moves: trying again later works.
    assert first.predict(**text2video_args(**TINY_JOB, seed=99), api_name="/text2video")[3] == 99
    assert not studio.manager.lock.locked()


def test_results_stay_downloadable_for_the_ttl_then_go(app_factory):
    """Gradio's copy of a result (what the page links to) and our folder both live for the TTL."""
    ttl = 3
    studio, demo, url = app_factory(outputs_ttl_s=ttl)
    client = Client(url, analytics_enabled=False, verbose=False, download_files=False)
    video, gif, params, _ = client.predict(**text2video_args(**TINY_JOB), api_name="/text2video")
    returned = time.monotonic()
    links = [item["url"] for item in (video, gif, params)]
    folder = next(studio.outputs.root.glob("*-text2video-*"))
    gone_at = None
    while gone_at is None and time.monotonic() - returned < ttl + demo.delete_cache[0] + 5:
        try:
            codes = {httpx.get(link).status_code for link in links}
        except httpx.RemoteProtocolError:  # deleted while being sent: gone as well
            codes = {"cut"}
        if codes != {200}:
            gone_at = time.monotonic()
        time.sleep(0.2)
    assert gone_at is not None, "Gradio kept the result's files past the TTL"
    assert gone_at - returned >= ttl - 0.5  # not before the TTL
    assert folder.is_dir()
    studio.outputs.sweep()  # our own folders go after the same TTL (swept on each new job)
    assert not folder.exists()
