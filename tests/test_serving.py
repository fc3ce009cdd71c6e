"""genlab.serving, the speed-ups a server applies to the models it shares: a served model gives
the numbers of the plain model bit for bit (traced graphs, slices, helper threads, compiled
loops), serving is idempotent, and the process settings (threads, the GIL interval while a job
trains, the frozen heap) are set and restored as said. Also: the serving layer names no family,
and the model files name no serving machinery (checked on parsed code)."""
import ast
import copy
import functools
import gc
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

import genlab
from conftest import chain_cases
from genlab import parallel, serving
from genlab.models.flow import Flow, FlowConfig
from genlab.models.rbm import RBM, RBMConfig
from genlab.samplers import run_chain

ROOT = Path(__file__).resolve().parent.parent


def image_flow(seed: int = 0) -> Flow:
    """A small RealNVP with random weights (a fresh one is the identity), in eval mode."""
    model = Flow(FlowConfig(data_shape=(1, 8, 8), hidden=8, depth=2, couplings=(1, 1, 1)))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return model.eval()


def everything(model: Flow, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
    with torch.inference_mode():
        return (model.decode(z), model.encode(x), model.log_prob(x, torch.Generator().manual_seed(2)),
                model.log_prob(x, dequantize=False))


@pytest.fixture
def helpers():
    """set_helpers for one test; the count from before restored after it."""
    before = parallel.helpers()
    yield parallel.set_helpers
    parallel.set_helpers(before)


def test_serving_marks_the_model_shared_and_is_idempotent():
    model = image_flow()
    model.train()
    assert not serving.is_served(model) and "forward" not in vars(model.flow)
    assert serving.serve(model) is model
    assert serving.is_served(model) and not model.training
    assert not any(p.requires_grad for p in model.parameters())
    rows = vars(model.flow)["forward"], vars(model.flow)["inverse"]
    assert serving.serve(model) is model
    assert (vars(model.flow)["forward"], vars(model.flow)["inverse"]) == rows  # nothing installed twice
    rbm = serving.serve(RBM(RBMConfig(data_shape=(1, 8, 8), hidden=16)))
    sweeps = rbm.sweeps
    assert serving.serve(rbm).sweeps is sweeps and isinstance(sweeps, serving.Compiled)
    assert RBM.sweeps is sweeps.fn  # the class keeps the plain function: other RBMs are unchanged


@pytest.mark.parametrize("n", [1, 2, 3, 7, 23, 24, 40])
@pytest.mark.parametrize("threads", [0, 1])
def test_a_served_image_flow_gives_the_eager_numbers_bit_for_bit(n, threads, helpers):
    """decode, encode and log_prob of a served flow (slices, traced graphs, a helper thread)
    against the plain model on the whole batch, whatever the batch size; three times, as the
    graph executor's first runs profile and later ones run the optimised graph."""
    plain = image_flow()
    served = serving.serve(copy.deepcopy(plain))
    x = torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    z = torch.randn(n, 64, generator=torch.Generator().manual_seed(1))
    want = everything(plain, x, z)
    helpers(threads)
    for _ in range(3):
        for a, b in zip(want, everything(served, x, z)):
            assert a.shape == b.shape and torch.equal(a, b)
    assert len(serving._GRAPHS[served.flow]) == 2 and plain.flow not in serving._GRAPHS  # forward, inverse


@pytest.mark.skipif(not (ROOT / "checkpoints" / "realnvp-mnist.json").exists(), reason="the shipped RealNVP")
def test_the_shipped_flow_served_decodes_the_flow_views_samples_bit_for_bit(helpers):
    """The Flow view's decode (24 samples) with the shipped checkpoint's size and weights."""
    plain = genlab.load(ROOT / "checkpoints" / "realnvp-mnist")[0]
    served = serving.serve(copy.deepcopy(plain))
    z = plain.prior_sample(24, torch.Generator().manual_seed(0))
    with torch.inference_mode():
        want = plain.decode(z)
        for threads in (0, 1):
            helpers(threads)
            assert torch.equal(served.decode(z), want)


def test_slices_of_any_size_give_the_numbers_of_one_pass(monkeypatch):
    """Five rows a slice (5 + 5 + 5 + 5 + 3): the numbers of the plain model's one pass, and the
    dequantisation draws stay the whole batch's."""
    plain = image_flow()
    served = serving.serve(copy.deepcopy(plain))
    x = torch.rand(23, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    z = torch.randn(23, 64, generator=torch.Generator().manual_seed(1))
    monkeypatch.setattr(serving, "ROWS_SLICE", 5)
    for a, b in zip(everything(plain, x, z), everything(served, x, z)):
        assert torch.equal(a, b)


def test_with_gradients_or_in_training_a_served_method_is_the_plain_one_on_the_whole_batch(monkeypatch):
    served = serving.serve(image_flow())
    x = torch.rand(23, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    calls = []
    real = type(served.flow).forward
    monkeypatch.setattr(type(served.flow), "forward", lambda self, h: calls.append(len(h)) or real(self, h))
    served.log_prob(x.requires_grad_())
    assert calls == [23]
    served.train()
    with torch.no_grad():
        served.log_prob(x)
    assert calls == [23, 23] and served.flow not in serving._GRAPHS


def test_slices_are_even_never_one_row_and_fill_the_helpers():
    for n in range(1, 80):
        h = torch.arange(n)
        for threads in (0, 1, 3):
            parts = serving.slices(h, threads)
            sizes = [len(p) for p in parts]
            assert torch.equal(torch.cat(parts), h)
            assert max(sizes) - min(sizes) <= 1
            assert n == 1 or min(sizes) >= 2
            if n >= 2 * serving.ROWS_SLICE:
                assert max(sizes) <= serving.ROWS_SLICE
            if threads and n >= 2 * (threads + 1):
                assert len(parts) % (threads + 1) == 0
    assert [len(p) for p in serving.slices(torch.zeros(24), 1)] == [12, 12]  # the Flow view's decode


def test_slices_computed_on_helper_threads_come_back_in_order(monkeypatch, helpers):
    """Whichever thread computes a slice, the batch comes out as the plain flow computes it."""
    plain = image_flow()
    served = serving.serve(copy.deepcopy(plain))
    x = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    z = torch.randn(40, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        h = plain._to_logits(x, None)[0]
        want = plain.flow(h), plain.flow.inverse(z.view(40, 4, 4, 4))
    threads, calls, gate = set(), [], threading.Barrier(2, timeout=10)
    real = serving.graph

    def graph(module, name, hh):
        g = real(module, name, hh)

        def run(s):
            calls.append(1)
            if len(calls) <= 2:  # the first two slices wait for each other: two threads
                gate.wait()
            threads.add(threading.current_thread().name)
            return g(s)
        return run

    monkeypatch.setattr(serving, "graph", graph)
    helpers(1)
    with torch.inference_mode():
        for _ in range(3):
            got = served.flow(h), served.flow.inverse(z.view(40, 4, 4, 4))
            for a, b in zip(want, got):
                assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert threading.current_thread().name in threads and any(t.startswith("genlab-helper") for t in threads)


def test_weights_changed_in_place_are_traced_again():
    """A graph per row shape and weights: batches of any size reuse it; weights changed in place
    give a new graph with the new numbers."""
    plain = image_flow()
    served = serving.serve(copy.deepcopy(plain))
    z = torch.randn(7, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert torch.equal(served.decode(z[:1]), plain.decode(z[:1]))  # traced on a batch of one
        before = plain.decode(z)
        assert torch.equal(served.decode(z), before)
    assert len(serving._GRAPHS[served.flow]) == 1
    assert not any(isinstance(g, functools.partial) for g in serving._GRAPHS[served.flow].values())  # traced
    for m in (plain, served):
        with torch.no_grad():
            m.flow.layers[-1].net[0].weight.mul_(1.5)
    with torch.inference_mode():
        want, got = plain.decode(z), served.decode(z)
    assert torch.equal(want, got) and not torch.equal(want, before) and len(serving._GRAPHS[served.flow]) == 2


def test_a_served_vector_flow_declares_nothing_and_computes_as_before():
    plain = Flow(FlowConfig(data_shape=(2,), hidden=16, depth=2, couplings=(4,), masks="parity")).eval()
    assert plain.serving_hints == {}
    served = serving.serve(copy.deepcopy(plain))
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(served.log_prob(x), plain.log_prob(x)) and torch.equal(served.decode(x), plain.decode(x))
    assert "forward" not in vars(served.flow) and served.flow not in serving._GRAPHS


def test_a_deep_copy_of_a_served_model_is_served_on_its_own_weights():
    served = serving.serve(image_flow())
    twin = copy.deepcopy(served)
    assert serving.is_served(twin) and vars(twin.flow)["inverse"].module is twin.flow
    z = torch.randn(6, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        twin.flow.layers[-1].net[0].weight.mul_(2.0)
    with torch.inference_mode():
        assert not torch.equal(twin.decode(z), served.decode(z))


@pytest.mark.parametrize("block", [1 << 20, 100])
def test_a_served_rbm_chain_gives_the_eager_chains_numbers(digits, monkeypatch, block):
    """The served chain runs its sweeps compiled (TorchScript, in blocks of sweeps): bit for bit
    what the plain model's chain and the eager sweeps (torch.bernoulli) give from one seed."""
    from genlab.models import rbm
    monkeypatch.setattr(rbm, "CHAIN_BLOCK", block)  # 100 floats: one sweep a block, so blocks join
    train, _ = digits
    plain = RBM(RBMConfig(data_shape=(1, 8, 8), hidden=16))
    served = copy.deepcopy(serving.serve(copy.deepcopy(plain)))  # a served model's copy is served
    assert isinstance(served.sweeps, serving.Compiled) and served.sweeps.fn is rbm._sweeps
    assert isinstance(serving.compiled(served.sweeps.fn), torch.jit.ScriptFunction)  # not the eager fallback
    x, cases = chain_cases(train.x)
    for clamp, steps, every in cases:
        with torch.no_grad():
            got = served.chain(x, steps, every, torch.Generator().manual_seed(3), clamp=clamp)
            plain_chain = plain.chain(x, steps, every, torch.Generator().manual_seed(3), clamp=clamp)
            g = torch.Generator().manual_seed(3)
            eager = run_chain(lambda v: plain.gibbs(v, g), plain.free_energy, x, steps, every, clamp)
        for want in (plain_chain, eager):
            assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1]), (clamp is not None, steps)


def test_the_gil_switches_faster_while_training_and_comes_back():
    before = sys.getswitchinterval()
    assert before > serving.TRAINING_SWITCH_INTERVAL  # Python's 5 ms: nothing trains
    serving.training_started()
    serving.training_started()
    try:
        assert sys.getswitchinterval() == serving.TRAINING_SWITCH_INTERVAL
        serving.training_ended()
        assert sys.getswitchinterval() == serving.TRAINING_SWITCH_INTERVAL  # the other still trains
    finally:
        serving.training_ended()
    assert sys.getswitchinterval() == before


def test_a_server_uses_half_the_cores_per_computation_unless_told():
    server_threads = serving.server_threads
    assert server_threads({}, cores=2) == 1 and server_threads({}, cores=16) == 8 and server_threads({}, cores=1) == 1
    assert server_threads({"GENLAB_THREADS": "3"}, cores=2) == 3
    assert server_threads({"GENLAB_THREADS": " "}, cores=4) == 2
    for bad in ("0", "-2", "two", "1.5"):
        with pytest.raises(ValueError, match="GENLAB_THREADS"):
            server_threads({"GENLAB_THREADS": bad}, cores=2)


def test_the_thread_environment_is_set_before_torch_loads_and_a_count_of_ones_own_wins():
    env = {}
    assert serving.set_thread_env(env, cores=4) == "2" and env == {"OMP_NUM_THREADS": "2"}
    env = {"GENLAB_THREADS": "3"}
    assert serving.set_thread_env(env, cores=4) == "3"
    env = {"GENLAB_THREADS": "two"}  # not a count: half the cores (serving.configure says so)
    assert serving.set_thread_env(env, cores=4) == "2"
    env = {"GENLAB_THREADS": "3", "OMP_NUM_THREADS": "5"}
    assert serving.set_thread_env(env, cores=4) == "5" and env["OMP_NUM_THREADS"] == "5"
    # app.py runs the file on its own, before anything imports torch
    script = ("import os, runpy, sys; os.environ.pop('OMP_NUM_THREADS', None); os.environ['GENLAB_THREADS'] = '1'; "
              "runpy.run_path('genlab/serving_env.py')['set_thread_env'](); "
              "print(os.environ['OMP_NUM_THREADS'], 'torch' in sys.modules, 'genlab' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.split() == ["1", "False", "False"], r.stderr


def test_configure_sets_threads_and_helpers_on_the_cpu(monkeypatch, helpers):
    before = torch.get_num_threads()
    monkeypatch.setenv("GENLAB_THREADS", "1")
    monkeypatch.setattr(serving.os, "cpu_count", lambda: 2)
    try:
        serving.configure(torch.device("cpu"))
        assert torch.get_num_threads() == 1 and parallel.helpers() == 1
    finally:
        torch.set_num_threads(before)


def test_freeze_heap_collects_then_freezes_and_counts():
    try:
        n = serving.freeze_heap()
        assert n == gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()


# ----------------------------------------------------------------------------- rules on parsed code
def words_in(path: Path) -> set[str]:
    """The words of every identifier, attribute, imported module and string constant in a file
    (lowercased, split at anything not a letter or digit: `flow_mod` -> flow, mod)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Name):
            out.add(node.id)
        elif isinstance(node, ast.Attribute):
            out.add(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            out.update([node.module or ""] + [a.name for a in node.names])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.add(node.value)
    return {w for n in out for w in re.findall(r"[a-z0-9]+", n.lower())}


def test_the_serving_layer_names_no_family_or_model_class():
    """serving.py decides from what a model declares, never from what it is."""
    words = set()
    for name in genlab.families():
        fam = genlab.family(name)
        words |= {name, fam.model_cls.__name__.lower(), fam.config_cls.__name__.lower()}
    for file in ("serving.py", "serving_env.py", "parallel.py"):
        found = words & words_in(ROOT / "genlab" / file)
        assert not found, (file, found)


@pytest.mark.parametrize("file", ["flow.py", "rbm.py"])
def test_the_model_files_hold_no_serving_machinery(file):
    tree = ast.parse((ROOT / "genlab" / "models" / file).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.update([(node.module or "").split(".")[0]] + [a.name for a in node.names])
    assert not imported & {"threading", "weakref", "concurrent", "parallel", "serving", "gc"}
    jit = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "jit"]
    assert not jit
