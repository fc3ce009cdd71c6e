"""Checkpoints: `NAME.json` (the card) and the weights file it names, tensors only.

The card holds the family, the config that rebuilds the architecture, the data set, the
training history, metrics, the genlab version, and the name and SHA-256 of its weights file.
Loading checks all of it before building anything, and nothing is ever unpickled.

A save commits in one rename. The weights go first, under a name made from their content
(`NAME.<16 hex digits of the SHA-256>.safetensors`), beside whatever is there; then the card
is renamed into place, and that rename is the commit: until it, the old card names the old
weights, which are still there; after it, the new card names the new ones. Only then is the
previous weights file removed. A writer killed at any point leaves the old checkpoint or the
new one, whole (tests/test_store.py kills one between every two steps). Checkpoints written
before this layout (`NAME.safetensors`, named by no card field) load as they always did.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import re
import struct
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from . import __version__
from .models import base as _models

FORMAT = "genlab-checkpoint"
FORMAT_VERSION = 1
REQUIRED = ("format", "format_version", "family", "config", "weights_sha256")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be loaded; the message says which file and why."""


NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_CONTENT = re.compile(r"\.[0-9a-f]{16}$")  # the content part of a weights file's stem


def check_name(name: str) -> str | None:
    """None when `name` is a good checkpoint name, else what is wrong with it."""
    if not NAME_RE.fullmatch(name or ""):
        return "Use 1–64 letters, digits, '-' or '_' (starting with a letter or digit)."
    return None


def _base(path: str | os.PathLike) -> Path:
    """"folder/NAME" from the base path or any of the checkpoint's files."""
    p = Path(path)
    if p.suffix in (".json", ".safetensors"):
        p = p.with_suffix("")
    return p.with_name(_CONTENT.sub("", p.name))


