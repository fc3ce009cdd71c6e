"""Device choice: GENLAB_DEVICE overrides; asking for a missing accelerator says so."""
import pytest
import torch

from genlab.device import describe, pick_device


def test_env_override_and_fallback(monkeypatch):
    monkeypatch.setenv("GENLAB_DEVICE", "cpu")
    assert pick_device() == torch.device("cpu")
    monkeypatch.delenv("GENLAB_DEVICE")
    assert pick_device().type in ("cuda", "mps", "cpu")
    assert describe(torch.device("cpu")).startswith("cpu (")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this checks the message on machines without CUDA")
def test_missing_cuda_is_a_clear_error():
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        pick_device("cuda")


def test_describe_names_threads_per_computation_when_fewer_than_the_cores(monkeypatch):
    import genlab.device as d
    monkeypatch.setattr(d.os, "cpu_count", lambda: 64)
    assert "per computation, 64 cores" in d.describe(torch.device("cpu"))
