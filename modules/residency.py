"""Where weights live: the device, its dtype, CPU offload per model, and the bytes on the device.

Without offload every model sits on the device from load to eviction. With offload (as
diffusers' `enable_model_cpu_offload`) models wait on the CPU and move to the device when they
run: a forward (or a VAE's encode/decode) moves its model in and moves out the models of the
other stages. Stages are what runs together: a UNet and its ControlNet share a stage, so they
don't evict each other every step; the text encoder, the VAE and the annotators are stages of
their own. Peak device memory is then the largest stage, not the sum of all.

`device_bytes()` is what the memory budget is compared with: bytes of weights on the device now.
"""

from __future__ import annotations

import gc
import threading
import weakref

import torch

ON_DEVICE = "_t2vz_on_device"  # attribute on each adopted module: is it on the device now?


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def choose_dtype(name: str, device: torch.device, *, probe_cpu: bool = True) -> tuple[torch.dtype, str]:
    """The dtype models run in, and why (the status line shows it).

    `auto`: float16 on CUDA; on a CPU bfloat16 only where `dtype_probe` measured it clearly faster
    (it is on some CPUs, 2-14x slower on others), else float32. `probe_cpu=False` skips the probe
    (float32): the tiny preset, whose tests compare float32 frames, and callers that only need
    the file variant (the same for float32 and bfloat16).
    """
    if name != "auto":
        return DTYPES[name], f"{name}: set by T2VZ_DTYPE"
    if device.type == "cuda":
        return torch.float16, "float16: auto on CUDA"
    if not probe_cpu:
        return torch.float32, "float32: auto on CPU (no probe)"
    from .dtype_probe import pick_cpu_dtype

    return pick_cpu_dtype()


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """The dtype without running the CPU probe (enough to choose a file variant)."""
    return choose_dtype(name, device, probe_cpu=False)[0]


def role_dtype(spec, role: str, dtype: torch.dtype) -> torch.dtype:
    """The dtype a "components" ModelSpec's `role` runs in when the app runs in `dtype`: the role's
    pinned dtype (`spec.dtypes`, e.g. a float32 VAE), else `spec.half_dtype` in place of float16
    (bfloat16 for a model whose activations overflow float16), else `dtype`."""
    if role in spec.dtypes:
        return DTYPES[spec.dtypes[role]]
    if dtype == torch.float16:
        return DTYPES[spec.half_dtype]
    return dtype


def variant_for(dtype: torch.dtype) -> str | None:
    """The Hub file variant worth downloading for `dtype` (fp16 files halve the download)."""
    return "fp16" if dtype == torch.float16 else None


def module_bytes(module) -> int:
    if not isinstance(module, torch.nn.Module):
        return 0
    return sum(t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers()))


def unique_bytes(modules) -> int:
    """Bytes of the tensors of `modules`, each storage counted once."""
    seen, total = set(), 0
    for module in modules:
        if not isinstance(module, torch.nn.Module):
            continue
        for tensor in (*module.parameters(), *module.buffers()):
            key = (tensor.device, tensor.untyped_storage().data_ptr())
            if key not in seen:
                seen.add(key)
                total += tensor.untyped_storage().nbytes()
    return total


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# One lock per device for the whole process: two generations never share a device at once,
# whichever manager or thread starts them.
_DEVICE_LOCKS: dict[str, threading.Lock] = {}
_DEVICE_LOCKS_GUARD = threading.Lock()


def device_lock(device: torch.device) -> threading.Lock:
    with _DEVICE_LOCKS_GUARD:
        return _DEVICE_LOCKS.setdefault(str(device), threading.Lock())


class _OffloadHook:
    """Called before a module runs; `pre_forward` is also what diffusers' VAE encode/decode call.

    Set as a module's `_hf_hook` (accelerate's attribute), it also tells diffusers where the
    module runs: pipelines read `_hf_hook.execution_device` to put their tensors on the device the
    module is about to move to, not the CPU it waits on (`get_module_execution_device`)."""

    def __init__(self, residency: "Residency"):
        self.residency = residency
        self.execution_device = residency.device

    def pre_forward(self, module, *args, **kwargs):
        self.residency.activate(module)
        return args, kwargs

    def __call__(self, module, args):  # torch forward pre-hook
        self.residency.activate(module)


class Residency:
    def __init__(self, device: torch.device, dtype: torch.dtype, offload: bool = False):
        self.device = device
        self.dtype = dtype
        # On a CPU device offloading moves nothing, but its hooks and bookkeeping run the same,
        # which is how the tests check the policy without a GPU.
        self.offloading = bool(offload)
        self.home = torch.device("cpu") if offload else device
        self._modules: weakref.WeakValueDictionary[int, torch.nn.Module] = weakref.WeakValueDictionary()
        self._stage: dict[int, str] = {}
        self.moves = 0  # modules moved onto the device (offload), for tests and stats
        self.peak_device_bytes = 0
        self._lock = threading.RLock()

    def adopt(self, module, stage: str, dtype: torch.dtype | None = None):
        """Cast to `dtype` (else the residency's) and place a freshly loaded module; with offload, hook it."""
        dtype = dtype or self.dtype
        if getattr(module, "dtype", dtype) != dtype:
            module = module.to(dtype=dtype)
        module = module.to(self.home).eval()
        module.requires_grad_(False)
        with self._lock:
            self._modules[id(module)] = module
            self._stage[id(module)] = stage
            setattr(module, ON_DEVICE, not self.offloading)
            if self.offloading:
                hook = _OffloadHook(self)
                module.register_forward_pre_hook(hook)
                module._hf_hook = hook  # diffusers' @apply_forward_hook (VAE encode/decode) calls it
            self._note_peak()
        return module

    def activate(self, *modules) -> None:
        """Bring `modules` onto the device; with offload, send the other stages' models home first."""
        if not self.offloading:
            return
        with self._lock:
            stages = {self._stage.get(id(m)) for m in modules}
            for other in list(self._modules.values()):
                if getattr(other, ON_DEVICE, False) and self._stage.get(id(other)) not in stages:
                    other.to(self.home)
                    setattr(other, ON_DEVICE, False)
            for module in modules:
                if not getattr(module, ON_DEVICE, False):
                    module.to(self.device)
                    setattr(module, ON_DEVICE, True)
                    self.moves += 1
            self._note_peak()

    def release(self) -> None:
        """After a job, with offload: every model goes home and the device is free."""
        if not self.offloading:
            return
        with self._lock:
            for module in list(self._modules.values()):
                if getattr(module, ON_DEVICE, False):
                    module.to(self.home)
                    setattr(module, ON_DEVICE, False)
        free_memory()

    def on_device(self) -> list[torch.nn.Module]:
        with self._lock:
            return [m for m in self._modules.values() if getattr(m, ON_DEVICE, False)]

    def device_bytes(self, modules=None) -> int:
        """Bytes of weights on the device now, or of `modules` if given.

        Each tensor counts once, however many modules hold it (a motion UNet runs on the base
        UNet's own layers, a text encoder may serve two models)."""
        if modules is None:
            modules = self.on_device()
        return unique_bytes(modules)

    def _note_peak(self) -> None:
        self.peak_device_bytes = max(self.peak_device_bytes, self.device_bytes())