def _paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(weights file, card file): the weights the card names, or NAME.safetensors for a card
    written before weights were named by content (or no card yet)."""
    base = _base(path)
    card_path = base.with_name(base.name + ".json")
    legacy = base.with_name(base.name + ".safetensors")
    try:
        named = _weights_named(card_path)
    except (OSError, ValueError, AttributeError):
        return legacy, card_path
    return (base.with_name(named) if _weights_name_ok(base.name, named) else legacy), card_path


_NAMED: dict[str, tuple[tuple[int, int, int], object]] = {}  # card path -> ((inode, mtime, size), weights_file)


def _weights_named(card_path: Path):
    """The `weights_file` a card names, read again only when the card file changed (a server asks
    for it on every render it keys by a model's files; a card can hold a long history)."""
    st = card_path.stat()
    key = (st.st_ino, st.st_mtime_ns, st.st_size)
    hit = _NAMED.get(str(card_path))
    if hit is not None and hit[0] == key:
        return hit[1]
    named = json.loads(card_path.read_bytes()).get("weights_file")
    if len(_NAMED) > 256:
        _NAMED.clear()
    _NAMED[str(card_path)] = (key, named)
    return named


def _weights_name_ok(name: str, weights_file) -> bool:
    """A card may name only its own content-named weights file in its own folder."""
    return isinstance(weights_file, str) and re.fullmatch(re.escape(name) + r"\.[0-9a-f]{16}\.safetensors",
                                                          weights_file) is not None


def checkpoint_files(path: str | os.PathLike) -> list[Path]:
    """The files a checkpoint is made of: its weights and its card."""
    weights, card = _paths(path)
    return [weights, card]


def _step(what: str) -> None:
    """Called between the steps of a write (a test replaces it to kill the writer there)."""


def _atomic_write(target: Path, data: bytes, what: str = "file", overwrite: bool = True) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a checkpoint is an ordinary file
        _step(f"{what} written")
        if overwrite:
            os.replace(tmp, target)
        else:  # a link fails where the name exists: no other writer's file is ever replaced
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise CheckpointError(f"{target.with_suffix('').name} is taken: a checkpoint of that name exists") from None
            finally:
                Path(tmp).unlink(missing_ok=True)
        _step(f"{what} renamed")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(model: torch.nn.Module, path: str | os.PathLike, *, dataset: dict | None = None,
         history: dict | None = None, metrics: dict | None = None, train_config: dict | None = None,
         likelihoods: list[dict] | None = None, extra: dict | None = None,
         extra_tensors: dict[str, torch.Tensor] | None = None, overwrite: bool = True) -> tuple[Path, Path]:
    """Write model weights and card, committed by one rename (the module's docstring). Front ends call this through
    `recipes.Run.save`, so every card has the same sections.

    Args:
        model: a registered family's model (has .family and a dataclass .config).
        path: "folder/name" (a .json or .safetensors suffix is dropped).
        dataset, history, metrics, train_config, extra: card sections (JSON-ready dicts).
        likelihoods: LikelihoodRecord dicts (method, value, stderr, settings, terms, n).
        extra_tensors: named tensors that are not weights (e.g. a fixed-noise film), stored
            as "extra.NAME" beside the weights; read them back with load_extra.
        overwrite: False refuses (CheckpointError) where a checkpoint of the name exists, even
            one another writer commits at the same moment, and leaves nothing behind.
    Returns:
        (weights path, card path).
    """
    base = _base(path)
    previous, card_path = _paths(base)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    extras = {f"extra.{k}": v.detach().to("cpu").contiguous() for k, v in (extra_tensors or {}).items()}
    tensors.update(extras)
    blob = st_save(tensors, metadata={"format": FORMAT})
    digest = hashlib.sha256(blob).hexdigest()
    weights_path = base.with_name(f"{base.name}.{digest[:16]}.safetensors")
    card = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "genlab_version": __version__,
        "name": card_path.stem,
        "family": model.family,
        "config": dataclasses.asdict(model.config),
        "dataset": dataset or {},
        "train_config": train_config or {},
        "history": history or {},
        "metrics": metrics or {},
        "likelihoods": list(likelihoods or []),
        "n_params": _models.n_params(model),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "weights_file": weights_path.name,
        "weights_sha256": digest,
        "weights_bytes": len(blob),
        "tensors": {k: list(v.shape) for k, v in tensors.items()},
        "extra_tensors": {k[len("extra."):]: list(v.shape) for k, v in extras.items()},
        **(extra or {}),
    }
    if not overwrite and card_path.exists():
        raise CheckpointError(f"{base.name} is taken: a checkpoint of that name exists")
    fresh = not weights_path.exists()
    _atomic_write(weights_path, blob, "weights")
    try:
        _atomic_write(card_path, json.dumps(card, indent=1).encode(), "card", overwrite)  # the commit
    except CheckpointError:
        if fresh:
            weights_path.unlink(missing_ok=True)
        raise
    for old in (previous, base.with_name(base.name + ".safetensors")):
        if old != weights_path:
            old.unlink(missing_ok=True)
    _step("old weights removed")
    return weights_path, card_path


