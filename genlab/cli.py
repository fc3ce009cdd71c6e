"""Command line: python -m genlab train | eval | sample | list."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from . import data, metrics, store, viz
from .device import describe, pick_device
from .models import VAEConfig, build, n_params
from .train import Divergence, Progress, TrainConfig, fit


class ProgressBar:
    """A one-line progress bar on stderr: position, loss, speed and ETA."""

    def __init__(self, label: str, stream=None, width: int = 24):
        self.label, self._stream, self.width = label, stream, width
        self._last: tuple[float, int] | None = None
        self._rate: float | None = None  # smoothed recent steps/s (a whole-run average hides slowdowns)

    @property
    def stream(self):
        return self._stream or sys.stderr

    def __call__(self, p: Progress) -> None:
        filled = int(self.width * p.fraction)
        bar = "#" * filled + "-" * (self.width - filled)
        loss = p.recent.get("loss", p.recent.get("g_loss", float("nan")))
        if self._last is not None and p.elapsed > self._last[0] and p.step > self._last[1]:
            now = (p.step - self._last[1]) / (p.elapsed - self._last[0])
            self._rate = now if self._rate is None else 0.7 * self._rate + 0.3 * now
        self._last = (p.elapsed, p.step)
        rate = self._rate or p.step / max(p.elapsed, 1e-9)
        left = max(0, p.total_steps - p.step) / max(rate, 1e-9)
        eta = time.strftime("%M:%S", time.gmtime(left)) if left < 3600 else f"{left / 3600:.1f}h"
        line = (f"\r{self.label} epoch {p.epoch}/{p.epochs} [{bar}] {100 * p.fraction:5.1f}% "
                f"loss {loss:8.3f}  {rate:6.1f} steps/s  ETA {eta}")
        self.stream.write(line + ("\n" if p.epoch_done and p.epoch == p.epochs else ""))
        self.stream.flush()


def _parse_hidden(s: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in s.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--hidden takes comma-separated integers, e.g. 500,250 (got {s!r})")
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("--hidden sizes must be positive")
    return sizes


def test_metrics(model, dataset: str, device, k: int = 1000, limit: int | None = None, verbose: bool = True) -> dict:
    """Test -ELBO (and its terms) and the importance-weighted NLL on the fixed binarized test set."""
    test = data.load_images(dataset, "test", device, limit=limit)
    x = metrics.binarized_test_set(test.x) if model.config.likelihood == "bernoulli" else test.x
    out = {f"test_{key}": round(v, 3) for key, v in metrics.elbo_metrics(model, x).items() if key != "loss"}
    if not model.is_autoencoder and k > 0:
        t0 = time.perf_counter()

        def tick(done, total):
            if verbose:
                sys.stderr.write(f"\rimportance-weighted NLL, k={k}: {done}/{total} images")
                sys.stderr.flush()

        r = metrics.iw_nll(model, x, k=k, progress=tick)
        if verbose:
            sys.stderr.write(f"  ({time.perf_counter() - t0:.0f} s)\n")
        out.update({f"iw_nll_k{k}": round(r["nll"], 3), f"iw_nll_k{k}_stderr": round(r["stderr"], 3)})
    out["test_images"] = len(x)
    out["test_binarization_seed"] = 0
    return out


def cmd_train(a) -> int:
    if a.resume and a.family not in ("gan", "dcgan"):
        print("--resume works for gan and dcgan checkpoints", file=sys.stderr)
        return 2
    if not a.resume and not a.out:
        print("--out is required (where to save the checkpoint, e.g. checkpoints/my-model)", file=sys.stderr)
        return 2
    if a.family in ("gan", "dcgan", "gan2d"):
        return train_gan(a)
    if a.family == "classifier":
        return train_classifier_cmd(a)
    device = pick_device(a.device)
    torch.manual_seed(a.seed)
    ds = data.load_images(a.dataset, "train", device, limit=a.limit)
    val = data.load_images(a.dataset, "val", device) if a.dataset == "mnist" else data.load_images(a.dataset, "test", device)
    cfg = VAEConfig(image_shape=tuple(ds.x.shape[1:]), hidden=a.hidden, latent_dim=a.latent,
                    likelihood=a.likelihood, sigma=a.sigma, learn_sigma=a.learn_sigma, beta=a.beta,
                    autoencoder=(a.family == "ae"))
    model = build("vae", cfg).to(device)
    tcfg = TrainConfig(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr or 1e-3, seed=a.seed,
                       binarize=(a.likelihood == "bernoulli"))
    print(f"training {a.family} (latent {a.latent}, {n_params(model):,} parameters) on {ds.name} "
          f"({len(ds)} images) on {describe(device)}", file=sys.stderr)
    try:
        history = fit(model, ds.x, tcfg, val_x=val.x, callback=ProgressBar(a.family))
    except Divergence as e:
        print(f"\n{e}", file=sys.stderr)
        return 1
    model.fit_latent_prior(ds.x)
    m = test_metrics(model, a.dataset, device, k=a.eval_k) if a.eval_k >= 0 else {}
    dataset = {"name": a.dataset, "split": "train", "n": len(ds), "binarized": tcfg.binarize,
               "binarization": "dynamic (a fresh Bernoulli draw per batch)" if tcfg.binarize else "none"}
    paths = store.save(model, a.out, dataset=dataset, history=history.to_dict(), metrics=m,
                       train_config=vars(tcfg) | {"device": str(device)})
    print(json.dumps(m, indent=1))
    print(f"saved {paths[0]} and {paths[1]}", file=sys.stderr)
    return 0


def train_gan(a) -> int:
    """Train an MLP GAN or DCGAN on MNIST, or a toy GAN on 2-d data, with a fixed-noise film."""
    from .models import GANConfig
    from .watch import FixedNoiseFilm, toy_measures
    device = pick_device(a.device)
    torch.manual_seed(a.seed)
    if a.resume:
        return resume_gan(a, device)
    toy = a.family == "gan2d"
    if toy:
        x = data.toy2d(a.toy, a.limit or 16384, seed=a.seed, device=device)
        cfg = GANConfig(arch="toy", latent_dim=a.latent if a.latent != 20 else 2, data_shape=(2,),
                        loss=a.loss, label_smoothing=a.label_smoothing, label_noise=a.label_noise, d_steps=a.d_steps)
        dataset = {"name": a.toy, "n": len(x), "seed": a.seed}
    else:
        x = data.load_images("mnist", "train", device, limit=a.limit).x
        cfg = GANConfig(arch="mlp" if a.family == "gan" else "dcgan", latent_dim=a.latent if a.latent != 20 else 100,
                        loss=a.loss, label_smoothing=a.label_smoothing, label_noise=a.label_noise, d_steps=a.d_steps,
                        d_lr_mult=a.d_lr_mult or 1.0)
        dataset = {"name": "mnist", "split": "train", "n": len(x), "scaled_to": [-1, 1]}
    model = build("gan", cfg).to(device)
    lr = a.lr if a.lr is not None else (1e-3 if toy else 2e-4)
    tcfg = TrainConfig(epochs=a.epochs, batch_size=a.batch_size if not toy else max(a.batch_size, 256), lr=lr,
                       seed=a.seed, binarize=False, precision="bf16" if a.bf16 else "fp32")
    film = FixedNoiseFilm(model, n=64 if not toy else 512, seed=0)
    bar = ProgressBar(a.family)

    def on_progress(p: Progress) -> None:
        bar(p)
        if p.epoch_done:
            film.capture(model, p.step)
            if toy:
                p.history.epochs[-1]["toy"] = toy_measures(model, a.toy)

    print(f"training {a.family} ({cfg.arch}, latent {cfg.latent_dim}, {n_params(model):,} parameters) on "
          f"{dataset['name']} ({len(x)} rows) on {describe(device)}", file=sys.stderr)
    film.capture(model, 0)
    try:
        history = fit(model, x, tcfg, callback=on_progress)
    except Divergence as e:
        print(f"\n{e}", file=sys.stderr)
        return 1
    m = toy_measures(model, a.toy) if toy else {}
    paths = store.save(model, a.out, dataset=dataset, history=history.to_dict(), metrics=m,
                       train_config=vars(tcfg) | {"device": str(device)},
                       extra={"film": {"steps": film.steps, "seed": film.seed, "n": len(film.z)}},
                       extra_tensors={"film": film.tensor()})
    print(json.dumps(m, indent=1))
    print(f"saved {paths[0]} and {paths[1]}", file=sys.stderr)
    return 0


def train_classifier_cmd(a) -> int:
    """Train the MNIST classifier that FID, the Inception Score and precision/recall use."""
    from .models.classifier import Classifier, ClassifierConfig, accuracy, train_classifier
    device = pick_device(a.device)
    torch.manual_seed(a.seed)
    train = data.load_images("mnist", "train", device, limit=a.limit)
    val = data.load_images("mnist", "val", device)
    test = data.load_images("mnist", "test", device)
    model = Classifier(ClassifierConfig()).to(device)
    print(f"training the MNIST classifier ({n_params(model):,} parameters) on {len(train)} images on "
          f"{describe(device)}", file=sys.stderr)
    t0 = time.perf_counter()

    def tick(epoch, step, total):
        sys.stderr.write(f"\rclassifier epoch {epoch}/{a.epochs} {100 * step / total:5.1f}%  "
                         f"{time.perf_counter() - t0:5.0f} s")
        sys.stderr.flush()

    hist = train_classifier(model, train.x, train.y, epochs=a.epochs, batch_size=a.batch_size,
                            lr=a.lr or 1e-3, seed=a.seed, val=(val.x, val.y), progress=tick)
    m = {"test_accuracy": round(accuracy(model, test.x, test.y), 5), "test_images": len(test)}
    train_time = time.perf_counter() - t0
    from .evaluation import embed_mnist
    paths = store.save(model, a.out, dataset={"name": "mnist", "split": "train", "n": len(train)},
                       history={"epochs": hist, "train_time_s": round(train_time, 2)}, metrics=m,
                       extra_tensors=embed_mnist(model, device),
                       train_config={"epochs": a.epochs, "batch_size": a.batch_size, "lr": a.lr or 1e-3,
                                     "seed": a.seed, "augment": "random shifts of up to 2 pixels",
                                     "device": str(device)})
    print(json.dumps(m, indent=1))
    print(f"saved {paths[0]} and {paths[1]}", file=sys.stderr)
    return 0


def merge_histories(old: dict, new: dict, step_offset: int, epoch_offset: int) -> dict:
    """A resumed run's history appended to the checkpoint's: steps and epochs renumbered to follow on."""
    steps = {}
    for k in set(old.get("steps", {})) | set(new.get("steps", {})):
        a, b = old.get("steps", {}).get(k, []), new.get("steps", {}).get(k, [])
        if k == "step":
            b = [s + step_offset for s in b]
        steps[k] = list(a) + list(b)
    t_old = old.get("train_time_s", 0.0)
    epochs = list(old.get("epochs", []))
    for e in new.get("epochs", []):
        epochs.append(e | {"epoch": e["epoch"] + epoch_offset, "step": e["step"] + step_offset,
                           "time_s": round(e.get("time_s", 0.0) + t_old, 2)})
    return {"steps": steps, "epochs": epochs, "train_time_s": round(t_old + new.get("train_time_s", 0.0), 2)}


def resume_gan(a, device) -> int:
    """Continue training an image GAN checkpoint: same config, history and film extended in place."""
    from .watch import FixedNoiseFilm
    model, card = store.load(a.resume, device)
    if card["family"] != "gan" or card["config"].get("arch") == "toy":
        print(f"--resume takes an MNIST GAN checkpoint; {a.resume} is a {card['family']} "
              f"({card['config'].get('arch', '-')})", file=sys.stderr)
        return 2
    if a.d_lr_mult is not None:  # e.g. two time-scale updates (Heusel et al., 2017): a faster D
        model.config.d_lr_mult = a.d_lr_mult
    old_tc = card.get("train_config", {})
    old_hist = card.get("history", {})
    step_offset = int((old_hist.get("epochs") or [{"step": 0}])[-1]["step"])
    epoch_offset = len(old_hist.get("epochs", []))
    x = data.load_images("mnist", "train", device, limit=a.limit).x
    lr = a.lr if a.lr is not None else old_tc.get("lr", 2e-4)
    # a different seed per resumption, so the epochs do not replay the first run's batch order
    tcfg = TrainConfig(epochs=a.epochs, batch_size=old_tc.get("batch_size", a.batch_size), lr=lr,
                       seed=a.seed + 1000 * (epoch_offset + 1), binarize=False,
                       precision="bf16" if a.bf16 else "fp32")
    if device.type == "cpu" and card["config"].get("arch") == "dcgan":
        model = model.to(memory_format=torch.channels_last)  # faster CPU convolutions
        x = x.contiguous(memory_format=torch.channels_last)
    film_info = card.get("film", {"seed": 0, "n": 64, "steps": []})
    film = FixedNoiseFilm(model, n=film_info.get("n", 64), seed=film_info.get("seed", 0))
    if "film" in card.get("extra_tensors", {}):
        old_frames = store.load_extra(a.resume, "film")
        film.frames = list(old_frames.unbind(0))
        film.steps = list(film_info.get("steps", []))[:len(film.frames)]
    bar = ProgressBar(f"{card['config'].get('arch')} (resumed at epoch {epoch_offset})")

    def on_progress(p: Progress) -> None:
        bar(p)
        if p.epoch_done:
            film.capture(model, step_offset + p.step)

    print(f"resuming {a.resume} at step {step_offset} for {a.epochs} more epochs on {describe(device)}",
          file=sys.stderr)
    model.train()
    try:
        history = fit(model, x, tcfg, callback=on_progress)
    except Divergence as e:
        print(f"\n{e}", file=sys.stderr)
        return 1
    merged = merge_histories(old_hist, history.to_dict(), step_offset, epoch_offset)
    train_config = old_tc | {"epochs": epoch_offset + a.epochs, "lr": lr,
                             "resumed": old_tc.get("resumed", []) + [{"at_epoch": epoch_offset, "epochs": a.epochs,
                                                                      "seed": tcfg.seed, "device": str(device),
                                                                      "precision": tcfg.precision,
                                                                      "d_lr_mult": model.config.d_lr_mult}]}
    out = a.out or a.resume
    paths = store.save(model, out, dataset=card.get("dataset", {}), history=merged, metrics={},
                       train_config=train_config,
                       extra={"film": {"steps": film.steps, "seed": film.seed, "n": len(film.z)}},
                       extra_tensors={"film": film.tensor()})
    print(f"saved {paths[0]} and {paths[1]}", file=sys.stderr)
    return 0


def cmd_eval(a) -> int:
    device = pick_device(a.device)
    if a.all:
        return eval_all(a, device)
    if not a.path:
        print("eval needs a checkpoint path (or --all)", file=sys.stderr)
        return 2
    model, card = store.load(a.path, device)
    m = test_metrics(model, card.get("dataset", {}).get("name", "mnist"), device, k=a.k, limit=a.limit)
    print(json.dumps(m, indent=1))
    if a.write:
        store.update_card(a.path, metrics=m)
        print(f"metrics written to {a.path}.json", file=sys.stderr)
    return 0


def eval_all(a, device) -> int:
    from . import evaluation
    folder = a.path or "checkpoints"
    t0 = time.perf_counter()

    def say(what: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f} s] {what}", file=sys.stderr)

    try:
        report = evaluation.evaluate_all(folder, device, n=a.n, seed=a.seed, progress=say)
    except (store.CheckpointError, FileNotFoundError) as e:
        print(f"cannot evaluate: {e}\n(the MNIST classifier is trained with "
              f"python -m genlab train classifier --out {folder}/{evaluation.CLASSIFIER})", file=sys.stderr)
        return 1
    md = evaluation.report_markdown(report)
    out = Path(a.report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    out.with_suffix(".md").write_text("# genlab evaluation report\n\n" + md)
    print(md)
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.json')} ({time.perf_counter() - t0:.0f} s)",
          file=sys.stderr)
    if a.readme:
        p = Path(a.readme)
        p.write_text(evaluation.replace_between(p.read_text(), md))
        print(f"updated the table in {p}", file=sys.stderr)
    return 0


def cmd_sample(a) -> int:
    device = pick_device(a.device)
    model, _ = store.load(a.path, device)
    g = torch.Generator(device=device).manual_seed(a.seed)
    with torch.inference_mode():
        images = model.decode(model.prior_sample(a.n, g))
    arr = viz.grid_array(images, nrow=a.nrow, upscale=a.upscale)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_bytes(viz.png_bytes(arr, compress_level=6))
    print(f"wrote {a.out} ({a.n} samples, seed {a.seed})", file=sys.stderr)
    return 0


def cmd_list(a) -> int:
    for p in store.list_checkpoints(a.folder):
        try:
            card = store.read_card(p)
        except store.CheckpointError as e:
            print(f"{p.name}: unreadable ({e})")
            continue
        m = card.get("metrics", {})
        if card["family"] == "classifier":
            print(f"{p.name:24s} classifier  test accuracy {m.get('test_accuracy', '-')}")
            continue
        nll = next((f"{k}={v}" for k, v in m.items() if k.startswith("iw_nll") and "stderr" not in k), "")
        print(f"{p.name:24s} {card['family']:6s} latent {card['config'].get('latent_dim')}  "
              f"-ELBO {m.get('test_neg_elbo', '-')}  {nll}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m genlab", description="genlab: train, evaluate and sample generative models")
    sub = ap.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train", help="train a model and save a checkpoint")
    t.add_argument("family", choices=["vae", "ae", "gan", "dcgan", "gan2d", "classifier"],
                   help="vae; ae (plain autoencoder); gan (MLP GAN), dcgan, gan2d (toy 2-d GAN)")
    t.add_argument("--latent", type=int, default=20, help="latent dimensions (default 20; GANs: 100, toy: 2)")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--out", default=None, help="checkpoint path without suffix, e.g. checkpoints/my-vae")
    t.add_argument("--resume", default=None, help="gan/dcgan: continue this checkpoint for --epochs more "
                   "(history and film extended; written back to it unless --out is given)")
    t.add_argument("--dataset", choices=["mnist", "digits8"], default="mnist")
    t.add_argument("--hidden", type=_parse_hidden, default=(500, 250), help="hidden sizes, e.g. 500,250")
    t.add_argument("--likelihood", choices=["bernoulli", "gaussian"], default="bernoulli")
    t.add_argument("--sigma", type=float, default=0.1, help="Gaussian decoder std (initial value if learned)")
    t.add_argument("--learn-sigma", action="store_true", help="learn the Gaussian decoder's std")
    t.add_argument("--beta", type=float, default=1.0, help="weight of the KL term")
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--lr", type=float, default=None, help="default 1e-3 (VAE, toy GAN), 2e-4 (image GANs)")
    t.add_argument("--toy", choices=list(data.TOY_SETS), default="ring8", help="gan2d: the toy data set")
    t.add_argument("--loss", choices=["nonsaturating", "minimax"], default="nonsaturating", help="GAN generator loss")
    t.add_argument("--label-smoothing", type=float, default=0.0, help="GAN: one-sided, real targets 1 - s")
    t.add_argument("--label-noise", type=float, default=0.0, help="GAN: probability of flipping D's labels")
    t.add_argument("--d-steps", type=int, default=1, help="GAN: discriminator steps per generator step")
    t.add_argument("--d-lr-mult", type=float, default=None, help="GAN: discriminator learning rate = lr x this "
                   "(default 1; with --resume it replaces the checkpoint's)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--bf16", action="store_true", help="train with bfloat16 autocast (about 1.5x faster for the "
                   "DCGAN on CPUs with AMX; also for recent GPUs)")
    t.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    t.add_argument("--eval-k", type=int, default=1000, help="importance samples for the test NLL (0: ELBO only, -1: skip)")
    t.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="test -ELBO and importance-weighted NLL of a checkpoint; "
                       "--all: sample-quality report of every checkpoint")
    e.add_argument("path", nargs="?", help="a checkpoint (or, with --all, the folder; default checkpoints)")
    e.add_argument("--all", action="store_true", help="FID, IS, label entropy, precision/recall of every "
                   "checkpoint in the folder, with calibration rows; writes a markdown and a JSON report")
    e.add_argument("--n", type=int, default=10_000, help="--all: samples per model (default 10000)")
    e.add_argument("--seed", type=int, default=0, help="--all: sampling seed")
    e.add_argument("--report", default="docs/eval", help="--all: report path without suffix (default docs/eval)")
    e.add_argument("--readme", default=None, help="--all: also replace the table between the eval markers "
                   "of this markdown file (e.g. README.md)")
    e.add_argument("--k", type=int, default=1000, help="importance samples per image (default 1000)")
    e.add_argument("--limit", type=int, default=None, help="score only the first N test images")
    e.add_argument("--write", action="store_true", help="store the metrics in the checkpoint's card")
    e.add_argument("--device", default=None)
    e.set_defaults(func=cmd_eval)

    s = sub.add_parser("sample", help="write a grid of samples to a PNG")
    s.add_argument("path")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True)
    s.add_argument("--n", type=int, default=64)
    s.add_argument("--nrow", type=int, default=8)
    s.add_argument("--upscale", type=int, default=2)
    s.add_argument("--device", default=None)
    s.set_defaults(func=cmd_sample)

    ls = sub.add_parser("list", help="list the checkpoints in a folder")
    ls.add_argument("folder", nargs="?", default="checkpoints")
    ls.set_defaults(func=cmd_list)

    a = ap.parse_args(argv)
    if getattr(a, "epochs", 1) < 1 or getattr(a, "latent", 1) < 1:
        ap.error("--epochs and --latent must be at least 1")
    try:
        return a.func(a)
    except (store.CheckpointError, data.DataError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
