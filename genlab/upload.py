"""Models a user brings: a genlab checkpoint (its card and weights, or a zip of them) or a model
of a family that imports files (an ONNX decoder with its card), checked before anything is
stored and then saved under the user's name in one rename, never over another model.

Every refusal is an UploadError with one sentence a person can act on, and leaves the folder as
it was: files are read in memory and checked there (sizes, zip members, the card, the weights'
header, checksum and shapes through `store.load` on a private copy, a family's own checks),
and only a model that passed is written, by `store.save(..., overwrite=False)`.
"""
from __future__ import annotations

import io
import json
import os
import struct
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

import torch

from . import store
from .models import base

MAX_BYTES = int(os.environ.get("GENLAB_UPLOAD_MB", "200")) << 20  # all files together, unzipped
MAX_FILES = 4
MAX_TENSORS = 10_000
CARD_KEYS = {"format", "format_version", "genlab_version", "name", "family", "config", "dataset", "train_config",
             "history", "metrics", "likelihoods", "n_params", "created", "weights_file", "weights_sha256",
             "weights_bytes", "tensors", "extra_tensors"}


class UploadError(ValueError):
    """A brought model is refused; the message says why and what to do."""


def _mb(n: int) -> str:
    return f"{n / 2**20:,.1f} MB" if n >= 2**20 else f"{n / 2**10:,.1f} kB"


