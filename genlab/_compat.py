"""Optional dependencies, detected at run time.

torchvision is used where it imports. With a CPU-only torch its compiled ops can fail to
load and the import raises RuntimeError (not ImportError), so any exception means "absent".
GENLAB_NO_TORCHVISION=1 forces the pure-torch paths (the tests use this to cover both).
"""
from __future__ import annotations

import functools
import os


@functools.lru_cache(maxsize=1)
def _torchvision_importable() -> bool:
    try:
        import torchvision  # noqa: F401
    except Exception:  # ImportError, or RuntimeError from a CUDA-linked build
        return False
    return True


def torchvision_available() -> bool:
    """True when torchvision imports here and GENLAB_NO_TORCHVISION is not set."""
    if os.environ.get("GENLAB_NO_TORCHVISION", "") not in ("", "0"):
        return False
    return _torchvision_importable()
