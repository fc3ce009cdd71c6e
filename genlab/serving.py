"""What a server does to the models it shares, applied from outside: sooner, and the numbers of
the model's own eager computation bit for bit.

A model file holds plain math. It may declare, as plain data in `serving_hints`, what a server
may speed up, and this module reads nothing else of it:

    "rows"     dotted names of batch methods of one tensor, (B, ...) -> a tensor or a tuple of
               tensors (B, ...), that compute each row on its own ("body.inverse": the method
               `inverse` of the submodule `body`). Served and without gradients, a batch runs in
               slices of about ROWS_SLICE rows (`slices`: a slice's activations stay small),
               each slice as one traced graph of the method (`graph`), and on the CPU the slices
               are lent to idle helper threads (genlab.parallel).
    "compile"  names of pure functions the model calls as its own attributes (staticmethods,
               typically a loop) with tensor arguments; served, the model calls their
               TorchScript copy (`Compiled`).

Why: in a server every session's script runs on a thread of one process. Torch hands Python's
lock (the GIL) back for each operation and must win it again afterwards, so a computation of a
few hundred small operations waits a few hundred times behind the other sessions' Python; a
traced graph or a compiled loop takes the lock once (docs/serving.md, bench/).

`serve(model)` installs these on one model (instance attributes over the class's methods) and
marks it shared: eval mode, no parameter wanting gradients. The rest concerns the process:
torch's threads per computation (`server_threads`, `configure`), the GIL switch interval while
a job trains (`training_started`, `training_ended`) and the heap frozen after the warm-up
(`freeze_heap`).
"""
from __future__ import annotations

import functools
import gc
import itertools
import os
import sys
import threading
import warnings
import weakref
from typing import Any, Callable, Sequence

import torch

from . import parallel
from .serving_env import server_threads, set_thread_env  # noqa: F401 - the serving layer's, re-exported

ROWS_SLICE = 12  # rows per slice of a served row method when no gradient is kept
MAX_GRAPHS = 8  # traced graphs kept per module (row shapes, dtypes, devices, weights)
_GRAPHS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # module -> {key: traced method}
_GRAPHS_LOCK = threading.Lock()


# ----------------------------------------------------------------------------- shared models
def serve(model: torch.nn.Module) -> torch.nn.Module:
    """`model` made ready to be shared by a server's sessions, and returned: eval mode, no
    parameter wanting gradients, and what its `serving_hints` declare installed. Serving a
    served model changes nothing."""
    if is_served(model):
        return model
    model.eval()
    model.requires_grad_(False)
    hints = getattr(model, "serving_hints", None) or {}
    for path in hints.get("rows", ()):
        owner_path, _, name = path.rpartition(".")
        owner = model.get_submodule(owner_path) if owner_path else model
        setattr(owner, name, Rows(owner, name))
    for name in hints.get("compile", ()):
        setattr(model, name, Compiled(getattr(type(model), name)))
    model.served = True
    return model


def is_served(model: torch.nn.Module) -> bool:
    return getattr(model, "served", False) is True


class Rows:
    """A served row method of `module`: without gradients, the batch in slices (`slices`), each
    through a traced graph of the method (`graph`), lent to idle helper threads on the CPU; with
    gradients, in training mode or while being traced, the method itself on the whole batch."""

    def __init__(self, module: torch.nn.Module, name: str):
        self.module, self.name = module, name

    def eager(self, h: torch.Tensor) -> Any:
        return getattr(type(self.module), self.name)(self.module, h)

    def __call__(self, h: torch.Tensor) -> Any:
        if torch.is_grad_enabled() or torch.jit.is_tracing() or self.module.training:
            return self.eager(h)
        helpers = parallel.helpers() if h.device.type == "cpu" else 0  # a GPU's streams are per thread
        return join(parallel.map_parts(graph(self.module, self.name, h), slices(h, helpers), helpers))