def read_card(path: str | os.PathLike) -> dict:
    """The validated card of a checkpoint (no weights read). Raises CheckpointError."""
    _, card_path = _paths(path)
    if not card_path.exists():
        raise CheckpointError(f"{card_path}: card not found (a checkpoint is NAME.json + NAME.safetensors)")
    try:
        card = json.loads(card_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{card_path}: not valid JSON ({e}); the card is corrupt or truncated") from e
    if not isinstance(card, dict):
        raise CheckpointError(f"{card_path}: the card must be a JSON object")
    missing = [k for k in REQUIRED if k not in card]
    if missing:
        raise CheckpointError(f"{card_path}: not a genlab card, missing {missing}")
    if card["format"] != FORMAT or card["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"{card_path}: format {card['format']!r} v{card['format_version']} "
                              f"is not {FORMAT!r} v{FORMAT_VERSION}")
    if "weights_file" in card and not _weights_name_ok(card_path.stem, card["weights_file"]):
        raise CheckpointError(f"{card_path}: weights_file {card['weights_file']!r} is not "
                              f"{card_path.stem}.<16 hex digits>.safetensors beside the card")
    if card["family"] not in _models.families():
        raise CheckpointError(f"{card_path}: unknown model family {card['family']!r}; "
                              f"this genlab knows {', '.join(_models.families())}")
    return _upgrade(card)


def _upgrade(card: dict) -> dict:
    """Cards written before likelihoods were records kept them as metric keys
    (iw_nll_k1000, iw_nll_k1000_stderr, test_neg_elbo): read those as records."""
    if "likelihoods" in card or not isinstance(card.get("metrics"), dict):
        return card
    m = card["metrics"]
    records = []
    seed = {"binarization_seed": m["test_binarization_seed"]} if "test_binarization_seed" in m else {}
    if "test_neg_elbo" in m and "test_kl" in m:
        records.append({"method": "elbo", "value": m["test_neg_elbo"], "stderr": None, "settings": seed,
                        "terms": {"recon": m.get("test_recon"), "kl": m["test_kl"]}, "n": m.get("test_images")})
    for key, v in m.items():
        if key.startswith("iw_nll_k") and not key.endswith("_stderr"):
            records.append({"method": "iw", "value": v, "stderr": m.get(key + "_stderr"),
                            "settings": seed | {"k": int(key[len("iw_nll_k"):])}, "terms": {},
                            "n": m.get("test_images")})
    card["likelihoods"] = records
    card["metrics"] = {k: v for k, v in m.items() if not k.startswith("iw_nll_k")}
    return card


def _refuse_pickle(weights_path: Path, first: bytes) -> None:
    """A pickle (protocol 2+ starts with 0x80) or a torch.save zip ("PK") is refused by name.
    A safetensors file starts with an 8-byte length and then "{", whatever its first byte."""
    if first[8:9] != b"{" and (first[:1] == b"\x80" or first[:2] == b"PK"):
        raise CheckpointError(f"{weights_path}: this is a pickle or a torch.save zip, not safetensors; "
                              f"genlab never unpickles files. Re-save the weights with safetensors.")


def _header(weights_path: Path) -> dict:
    """The safetensors header (tensor names, dtypes, shapes) without reading the tensors."""
    try:
        with open(weights_path, "rb") as f:
            first = f.read(9)
            _refuse_pickle(weights_path, first)
            f.seek(0)
            (n,) = struct.unpack("<Q", f.read(8))
            if n > 100_000_000:
                raise ValueError(f"a {n}-byte header")
            head = json.loads(f.read(n))
    except (OSError, struct.error, ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{weights_path}: not a valid safetensors file ({e})") from e
    if not isinstance(head, dict):
        raise CheckpointError(f"{weights_path}: not a valid safetensors header")
    return {k: v for k, v in head.items() if k != "__metadata__" and isinstance(v, dict)}


def _parse_weights(weights_path: Path, card: dict) -> dict[str, torch.Tensor]:
    if not weights_path.exists():
        raise CheckpointError(f"{weights_path}: weights file not found")
    blob = weights_path.read_bytes()
    _refuse_pickle(weights_path, blob[:9])
    if len(blob) != card.get("weights_bytes", len(blob)) or hashlib.sha256(blob).hexdigest() != card["weights_sha256"]:
        raise CheckpointError(f"{weights_path}: {len(blob)} bytes whose SHA-256 does not match the card; "
                              f"the file is truncated or was modified")
    try:
        return st_load(blob)
    except Exception as e:  # safetensors raises its own error type for bad headers
        raise CheckpointError(f"{weights_path}: not a valid safetensors file ({e})") from e


def load(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict]:
    """Load a checkpoint, validated, in eval mode on `device`.

    Args:
        path: "folder/name" or either of its two files.
        device: where the weights go.
    Returns:
        (model, card).
    Raises:
        CheckpointError: missing or truncated files, a pickle, an unknown family, a config
            that does not build, or tensors whose names or shapes do not match the config.
    """
    weights_path, card_path = _paths(path)
    card = read_card(card_path)
    if not weights_path.exists():
        raise CheckpointError(f"{weights_path}: weights file not found")
    try:  # on the meta device: a hostile config with absurd sizes allocates nothing
        expected = _models.expected_shapes(card["family"], card["config"])
    except (TypeError, ValueError, KeyError, RuntimeError, OverflowError) as e:
        raise CheckpointError(f"{card_path}: config does not build a {card['family']} model: {e}") from e
    _check_shapes(weights_path, expected, _header(weights_path), card)
    model = _models.build(card["family"], card["config"])
    tensors = _parse_weights(weights_path, card)
    declared = {f"extra.{k}": tuple(v) for k, v in card.get("extra_tensors", {}).items()}
    for k, shape in declared.items():
        if k not in tensors or tuple(tensors[k].shape) != shape:
            raise CheckpointError(f"{weights_path}: extra tensor {k} is missing or not of shape {shape}")
    tensors = {k: v for k, v in tensors.items() if k not in declared}
    model.load_state_dict(tensors, strict=True)
    validate = getattr(model, "validate", None)  # a family whose weights need more checks (ONNX graphs)
    if callable(validate):
        try:
            validate()
        except ValueError as e:
            raise CheckpointError(f"{weights_path}: {e}") from e
    return model.to(device).eval(), card


DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
          "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8, "I8": torch.int8, "BOOL": torch.bool}


def _check_shapes(weights_path: Path, expected: dict[str, tuple[int, ...]], header: dict, card: dict) -> None:
    """The weights file's header against the config's state_dict (names and shapes) and the
    card's extra tensors, before anything is built or read."""
    declared = {f"extra.{k}": tuple(v) for k, v in card.get("extra_tensors", {}).items()}
    got = {k: tuple(v.get("shape", ())) for k, v in header.items()}
    problems = [f"missing {k}" for k in expected if k not in got]
    problems += [f"unexpected {k}" for k in got if k not in expected and k not in declared]
    problems += [f"{k}: file has {got[k]}, config expects {expected[k]}"
                 for k in expected if k in got and got[k] != expected[k]]
    problems += [f"{k}: dtype {v.get('dtype')} is not a tensor type genlab reads"
                 for k, v in header.items() if v.get("dtype") not in DTYPES]
    if problems:
        raise CheckpointError(f"{weights_path}: tensors do not match the card's config: " + "; ".join(problems[:5]))


def load_extra(path: str | os.PathLike, name: str) -> torch.Tensor:
    """An extra tensor saved beside the weights (validated like the weights)."""
    return load_extras(path, name)[name]


def load_extras(path: str | os.PathLike, *names: str) -> dict[str, torch.Tensor]:
    """Several extra tensors from one read and one checksum of the weights file."""
    weights_path, card_path = _paths(path)
    card = read_card(card_path)
    missing = [n for n in names if n not in card.get("extra_tensors", {})]
    if missing:
        raise CheckpointError(f"{card_path}: no extra tensor named {missing[0]!r}")
    tensors = _parse_weights(weights_path, card)
    return {n: tensors[f"extra.{n}"] for n in names}


def update_card(path: str | os.PathLike, **sections) -> dict:
    """Merge sections (e.g. metrics={...}) into an existing card, atomically."""
    _, card_path = _paths(path)
    card = read_card(card_path)
    for k, v in sections.items():
        if isinstance(v, dict) and isinstance(card.get(k), dict):
            card[k] = {**card[k], **v}
        else:
            card[k] = v
    _atomic_write(card_path, json.dumps(card, indent=1).encode(), "card")
    return card


def list_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """Base paths ("folder/name") of every card in a folder that has a weights file beside it
    (NAME.safetensors or NAME.<content>.safetensors), sorted by name; no card is read."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stems = {p.name.split(".")[0] for p in folder.glob("*.safetensors")}
    return sorted(p.with_suffix("") for p in folder.glob("*.json") if "." not in p.stem and p.stem in stems)