def unpack(files: dict[str, bytes]) -> dict[str, bytes]:
    """The files as given, or the members of a single zip among them: plain names only (no
    folders, no '..'), at most MAX_FILES, at most MAX_BYTES unpacked."""
    if not files:
        raise UploadError("No file was given: drop a checkpoint (NAME.json and its .safetensors, or their zip) "
                          "or an ONNX model with its card.")
    if len(files) > MAX_FILES:
        raise UploadError(f"{len(files)} files were given; a model is at most {MAX_FILES} (a card and its weights, "
                          "or a card and one or two .onnx graphs).")
    total = sum(len(b) for b in files.values())
    if total > MAX_BYTES:
        raise UploadError(f"The files take {_mb(total)}; the cap is {_mb(MAX_BYTES)}.")
    zips = [n for n in files if n.lower().endswith(".zip")]
    if not zips:
        return dict(files)
    if len(files) > 1:
        raise UploadError("Give either one zip or the loose files, not both.")
    try:
        z = zipfile.ZipFile(io.BytesIO(files[zips[0]]))
        members = [i for i in z.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise UploadError(f"{zips[0]} is not a readable zip (truncated or damaged: {e}).") from None
    bad = [i.filename for i in members if "/" in i.filename or "\\" in i.filename or i.filename in ("", ".", "..")
           or i.filename.startswith(".")]
    if bad or any(i.is_dir() for i in z.infolist()):
        raise UploadError(f"{zips[0]} holds paths ({', '.join((bad or ['a folder'])[:3])}); a model's zip holds "
                          "its files at the top level, with plain names.")
    if len(members) > MAX_FILES:
        raise UploadError(f"{zips[0]} holds {len(members)} files; a model is at most {MAX_FILES}.")
    if sum(i.file_size for i in members) > MAX_BYTES:
        raise UploadError(f"{zips[0]} unpacks to {_mb(sum(i.file_size for i in members))}; the cap is "
                          f"{_mb(MAX_BYTES)}.")
    out = {}
    for i in members:
        try:
            with z.open(i) as f:
                data = f.read(i.file_size + 1)
        except (zipfile.BadZipFile, OSError, EOFError, zipfile.LargeZipFile) as e:
            raise UploadError(f"{zips[0]}: {i.filename} cannot be read (truncated or damaged: {e}).") from None
        if len(data) != i.file_size:
            raise UploadError(f"{zips[0]}: {i.filename} is not the size the zip says.")
        out[i.filename] = data
    return out


def _tensor_bytes(blob: bytes, name: str) -> None:
    """The weights' header within the caps: at most MAX_TENSORS tensors whose data fit the file."""
    try:
        (n,) = struct.unpack("<Q", blob[:8])
        head = json.loads(blob[8:8 + n]) if n <= len(blob) - 8 else None
    except (struct.error, ValueError, UnicodeDecodeError):
        head = None
    if not isinstance(head, dict):
        raise UploadError(f"{name} is not a safetensors file (or it is truncated).")
    tensors = {k: v for k, v in head.items() if k != "__metadata__"}
    if len(tensors) > MAX_TENSORS:
        raise UploadError(f"{name} holds {len(tensors):,} tensors; the cap is {MAX_TENSORS:,}.")
    end = max((v.get("data_offsets", [0, 0])[1] for v in tensors.values() if isinstance(v, dict)), default=0)
    if not isinstance(end, int) or 8 + n + end > len(blob):
        raise UploadError(f"{name} is truncated: its header describes {_mb(end)} of tensors that are not all there.")


def _checkpoint(files: dict[str, bytes], device) -> tuple[torch.nn.Module, dict, dict]:
    """A genlab checkpoint's card and weights checked as genlab.load checks them: (model, card,
    extra tensors)."""
    cards = [n for n in files if n.endswith(".json")]
    weights = [n for n in files if n.endswith(".safetensors")]
    if len(cards) != 1 or len(weights) != 1 or len(files) != 2:
        raise UploadError("A genlab checkpoint is two files, NAME.json and its .safetensors weights "
                          f"(got {', '.join(sorted(files))}).")
    _tensor_bytes(files[weights[0]], weights[0])
    try:
        card = json.loads(files[cards[0]])
    except (ValueError, UnicodeDecodeError) as e:
        raise UploadError(f"{cards[0]} is not valid JSON ({e}); the card is damaged or truncated.") from None
    if not isinstance(card, dict):
        raise UploadError(f"{cards[0]} is not a genlab card.")
    card.pop("weights_file", None)  # the private copy below uses the earlier layout's file names
    with tempfile.TemporaryDirectory(prefix="genlab-upload-") as d:
        (Path(d) / "up.json").write_text(json.dumps(card))
        (Path(d) / "up.safetensors").write_bytes(files[weights[0]])
        try:
            model, card = store.load(Path(d) / "up", device)
            extras = store.load_extras(Path(d) / "up", *card.get("extra_tensors", {}))
        except store.CheckpointError as e:
            raise UploadError(str(e).replace(str(Path(d) / "up"), Path(cards[0]).stem)) from None
    return model, card, extras


def bring(files: dict[str, bytes], name: str, folder: Path, taken: Callable[[str], bool] = lambda n: False,
          device="cpu") -> Path:
    """Check the files a user gives and save the model as folder/name. Returns its base path.
    Raises UploadError (nothing written) when anything is wrong."""
    bad = store.check_name(name)
    if bad:
        raise UploadError(f"The name {name!r} cannot be used. {bad}")
    if taken(name) or (Path(folder) / f"{name}.json").exists():
        raise UploadError(f"A model named {name} exists already; pick another name.")
    files = unpack(files)
    if any(n.endswith(".safetensors") for n in files):
        model, card, extras = _checkpoint(files, device)
        sections = {"dataset": card.get("dataset") or {}, "history": card.get("history") or {},
                    "metrics": card.get("metrics") or {}, "train_config": card.get("train_config") or {},
                    "likelihoods": card.get("likelihoods") or [], "extra_tensors": extras,
                    "extra": {k: v for k, v in card.items() if k not in CARD_KEYS} | {"brought_as": card.get("name")}}
    else:
        importers = [base.family(f) for f in base.families() if base.family(f).importer is not None]
        if not importers:
            raise UploadError("These are not a genlab checkpoint (no .safetensors weights), and no family here "
                              "imports other files.")
        errors = []
        for fam in importers:
            try:
                model, sections = fam.importer(files)
                break
            except ValueError as e:
                errors.append(str(e))
        else:
            raise UploadError(errors[0] if len(errors) == 1 else "; ".join(errors))
    try:
        store.save(model.to("cpu"), Path(folder) / name, overwrite=False, **sections)
    except store.CheckpointError as e:
        raise UploadError(f"A model named {name} exists already; pick another name. ({e})") from None
    return Path(folder) / name
