"""Command line: python -m genlab train | eval | sample | list."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import typing
from pathlib import Path
from typing import Any

import torch

from . import data, recipes, store, viz
from .device import describe, pick_device
from .models import base
from .train import Divergence, Progress, TrainConfig


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
        raise argparse.ArgumentTypeError(f"takes comma-separated integers, e.g. 500,250 (got {s!r})")
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes must be positive")
    return sizes


def cmd_train(a) -> int:
    if a.resume:
        return resume(a)
    if not a.out:
        print("--out is required (where to save the checkpoint, e.g. checkpoints/my-model)", file=sys.stderr)
        return 2
    device = pick_device(a.device)
    recipe = recipes.make_recipe(a.preset, data=a.dataset, limit=a.limit, epochs=a.epochs, batch_size=a.batch_size,
                                 lr=a.lr, seed=a.seed, precision="bf16" if a.bf16 else None, **a.config)
    fam = base.family(recipe.family)
    if fam.trainer is not None:  # a family trained outside the one loop
        paths, metrics = fam.trainer(recipe, device, a.out, lambda m: print(f"{m} on {describe(device)}",
                                                                            file=sys.stderr))
        print(json.dumps(metrics, indent=1))
        print(f"saved {paths[0]} and {paths[1]}", file=sys.stderr)
        return 0
    run = recipes.Run(recipe, device)
    print(f"training {recipes.describe_run(run)} on {describe(device)}", file=sys.stderr)
    try:
        history = run.fit(callback=ProgressBar(a.preset))
    except Divergence as e:
        print(f"\n{e}", file=sys.stderr)
        return 1
    skip = a.eval_k is not None and a.eval_k < 0
    metrics, records = ({}, []) if skip else run.score(k=a.eval_k, progress=_iw_progress(a.eval_k))
    paths = run.save(a.out, history, metrics, records)
    print(json.dumps(metrics | {"likelihoods": [r.to_dict() for r in records]}, indent=1))
    print(f"saved {paths[0]} and {paths[1]}", file=sys.stderr)
    return 0


def _iw_progress(k: int | None):
    t0 = time.perf_counter()

    def tick(done, total):
        what = f"k={k}" if k is not None else "the model's default k"
        sys.stderr.write(f"\rtest likelihood, {what}: {done}/{total} ({time.perf_counter() - t0:.0f} s)"
                         + ("\n" if done == total else ""))
        sys.stderr.flush()
    return tick


def resume(a) -> int:
    """Continue a checkpoint for --epochs more: same config; history and film extended in place."""
    device = pick_device(a.device)
    run, card = recipes.run_from_checkpoint(a.resume, device, limit=a.limit)
    wrong = recipes.preset_mismatch(a.preset, card["family"], run.model.config)
    if wrong:
        kind = base.describe_card(card)["kind"]
        print(f"--resume: {a.resume} ({kind}) {wrong}; resume it with its own preset", file=sys.stderr)
        return 2
    old_hist = card.get("history", {})
    step_offset = int((old_hist.get("epochs") or [{"step": 0}])[-1]["step"])
    epoch_offset = len(old_hist.get("epochs", []))
    fixed = {k: v for k, v in a.config.items() if not config_fields(run.model.config)[k].metadata.get("resume")}
    if fixed:
        print(f"--resume keeps the checkpoint's architecture; {', '.join(fixed)} cannot change", file=sys.stderr)
        return 2
    for k, v in a.config.items():  # e.g. a faster discriminator (two time-scale updates)
        setattr(run.model.config, k, v)
    old_tc = card.get("train_config", {})
    # a different seed per resumption, so the epochs do not replay the first run's batch order
    run.recipe.train = TrainConfig(**{**vars(run.recipe.train), "epochs": a.epochs,
                                      "lr": a.lr if a.lr is not None else run.recipe.train.lr,
                                      "seed": a.seed + 1000 * (epoch_offset + 1),
                                      "precision": "bf16" if a.bf16 else "fp32"})
    print(f"resuming {a.resume} at step {step_offset} for {a.epochs} more epochs on {describe(device)}",
          file=sys.stderr)
    try:
        history = run.fit(callback=ProgressBar(f"{card['name']} (resumed at epoch {epoch_offset})"),
                          step_offset=step_offset)
    except Divergence as e:
        print(f"\n{e}", file=sys.stderr)
        return 1
    merged = recipes.merge_histories(old_hist, run.history_dict(history), step_offset, epoch_offset)
    resumed = old_tc.get("resumed", []) + [{"at_epoch": epoch_offset, "epochs": a.epochs, "seed": run.recipe.train.seed,
                                            "device": str(device), "precision": run.recipe.train.precision}
                                           | a.config]
    sections = run.card_sections(merged, card.get("metrics", {}), [])
    sections["train_config"] = old_tc | {"epochs": epoch_offset + a.epochs, "lr": run.recipe.train.lr,
                                         "resumed": resumed}
    sections["dataset"] = card.get("dataset", sections["dataset"])
    sections["metrics"] = {}  # the old test figures describe the old weights: `eval --write` measures the new
    out = a.out or a.resume
    paths = store.save(run.model, out, **sections)
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
    caps = model.capabilities
    name = card.get("name", a.path)
    if not caps.generative:
        m = card.get("metrics", {})
        print(f"{name} is {base.family(card['family']).describe(model.config)}; its card reports "
              + ", ".join(f"{k} {v}" for k, v in m.items()))
        return 0
    dataset = card.get("dataset", {}).get("name", "mnist")
    metrics, records = recipes.score(model, dataset, device, k=a.k, limit=a.limit, progress=_iw_progress(a.k))
    out = dict(metrics)
    if records:
        out["likelihoods"] = [r.to_dict() for r in records]
        for r in records:
            err = f" ± {r.stderr:.2f}" if r.stderr is not None else ""
            bpd = f" = {r.bpd:.4f} bits per dimension" if r.bpd is not None else ""
            print(f"{r.label}: {r.value:.2f}{err} nats per example{bpd}", file=sys.stderr)
    if caps.mnist_images and dataset == "mnist" and (not records or caps.denoises):
        # no likelihood (or a sampler whose steps matter): measure the samples
        from . import evaluation
        try:
            ref = evaluation.load_reference(Path(a.path).parent, device)
        except (store.CheckpointError, FileNotFoundError) as e:
            print(f"{name} defines no likelihood, and its samples cannot be scored: {e}", file=sys.stderr)
            return 1
        print(f"{name}{'' if records else ' defines no likelihood'}: scoring {a.n:,} samples against the MNIST test set",
              file=sys.stderr)
        measured = evaluation.evaluate_model(ref, model, card, n=a.n, seed=a.seed)
        out["quality"] = measured.get("quality")
        if "agreement" in measured:  # a conditional model: does it draw the digit it is asked for?
            out["agreement"] = measured["agreement"]
            print("the classifier reads the asked label in " + ", ".join(
                f"{d}: {100 * v:.1f} %" for d, v in enumerate(measured["agreement"]["per_label"]))
                + f" (mean {100 * measured['agreement']['mean']:.1f} %)", file=sys.stderr)
        if "sampler_fid" in measured:
            out["sampler_fid"] = measured["sampler_fid"]
            print("FID against DDIM steps: " + ", ".join(f"{r['steps']} steps {r['fid']:.1f} ({r['seconds']:.0f} s)"
                                                         for r in measured["sampler_fid"]), file=sys.stderr)
    elif not records and not metrics:
        print(f"{name}: a {card['family']} on {dataset} has no likelihood or test measure to report", file=sys.stderr)
        return 1
    print(json.dumps(out, indent=1))
    if a.write:
        store.update_card(a.path, metrics=metrics, likelihoods=[r.to_dict() for r in records],
                          **{k: out[k] for k in ("sampler_fid",) if k in out})
        print(f"metrics written to {a.path}.json", file=sys.stderr)
    return 0


def eval_all(a, device) -> int:
    from . import evaluation
    folder = a.path or "checkpoints"
    t0 = time.perf_counter()

    def say(what: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f} s] {what}", file=sys.stderr)

    try:
        prev_path = Path(a.report).with_suffix(".json")
        previous = json.loads(prev_path.read_text()) if a.only and prev_path.exists() else None
        report = evaluation.evaluate_all(folder, device, n=a.n, seed=a.seed, progress=say, only=a.only,
                                         previous=previous)
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
    model, card = store.load(a.path, device)
    caps = model.capabilities
    if not caps.generative or not caps.images:
        why = base.missing(caps, ("generative", "images"))
        print(f"{card.get('name', a.path)} {why}: there is no image grid to write", file=sys.stderr)
        return 2
    images = base.sample(model, a.n, torch.Generator(device=device).manual_seed(a.seed))
    arr = viz.grid_array(images, nrow=a.nrow, upscale=a.upscale)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_bytes(viz.png_bytes(arr, compress_level=6))
    print(f"wrote {a.out} ({a.n} samples, seed {a.seed})", file=sys.stderr)
    return 0


def cmd_list(a) -> int:
    """The checkpoints of a folder, then the families this genlab has (plugins' among them) and
    any family module or plugin that was not loaded, with why."""
    for p in store.list_checkpoints(a.folder):
        try:
            card = store.read_card(p)
            info = base.describe_card(card)
        except (store.CheckpointError, ValueError, TypeError) as e:
            print(f"{p.name}: unreadable ({e})")
            continue
        best = base.best_likelihood(base.card_likelihoods(card))
        fam = base.family(card["family"])
        shown = [f"{label} {card.get('metrics', {})[k]}" for k, label in fam.metrics.items()
                 if k in card.get("metrics", {})][:1]
        if best is not None:
            shown.append(f"{best.label} {best.value:.2f}")
        latent = f"latent {info['latent_dim']}" if info["latent"] != "none" else ""
        print(f"{p.name:24s} {info['kind']:10s} {latent:10s} " + "  ".join(shown))
    print("\nfamilies:")
    for name in base.families():
        fam = base.family(name)
        where = fam.model_cls.__module__
        origin = "built in" if where.startswith("genlab.") else f"plugin {where}"
        trains = ", ".join(n for n, (f, _) in base.presets().items() if f == name)
        print(f"  {name:12s} {origin:24s} " + (f"train: {trains}" if trains else "brought, not trained"))
    for source, why in base.problems():
        print(f"  not loaded: {source}: {why}")
    return 0


def cmd_structure(a) -> int:
    """The structure-search experiment (Gonsior et al. 2021) on table data; merges into the report."""
    from . import structure
    from .tabular import TABLES
    names = list(TABLES) if a.data == "all" else [a.data]
    if min(a.depths) < 1 or a.instances < 1 or a.offspring < 1 or a.iterations < 1 or a.search_iterations < 1:
        raise ValueError("depths, instances, offspring and iterations must be at least 1")
    p = structure.Protocol(iterations=a.iterations, search_iterations=a.search_iterations, offspring=a.offspring)
    device = torch.device(a.device) if a.device else pick_device()
    out = Path(a.report)
    json_path = out.with_suffix(".json")
    results = json.loads(json_path.read_text()) if json_path.exists() else {}
    for name in names:
        t0 = time.perf_counter()
        if a.reference_only:
            if name not in results:
                raise ValueError(f"{json_path} has no {name} results to add reference rows to; run without "
                                 "--reference-only first")
            structure.rerun_reference(results, name, a.reference_seeds, device)
        else:
            results[name] = structure.run_table(name, tuple(a.depths), a.instances, p, a.seed, a.reference_seeds,
                                                device, log=lambda m: print(m, file=sys.stderr, flush=True))
        print(f"{name}: {time.perf_counter() - t0:.0f} s in all", file=sys.stderr)
        out.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=1))
        out.with_suffix(".md").write_text(structure.report_markdown(results))
        if a.readme:
            from .evaluation import replace_between
            readme = Path(a.readme)
            readme.write_text(replace_between(readme.read_text(), structure.readme_markdown(results),
                                         "<!-- structure:begin -->", "<!-- structure:end -->"))
    print(f"wrote {json_path} and {out.with_suffix('.md')}")
    return 0


# ----------------------------------------------------------------------------- train's options
def config_fields(config) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(config)}


def preset_of(argv: list[str]) -> str | None:
    """The preset named after `train` on a command line (its options join the parser), if any."""
    if len(argv) >= 2 and argv[0] == "train" and argv[1] in base.presets():
        return argv[1]
    return None


def _field_option(group, f: dataclasses.Field, hint, default) -> str:
    """Add one config field as `--field-name` (type, choices and help from the field); its dest."""
    meta = f.metadata
    names = [f"--{meta.get('flag', f.name.replace('_', '-'))}"]
    if f.name == "latent_dim":
        names.append("--latent")  # the short form every latent family takes
    text = f"{meta.get('help', '')} (default {_shown(default)})".strip()
    kw: dict = {"dest": f.name, "default": None, "help": text}
    if hint is bool:
        kw["action"] = argparse.BooleanOptionalAction
    elif "tuple" in str(hint):
        kw["type"], kw["metavar"] = _parse_hidden, "N,N,..."
    else:
        kw["type"] = hint if hint in (int, float, str) else str
        if meta.get("choices"):
            kw["choices"] = list(meta["choices"])
    group.add_argument(*names, **kw)
    return f.name


def _shown(v) -> str:
    return ",".join(map(str, v)) if isinstance(v, tuple) else str(v)


def family_options(preset: str) -> list[tuple[dataclasses.Field, Any, Any]]:
    """The config fields `train PRESET` takes: (field, type, default), the preset's fixed fields
    and those the recipe fills from the data (`cli=False`) left out."""
    fam_name, p = base.presets()[preset]
    cls = base.family(fam_name).config_cls
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name], p.defaults.get(f.name, f.default)) for f in dataclasses.fields(cls)
            if f.metadata.get("cli", True) and f.name not in p.fixed and not f.name.startswith("_")]


def presets_help() -> str:
    """`train --help`'s list of presets with their options."""
    lines = ["presets and their options (python -m genlab train PRESET --help for each option's help):"]
    for name, (fam_name, p) in base.presets().items():
        flags = " ".join(f"--{f.metadata.get('flag', f.name.replace('_', '-'))}" for f, _, _ in family_options(name))
        lines.append(f"  {name:11s} {p.help or base.family(fam_name).name}: {flags}")
    return "\n".join(lines)


def train_parser(sub, preset: str | None) -> argparse.ArgumentParser:
    """`train`: the options every preset takes, and those of `preset`'s family config, generated
    from its dataclass fields (names, types, defaults, help)."""
    t = sub.add_parser("train", help="train a model and save a checkpoint", epilog=presets_help(), allow_abbrev=False,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("preset", choices=list(base.presets()), metavar="PRESET", help="what to train (listed below)")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--out", default=None, help="checkpoint path without suffix, e.g. checkpoints/my-vae")
    t.add_argument("--resume", default=None, help="continue this checkpoint for --epochs more "
                   "(history and film extended; written back to it unless --out is given)")
    t.add_argument("--dataset", choices=["mnist", "digits8"], default=None,
                   help="image data (default: the preset's)")
    t.add_argument("--toy", choices=list(data.TOY_SETS), default=None, help="2-d toy data instead of images")
    t.add_argument("--batch-size", type=int, default=None, help="default: the family's")
    t.add_argument("--lr", type=float, default=None, help="default: the family's")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--bf16", action="store_true", help="train with bfloat16 autocast (CPUs with AMX, recent GPUs)")
    t.add_argument("--limit", type=int, default=None, help="use only the first N training examples")
    t.add_argument("--eval-k", type=int, default=None, help="importance samples for the test NLL (default: the "
                   "model's own; 0: the bound only; -1: skip the test set)")
    t.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    names = []
    if preset is not None:
        group = t.add_argument_group(f"{preset} options (its config's fields)")
        names = [_field_option(group, f, hint, default) for f, hint, default in family_options(preset)]
    t.set_defaults(func=cmd_train, config_names=names)
    return t


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m genlab", allow_abbrev=False, description="genlab: train, evaluate and sample generative models")
    sub = ap.add_subparsers(dest="cmd", required=True)

    train_parser(sub, preset_of(argv))
    e = sub.add_parser("eval", help="a checkpoint's test likelihoods (or, for models without one, its sample "
                       "quality); --all: sample-quality report of every checkpoint")
    e.add_argument("path", nargs="?", help="a checkpoint (or, with --all, the folder; default checkpoints)")
    e.add_argument("--all", action="store_true", help="FID, IS, label entropy, precision/recall of every "
                   "checkpoint in the folder, with calibration rows; writes a markdown and a JSON report")
    e.add_argument("--n", type=int, default=10_000, help="samples per model for sample quality (default 10000)")
    e.add_argument("--seed", type=int, default=0, help="sampling seed for sample quality")
    e.add_argument("--report", default="docs/eval", help="--all: report path without suffix (default docs/eval)")
    e.add_argument("--readme", default=None, help="--all: also replace the table between the eval markers "
                   "of this markdown file (e.g. README.md)")
    e.add_argument("--only", nargs="+", default=None, help="--all: measure only these checkpoints and keep the "
                   "other rows of the existing report (same --n and --seed)")
    e.add_argument("--k", type=int, default=None, help="importance samples per example (default: the model's; "
                   "VAE 1000 posterior samples, flow 1 dequantisation draw)")
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

    st = sub.add_parser("structure", help="structure search for coupling flows on table data (Gonsior et al. "
                        "2021): parity, random and searched masks at each depth, a Gaussian and a reference flow")
    st.add_argument("--data", choices=["magic", "sonar", "yeast", "turbine", "all"], default="magic")
    st.add_argument("--depths", type=int, nargs="+", default=[2, 4, 6, 8], help="layers L (default 2 4 6 8)")
    st.add_argument("--instances", type=int, default=20, help="instances per depth and layout (default 20)")
    st.add_argument("--offspring", type=int, default=1, help="offspring per search iteration (default 1, the paper's)")
    st.add_argument("--search-iterations", type=int, default=200, help="default 200")
    st.add_argument("--iterations", type=int, default=1250, help="SGD iterations of a full training (default 1250)")
    st.add_argument("--reference-seeds", type=int, default=3, help="reference flows trained (default 3)")
    st.add_argument("--seed", type=int, default=0)
    st.add_argument("--reference-only", action="store_true", help="recompute only the reference-flow rows of "
                    "the tables already in the report")
    st.add_argument("--report", default="docs/structure-search", help="report path without suffix; a JSON "
                    "already there is merged (one data set replaced)")
    st.add_argument("--readme", default=None, help="also replace the tables between the structure markers "
                    "of this markdown file (e.g. docs/structure-search-summary.md)")
    st.add_argument("--device", default=None)
    st.set_defaults(func=cmd_structure)

    for fam in map(base.family, base.families()):  # commands a family brings (export-onnx, import-onnx)
        for name, (text, add_arguments, run) in fam.commands.items():
            c = sub.add_parser(name, help=text, allow_abbrev=False)
            add_arguments(c)
            c.set_defaults(func=run)

    ls = sub.add_parser("list", help="list the checkpoints in a folder")
    ls.add_argument("folder", nargs="?", default="checkpoints")
    ls.set_defaults(func=cmd_list)

    a, rest = ap.parse_known_args(argv)
    if rest:
        flag = next((r for r in rest if r.startswith("--")), rest[0])
        where = f"to {a.preset}" if a.cmd == "train" else f"to {a.cmd}"
        print(f"error: {flag.lstrip('-').split('=')[0].replace('-', '_')} does not apply {where}", file=sys.stderr)
        return 2
    if a.cmd == "train":
        a.config = {k: getattr(a, k) for k in a.config_names if getattr(a, k) is not None}
        if a.epochs < 1 or a.config.get("latent_dim", 1) < 1:
            ap.error("--epochs and --latent-dim must be at least 1")
        if a.toy is not None:
            if a.dataset is not None:
                ap.error("give --dataset (images) or --toy (2-d points), not both")
            a.dataset = a.toy
    try:
        return a.func(a)
    except (store.CheckpointError, data.DataError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
