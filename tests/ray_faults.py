"""What a test asks of a Ray replica's process, since a test can't patch a replica as it patches its own.

The local test cluster (tests/conftest.py `start_local_ray`) runs `install` in each Ray worker
process at start (Ray's `worker_process_setup_hook`):
- A prompt that starts with `OOM_ALWAYS` makes the zero-shot engine's sampler raise CUDA's
  out-of-memory error at every attempt (the job fails with the out-of-memory sentence), one that
  starts with `OOM_ONCE` at the job's first attempt only (the retry with half the chunk succeeds),
  one that starts with `BUG` an unexpected KeyError: as tests/test_app_queue.py and
  test_app_client.py patch the engine locally. Any other prompt samples as usual.
- While the file named by T2VZ_TEST_SLOW_STEPS_FLAG exists, every step of every job takes
  `SLOW_STEP_S` longer (tests/test_browser.py's `slow_steps`: time to watch and to press Stop).
"""

import os
import time

OOM_ALWAYS = "[simulate out of memory]"
OOM_ONCE = "[simulate out of memory once]"
BUG = "[simulate a bug]"
SLOW_STEPS_FLAG = "T2VZ_TEST_SLOW_STEPS_FLAG"
SLOW_STEP_S = 0.4


def install() -> None:
    from modules import ray_replica
    from modules.job_control import JobControl

    made = ray_replica.StudioWorkerReplica.__init__

    def init(self, settings):
        made(self, settings)
        _wrap_sampler()

    ray_replica.StudioWorkerReplica.__init__ = init
    step = JobControl.step
    flag = os.environ.get(SLOW_STEPS_FLAG)

    def slow_step(self, *args, **kwargs):
        if flag and os.path.exists(flag):
            time.sleep(SLOW_STEP_S)
        return step(self, *args, **kwargs)

    JobControl.step = slow_step


def _wrap_sampler() -> None:
    import torch

    from modules import engine

    real = engine.generate_text2video
    failed_once: set[str] = set()

    def generate_text2video(*args, **kwargs):
        prompt = kwargs.get("prompt")
        prompt = prompt if isinstance(prompt, str) else ""
        if prompt.startswith(BUG):
            raise KeyError("unet.down_blocks.0")
        if prompt.startswith(OOM_ALWAYS) or (prompt.startswith(OOM_ONCE) and prompt not in failed_once):
            failed_once.add(prompt)
            raise torch.OutOfMemoryError(f"CUDA out of memory (simulated at chunk size {kwargs.get('chunk_size')})")
        return real(*args, **kwargs)

    engine.generate_text2video = generate_text2video
