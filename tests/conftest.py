"""Shared fixtures: tiny data and tiny checkpoints, so tests never depend on the shipped ones."""
from __future__ import annotations

import base64
import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
# the app sets torch's threads for a class (views/common.py `device`); AppTest runs it in this
# process, so it keeps the tests' count
os.environ.setdefault("GENLAB_THREADS", str(torch.get_num_threads()))


def app_test(page=None, switch=None, **params):
    """The app under AppTest with these URL parameters, then switched to `page` (with `switch`,
    by default AppTest's own switch_page), asserted free of exceptions."""
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    if page:
        if switch is None:
            at.switch_page(page).run()
        else:
            switch(at, page)
    assert not at.exception, at.exception
    return at


def svg_of(element) -> str | None:
    """The SVG text of an st.image that shows an SVG (a data URL), else None."""
    url = element.proto.imgs[0].url
    if not url.startswith("data:image/svg"):
        return None
    return base64.b64decode(url.split(",", 1)[1]).decode()


def is_chart_picture(element) -> bool:
    """An st.image that is a chart drawn as SVG (views/common.py `chart`, the default style)."""
    svg = svg_of(element)
    return svg is not None and 'class="genlab-chart"' in svg[:200]


def charts(at) -> list:
    """The charts on the page: SVG pictures by default, Plotly charts with ?plotly=1."""
    return [e for e in at.get("image") if is_chart_picture(e)] + list(at.get("plotly_chart"))


def copy_checkpoint(path: Path, folder: Path) -> None:
    """Copy a checkpoint's files (its card and the files the card names) into a folder."""
    import shutil

    from genlab import checkpoint_files
    for f in checkpoint_files(path):
        shutil.copy(f, folder / f.name)


def tiny_diffusion(folder: Path, name: str = "ddpm-test") -> Path:
    """A small conditional diffusion model trained in a few seconds on 512 MNIST digits, saved in
    `folder` with a copy of the shipped MNIST classifier beside it; returns its path."""
    from genlab import save
    from genlab.data import load_mnist
    from genlab.models.diffusion import Diffusion, DiffusionConfig
    from genlab.train import TrainConfig, fit
    torch.manual_seed(0)
    train = load_mnist("train", limit=512)
    model = Diffusion(DiffusionConfig(channels=(8, 8, 8), time_dim=16, num_classes=10, sample_steps=4, timesteps=20))
    hist = fit(model, train.x, TrainConfig(epochs=1, batch_size=64, lr=1e-3), train_y=train.y)
    save(model, folder / name, dataset={"name": "mnist", "split": "train"}, history=hist.to_dict())
    copy_checkpoint(ROOT / "checkpoints" / "mnist-classifier", folder)
    return folder / name


def wait_for(cond, timeout: float = 30.0) -> bool:
    """Poll `cond` until it holds (True) or `timeout` seconds pass (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(ckpt_dir, log_path: Path, *extra_args: str, warm: bool = False):
    """`streamlit run app.py` in a new process on a free port, on `ckpt_dir`'s checkpoints;
    yields its url once /_stcore/health answers, and stops the process afterwards. The
    server's warm-up (views/warm.py) is off unless `warm`: it would compete with the test."""
    port = free_port()
    env = dict(os.environ, GENLAB_CHECKPOINTS=str(ckpt_dir), GENLAB_WARM="1" if warm else "0")
    with open(log_path, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true", *extra_args],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def chain_cases(train_x: torch.Tensor):
    """The RBM chain tests' inputs: 4 binarized digits and each (clamp, steps, every) case, free
    and with the left three columns clamped, over several sweep counts and frame spacings."""
    x = torch.bernoulli(train_x[:4], generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(1, 8, 8)
    mask[:, :, :3] = 1
    return x, [(clamp, steps, every) for clamp in (None, mask) for steps, every in ((23, 5), (7, 1), (4, 10))]


@pytest.fixture(scope="session")
def digits():
    from genlab.data import load_digits8
    return load_digits8("train"), load_digits8("test")


@pytest.fixture(scope="session")
def tiny_vae(digits):
    """A small VAE (latent 2) trained for a few epochs on the 8x8 digits."""
    from genlab import TrainConfig, VAE, VAEConfig, fit
    train, _ = digits
    model = VAE(VAEConfig(image_shape=(1, 8, 8), hidden=(64, 32), latent_dim=2))
    fit(model, train.x, TrainConfig(epochs=8, batch_size=64, seed=0, binarize=True))
    return model.eval()


@pytest.fixture(scope="session")
def ckpt_dir(tmp_path_factory):
    """Quickly trained MNIST checkpoints under the shipped names (three VAEs, a GAN, a flow, an RBM, an EBM), in a
    temporary folder, with the shipped classifier."""
    from genlab import TrainConfig, VAE, VAEConfig, fit, save
    from genlab.data import load_mnist
    d = tmp_path_factory.mktemp("checkpoints")
    train = load_mnist("train", limit=3000)
    for name, z, ae in [("vae-mnist-z20", 20, False), ("vae-mnist-z2", 2, False), ("ae-mnist-z2", 2, True)]:
        model = VAE(VAEConfig(hidden=(64,), latent_dim=z, autoencoder=ae))
        hist = fit(model, train.x, TrainConfig(epochs=2, batch_size=100, binarize=True), val_x=train.x[:500])
        model.fit_latent_prior(train.x)
        save(model, d / name, dataset={"name": "mnist", "split": "train"}, history=hist.to_dict(),
             metrics={"test_neg_elbo": 150.0})
    from genlab.models import GAN, GANConfig
    gan = GAN(GANConfig(arch="mlp"))
    hist = fit(gan, train.x[:1000], TrainConfig(epochs=1, batch_size=100, lr=2e-4, binarize=False))
    save(gan, d / "gan-mlp-mnist", dataset={"name": "mnist"}, history=hist.to_dict())
    from genlab.models import Flow, FlowConfig
    torch.manual_seed(0)
    flow = Flow(FlowConfig(hidden=8, depth=2, couplings=(1, 1, 1)))
    hist = fit(flow, train.x[:1000], TrainConfig(epochs=1, batch_size=100), val_x=train.x[:200])
    save(flow, d / "realnvp-mnist", dataset={"name": "mnist", "split": "train"}, history=hist.to_dict(),
         likelihoods=[r.to_dict() for r in flow.likelihoods(train.x[:200])])
    from genlab import recipes
    rbm = recipes.Run(recipes.make_recipe("rbm", hidden=16, chains=20, sample_steps=20, epochs=1, limit=2000))
    hist = rbm.fit()
    rbm.save(d / "rbm-mnist-h500", hist, {}, rbm.model.likelihoods(train.x[:200], k=20, betas=200))
    ebm = recipes.Run(recipes.make_recipe("ebm", channels=(8, 16), hidden=16, steps=5, buffer_size=256,
                                          sample_steps=20, epochs=1, limit=500, batch_size=50))
    ebm.save(d / "ebm-mnist", ebm.fit(), {}, [])
    # the shipped measuring stick (small): the Compare view and eval --all need it
    copy_checkpoint(ROOT / "checkpoints" / "mnist-classifier", d)
    return d