def slices(h: torch.Tensor, helpers: int = 0) -> tuple[torch.Tensor, ...]:
    """h cut along the batch into slices of about ROWS_SLICE (at most that many where it is 4 or
    more), as even as can be; a batch of two or more never leaves a slice of one row (a
    convolution may take another path for a batch of one). With helper threads, the count is
    rounded up to a multiple of the threads while every slice keeps two rows at least: 24 rows
    on two threads are 12 + 12. Slices of about 12 images also keep a convolution's activations
    in the caches."""
    n = h.shape[0]
    k = -(-n // ROWS_SLICE)
    if helpers > 0:
        k = -(-k // (helpers + 1)) * (helpers + 1)
    k = max(1, min(k, n // 2)) if n >= 2 else 1
    return torch.tensor_split(h, k)


def join(parts: Sequence[Any]) -> Any:
    """The slices' outputs as one batch: each tensor (or each place of a tuple) concatenated."""
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], tuple):
        return tuple(torch.cat(column) for column in zip(*parts))
    return torch.cat(list(parts))


def graph(module: torch.nn.Module, name: str, h: torch.Tensor) -> Callable[[torch.Tensor], Any]:
    """`module`'s method `name` traced for inputs shaped like h (any batch size), kept per
    module, row shape, dtype, device and weights (their storage and in-place version, so that
    weights changed in place are traced again). The same operations in the same order as the
    method, so the same numbers, run by torch's graph executor in one call."""
    weights = tuple((t.data_ptr(), t._version) for t in itertools.chain(module.parameters(), module.buffers()))
    key = (name, tuple(h.shape[1:]), h.dtype, h.device, weights)
    with _GRAPHS_LOCK:
        graphs = _GRAPHS.setdefault(module, {})
        found = graphs.get(key)
    if found is None:
        found = _trace(module, name, h[:2])
        with _GRAPHS_LOCK:
            if len(graphs) >= MAX_GRAPHS:
                graphs.clear()
            graphs[key] = found
    return found


def _trace(module: torch.nn.Module, name: str, example: torch.Tensor) -> Callable[[torch.Tensor], Any]:
    """The traced method, or the method itself (the same numbers) where the tracer fails. Traced
    on two rows: the graph reads the batch size from its input, and tracing keeps every
    intermediate tensor alive until it ends."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes on sizes read as numbers
            return getattr(torch.jit.trace_module(module, {name: (example,)}, check_trace=False), name)
    except Exception:  # noqa: BLE001 - a backend the tracer cannot handle: run eagerly, same numbers
        return functools.partial(getattr(type(module), name), module)


class Compiled:
    """A served pure function: calls its compiled copy (`compiled`). It holds the plain function,
    so a copy of the model (deepcopy, pickle) stays served; a compiled function cannot be copied."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def __call__(self, *args: Any) -> Any:
        return compiled(self.fn)(*args)


@functools.lru_cache(maxsize=None)
def compiled(fn: Callable) -> Callable:
    """`fn` as TorchScript (which torch 2.13 marks deprecated, with no replacement that runs a
    loop without a C++ compiler), compiled once per process, or `fn` itself, the same numbers
    eagerly, where it cannot be compiled."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.script(fn)
    except Exception:  # noqa: BLE001 - a torch without TorchScript: the eager function is the same computation
        return fn


# ----------------------------------------------------------------------------- the process
def configure(device: torch.device) -> None:
    """On the CPU, torch's threads per computation (`server_threads`; a GENLAB_THREADS that is
    not a count is said once on stderr, and half the cores used) and helper threads that lend
    the other cores to a served model's slices while they idle."""
    if device.type != "cpu":
        return
    try:
        n = server_threads()
    except ValueError as e:
        n = server_threads({})
        print(f"genlab: {e}; using {n}", file=sys.stderr, flush=True)
    torch.set_num_threads(n)
    parallel.set_helpers(parallel.helpers_for(os.cpu_count() or 1, n))  # idle cores for split work


# While a training thread runs, a short GIL switch interval (1 ms instead of Python's 5 ms) lets
# the threads that answer clicks take their turn sooner. With no training it only costs: every
# session's script thread hands the GIL over five times as often (docs/serving.md, bench/load.py).
TRAINING_SWITCH_INTERVAL = 0.001
_training = 0
_training_lock = threading.Lock()
_saved_interval = sys.getswitchinterval()


def training_started() -> None:
    """A job's thread starts training: the short switch interval, if it is the first."""
    global _training, _saved_interval
    with _training_lock:
        if _training == 0:
            _saved_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(_saved_interval, TRAINING_SWITCH_INTERVAL))
        _training += 1


def training_ended() -> None:
    """A job's thread stops training: the interval from before, once none trains."""
    global _training
    with _training_lock:
        _training -= 1
        if _training == 0:
            sys.setswitchinterval(_saved_interval)


def freeze_heap() -> int:
    """Collect once, then keep every object alive now out of Python's cyclic collector
    (gc.freeze), and return how many that is. What a server keeps after its warm-up (modules,
    models, shared renders) is then never walked again by a full collection, which holds the
    GIL while it walks. Reference counting still frees what is dropped later, but garbage in a
    reference cycle made before this call is never collected: call it once, after the warm-up."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
