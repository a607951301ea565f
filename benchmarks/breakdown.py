"""Where a run's time goes: wall seconds inside each component's forward, through hooks.

On CUDA every hook synchronizes the device, which adds stalls; it's opt-in (--breakdown).
"""

from __future__ import annotations

import time

import torch

from .harness import synchronize


class Breakdown:
    """Accumulates seconds spent in the forward of named modules; `take()` returns and resets."""

    def __init__(self, modules: dict[str, torch.nn.Module | None], device: torch.device):
        self.device = torch.device(device)
        self.seconds = {name: 0.0 for name in modules}
        self._started: dict[str, float] = {}
        self._handles = []
        for name, module in modules.items():
            if module is None:
                continue
            self._handles.append(module.register_forward_pre_hook(self._pre(name)))
            self._handles.append(module.register_forward_hook(self._post(name)))

    def _pre(self, name):
        def hook(*_):
            synchronize(self.device)
            self._started[name] = time.perf_counter()

        return hook

    def _post(self, name):
        def hook(*_):
            synchronize(self.device)
            self.seconds[name] += time.perf_counter() - self._started.pop(name)

        return hook

    def take(self, total: float) -> dict[str, float]:
        seconds = dict(self.seconds)
        seconds["other"] = max(0.0, total - sum(seconds.values()))
        self.seconds = {name: 0.0 for name in self.seconds}
        return seconds

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
