"""Pick the compute device: cuda > mps > cpu, unless GENLAB_DEVICE says otherwise."""
from __future__ import annotations

import os

import torch



def pick_device(preference: str | None = None) -> torch.device:
    """Return the device genlab computes on.

    Args:
        preference: "cuda", "mps", "cpu" or None. None reads the GENLAB_DEVICE
            environment variable, then falls back to the best available device.
    Returns:
        A torch.device that is available on this machine.
    """
    want = preference or os.environ.get("GENLAB_DEVICE") or ""
    want = want.strip().lower()
    if want:
        if want.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"device {want!r} was asked for but CUDA is not available here")
        if want == "mps" and not _mps_ok():
            raise RuntimeError("device 'mps' was asked for but MPS is not available here")
        return torch.device(want)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_ok():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_ok() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def describe(device: torch.device) -> str:
    """One line naming the device for people (GPU name, or CPU thread count)."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        n, cores = torch.get_num_threads(), os.cpu_count() or 1
        per = f"{n} thread{'s' if n != 1 else ''}"
        return f"cpu ({per} per computation, {cores} cores)" if n < cores else f"cpu ({per})"
    return device.type
