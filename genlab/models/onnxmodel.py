"""Models from any framework, as ONNX: a Gaussian-latent generator whose decoder (and, where
there is one, encoder) is an ONNX graph, run by ONNX Runtime.

An ONNX file is data, not code: nothing of the user's runs in genlab except the graph's
standard operators. The graphs are stored in the checkpoint like weights (uint8 tensors in the
safetensors file, so the card's checksum covers them and a save commits in one rename), with a
card whose config says the latent size, the data's shape and range, and the graphs' sizes.

Two ways in:
  - `python -m genlab export-onnx CKPT --out PATH` exports any genlab checkpoint with a decoder
    (VAE, autoencoder, GAN, flow, a plugin's family): the checkpoint PATH, and PATH.decoder.onnx
    (PATH.encoder.onnx) beside it for other tools.
  - A user's card (`format: "genlab-onnx"`, below) beside their .onnx files, from PyTorch, JAX,
    TensorFlow or anything that writes ONNX: `python -m genlab import-onnx CARD --out PATH`, or
    the upload on Home.

    {"format": "genlab-onnx", "name": "my-vae", "latent_dim": 16, "data_shape": [1, 28, 28],
     "data_range": [0, 1], "decoder": "decoder.onnx", "encoder": "encoder.onnx",
     "dataset": "mnist", "prior": {"loc": [...], "scale": [...]}}

   encoder, dataset and prior are optional (the prior defaults to N(0, I)). The decoder takes
   z of shape (batch, latent_dim) and returns (batch, *data_shape); the encoder the reverse
   (its first output is taken as the code: the posterior mean).

Every graph is checked before it is used (`validate`, which genlab.load calls): it parses and
passes ONNX's checker, its input and output shapes agree with the card, its intermediate
tensors for a probe batch (sizes from ONNX's shape inference, before anything runs) stay under
a memory cap, and the probe's outputs have the declared shape and are finite.
"""
from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .base import Capabilities, option, register

PROBE = 8  # the batch a graph is checked with
MEMORY_CAP = 512 << 20  # bytes the intermediate tensors of a probe batch may take
MAX_NODES = 100_000
USER_FORMAT = "genlab-onnx"


@dataclass(frozen=True)
class OnnxConfig:
    latent_dim: int = option(2, "the latent's size", cli=False)
    data_shape: tuple[int, ...] = option((1, 28, 28), "the shape of one decoded example", cli=False)
    data_range: tuple[float, float] | None = option((0.0, 1.0), "the decoded values' range (clamped)", cli=False)
    decoder_bytes: int = option(0, "the decoder graph's size in bytes", cli=False)
    encoder_bytes: int = option(0, "the encoder graph's size in bytes (0: no encoder)", cli=False)
    source: str = option("", "where the graphs came from", cli=False)


def _onnx():
    try:
        import onnx
        import onnxruntime
    except ImportError as e:  # pragma: no cover - both are in requirements.txt
        raise ValueError(f"ONNX models need the onnx and onnxruntime packages ({e})") from e
    return onnx, onnxruntime


class OnnxGenerator(nn.Module):
    """A Gaussian-latent generator made of ONNX graphs. The graphs are uint8 buffers (loaded like
    weights); ONNX Runtime sessions are made from them on first use."""

    def __init__(self, config: OnnxConfig):
        super().__init__()
        self.config = config
        self.register_buffer("decoder_onnx", torch.zeros(config.decoder_bytes, dtype=torch.uint8))
        if config.encoder_bytes:
            self.register_buffer("encoder_onnx", torch.zeros(config.encoder_bytes, dtype=torch.uint8))
        self.register_buffer("latent_loc", torch.zeros(config.latent_dim))
        self.register_buffer("latent_scale", torch.ones(config.latent_dim))
        self._sessions: dict = {}

    @property
    def capabilities(self) -> Capabilities:
        c = self.config
        image = len(c.data_shape) == 3
        return Capabilities(data_kind="image" if image else "points", data_shape=tuple(c.data_shape),
                            data_range=tuple(c.data_range) if c.data_range is not None else None,
                            latent="gaussian", latent_dim=c.latent_dim, encode=bool(c.encoder_bytes))

    # ------------------------------------------------------------------ graphs
    def graph_bytes(self, which: str = "decoder") -> bytes:
        """The ONNX graph as stored (for the browser's runtime and for writing .onnx files)."""
        return self.get_buffer(f"{which}_onnx").cpu().numpy().tobytes()

    def _session(self, which: str):
        s = self._sessions.get(which)
        if s is None:
            _, ort = _onnx()
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = max(1, torch.get_num_threads())
            opts.log_severity_level = 3
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                         if p in ort.get_available_providers() and (p != "CUDAExecutionProvider"
                                                                     or self.latent_loc.is_cuda)]
            s = self._sessions[which] = ort.InferenceSession(self.graph_bytes(which), opts, providers=providers)
        return s

    def _run(self, which: str, x: torch.Tensor) -> torch.Tensor:
        s = self._session(which)
        out = s.run(None, {s.get_inputs()[0].name: x.detach().to("cpu", torch.float32).contiguous().numpy()})[0]
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)).to(x.device)

    def _apply(self, fn, recurse=True):  # a move to another device makes new sessions there
        self._sessions = {}
        return super()._apply(fn, recurse)

    # ------------------------------------------------------------------ the protocol
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        x = self._run("decoder", z).view(z.shape[0], *self.config.data_shape)
        return x.clamp(*self.config.data_range) if self.config.data_range is not None else x

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self._run("encoder", x).view(x.shape[0], self.config.latent_dim)

    def prior(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.latent_loc, self.latent_scale

    def prior_sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0
                     ) -> torch.Tensor:
        eps = torch.randn(n, self.config.latent_dim, generator=generator, device=self.latent_loc.device)
        return self.latent_loc + temperature * self.latent_scale * eps

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.decode(self.prior_sample(n, generator))

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise ValueError saying what is wrong with the graphs (the module's docstring)."""
        self._sessions = {}
        c = self.config
        check_graph(self.graph_bytes("decoder"), "decoder", (c.latent_dim,), tuple(c.data_shape))
        if c.encoder_bytes:
            check_graph(self.graph_bytes("encoder"), "encoder", tuple(c.data_shape), (c.latent_dim,))
        if not (torch.isfinite(self.latent_loc).all() and torch.isfinite(self.latent_scale).all()
                and (self.latent_scale > 0).all()):
            raise ValueError("the prior's loc and scale must be finite, with every scale > 0")
        z = self.prior_sample(PROBE, torch.Generator(device=self.latent_loc.device).manual_seed(0))
        try:
            x = self._run("decoder", z)
        except Exception as e:  # noqa: BLE001 - ONNX Runtime's own error types
            raise ValueError(f"the decoder fails on a probe batch of {PROBE}: {e}") from e
        if tuple(x.shape) != (PROBE, *c.data_shape) and x.numel() != PROBE * math.prod(c.data_shape):
            raise ValueError(f"the decoder returns shape {tuple(x.shape)} for {PROBE} codes; the card says "
                             f"{(PROBE, *c.data_shape)}")
        if not torch.isfinite(x).all():
            raise ValueError("the decoder returns values that are not finite on a probe batch")
        if c.encoder_bytes:
            try:
                code = self._run("encoder", self.decode(z))
            except Exception as e:  # noqa: BLE001
                raise ValueError(f"the encoder fails on a probe batch of {PROBE}: {e}") from e
            if code.numel() != PROBE * c.latent_dim or not torch.isfinite(code).all():
                raise ValueError(f"the encoder returns shape {tuple(code.shape)} for {PROBE} examples; the card "
                                 f"says {(PROBE, c.latent_dim)}, finite")


def _dims(value_info) -> list:
    """An ONNX value's dimensions: ints where fixed, names (str) where symbolic, None where unknown."""
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]


def check_graph(blob: bytes, what: str, in_shape: tuple, out_shape: tuple) -> None:
    """A graph's structure against its card: parses, passes the checker, one float input of shape
    (batch, *in_shape), a first output of (batch, *out_shape), and the intermediate tensors of a
    probe batch under MEMORY_CAP by shape inference (nothing is run here)."""
    onnx, _ = _onnx()
    try:
        model = onnx.load_model_from_string(blob)
        onnx.checker.check_model(model)
    except Exception as e:  # noqa: BLE001 - onnx raises several types for a bad file
        raise ValueError(f"the {what} is not a valid ONNX graph ({type(e).__name__}: {str(e)[:200]})") from e
    g = model.graph
    if len(g.node) > MAX_NODES:
        raise ValueError(f"the {what} has {len(g.node):,} nodes; genlab takes at most {MAX_NODES:,}")
    inits = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1:
        raise ValueError(f"the {what} takes {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
                         f"genlab gives it one, of shape (batch, {', '.join(map(str, in_shape))})")
    if not g.output:
        raise ValueError(f"the {what} has no output")
    for value, want, role in ((inputs[0], in_shape, "input"), (g.output[0], out_shape, "output")):
        if value.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            raise ValueError(f"the {what}'s {role} {value.name!r} is not float32")
        dims = _dims(value)
        if dims is None:
            continue
        fixed = [d for d in dims[1:]]
        flat = math.prod(want)
        ok = len(dims) - 1 == len(want) and all(not isinstance(d, int) or d == w for d, w in zip(fixed, want))
        ok = ok or (len(dims) == 2 and (not isinstance(dims[1], int) or dims[1] == flat))  # flattened
        if not ok:
            raise ValueError(f"the {what}'s {role} {value.name!r} has shape {_shown(dims)}; the card says "
                             f"(batch, {', '.join(map(str, want))})")
    # the batch dimension fixed to the probe's, then every intermediate size by shape inference
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for value in (probe.graph.input[[i.name for i in probe.graph.input].index(inputs[0].name)],):
        dims = value.type.tensor_type.shape.dim
        if len(dims):
            dims[0].Clear()
            dims[0].dim_value = PROBE
    try:
        inferred = onnx.shape_inference.infer_shapes(probe, data_prop=True)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"the {what}'s shapes cannot be inferred ({str(e)[:200]})") from e
    sizes = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2}  # bytes by ONNX type
    total = sum(i.ByteSize() for i in g.initializer)
    for v in list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = _dims(v)
        if dims and all(isinstance(d, int) for d in dims):
            total += math.prod(dims) * sizes.get(v.type.tensor_type.elem_type, 8)
    if total > MEMORY_CAP:
        raise ValueError(f"the {what} would allocate about {total / 2**20:,.0f} MB for a batch of {PROBE} "
                         f"(weights and intermediate tensors); the cap is {MEMORY_CAP >> 20} MB")


def _shown(dims) -> str:
    return "(" + ", ".join(str(d) if d is not None else "?" for d in dims) + ")"


# ---------------------------------------------------------------------------- building one
def from_graphs(decoder: bytes, encoder: bytes | None, latent_dim: int, data_shape, data_range,
                source: str, loc=None, scale=None) -> OnnxGenerator:
    """An ONNX generator from graph bytes and what its card says, validated."""
    if not isinstance(latent_dim, int) or not 1 <= latent_dim <= 4096:
        raise ValueError(f"latent_dim must be an integer from 1 to 4096, not {latent_dim!r}")
    shape = tuple(data_shape) if isinstance(data_shape, (list, tuple)) else None
    if not shape or len(shape) not in (1, 3) or not all(isinstance(d, int) and 0 < d <= 4096 for d in shape):
        raise ValueError(f"data_shape must be [channels, height, width] or [features], not {data_shape!r}")
    rng = tuple(float(v) for v in data_range) if data_range is not None else None
    if rng is not None and (len(rng) != 2 or not rng[0] < rng[1]):
        raise ValueError(f"data_range must be [low, high] with low < high, not {data_range!r}")
    cfg = OnnxConfig(latent_dim=latent_dim, data_shape=shape, data_range=rng, decoder_bytes=len(decoder),
                     encoder_bytes=len(encoder or b""), source=source)
    model = OnnxGenerator(cfg)
    model.decoder_onnx.copy_(torch.frombuffer(bytearray(decoder), dtype=torch.uint8))
    if encoder:
        model.encoder_onnx.copy_(torch.frombuffer(bytearray(encoder), dtype=torch.uint8))
    for name, v in (("loc", loc), ("scale", scale)):
        if v is not None:
            t = torch.as_tensor(v, dtype=torch.float32)
            if tuple(t.shape) != (latent_dim,):
                raise ValueError(f"prior.{name} must have latent_dim = {latent_dim} numbers")
            getattr(model, f"latent_{name}").copy_(t)
    model.validate()
    return model.eval()


def import_files(files: dict[str, bytes]) -> tuple[OnnxGenerator, dict]:
    """A model and its card's sections from a user's card and the .onnx files it names
    (files: file name -> bytes, as uploaded). Raises ValueError saying what is wrong."""
    cards = [n for n in files if n.endswith(".json")]
    if len(cards) != 1:
        raise ValueError(f"an ONNX model comes with one JSON card; got {len(cards)} .json files")
    try:
        card = json.loads(files[cards[0]])
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{cards[0]}: not valid JSON ({e})") from e
    if not isinstance(card, dict) or card.get("format") != USER_FORMAT:
        raise ValueError(f"{cards[0]}: an ONNX model's card has \"format\": \"{USER_FORMAT}\" (see the README)")
    missing = [k for k in ("latent_dim", "data_shape", "decoder") if k not in card]
    if missing:
        raise ValueError(f"{cards[0]}: the card needs {', '.join(missing)}")
    graphs = {}
    for role in ("decoder", "encoder"):
        name = card.get(role)
        if name is None:
            continue
        if not isinstance(name, str) or name not in files:
            raise ValueError(f"{cards[0]}: its {role} {name!r} is not among the files given "
                             f"({', '.join(sorted(files))})")
        graphs[role] = files[name]
    extra = sorted(set(files) - {cards[0], *(card.get(r) for r in ("decoder", "encoder"))})
    if extra:
        raise ValueError(f"files the card does not name: {', '.join(extra)}")
    prior = card.get("prior") or {}
    model = from_graphs(graphs["decoder"], graphs.get("encoder"), card["latent_dim"], card["data_shape"],
                        card.get("data_range", (0.0, 1.0)), source=str(card.get("name", cards[0]))[:100],
                        loc=prior.get("loc"), scale=prior.get("scale"))
    data = card.get("dataset")
    return model, {"dataset": {"name": data} if isinstance(data, str) else {}}


# ---------------------------------------------------------------------------- export
def export_graphs(model: nn.Module) -> tuple[bytes, bytes | None]:
    """A genlab model's decode (and encode, where it has one) as ONNX graphs with a dynamic
    batch (torch.onnx's exporter). The model must have a Gaussian latent."""
    caps = model.capabilities
    if not caps.gaussian_latent:
        raise ValueError("only a model with a continuous latent and a decoder can be exported to ONNX "
                         f"(this one's latent is {caps.latent})")
    model = model.to("cpu").eval()

    class Decode(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, z):
            return self.m.decode(z)

    class Encode(Decode):
        def forward(self, x):
            return self.m.encode(x)

    batch = torch.export.Dim("batch", min=1, max=65536)
    z = model.prior_sample(2, torch.Generator().manual_seed(0))
    out = []
    for module, arg, names in ((Decode(), z, (["z"], ["x"])),
                               (Encode(), None, (["x"], ["z"])) if caps.encode else (None, None, None)):
        if module is None:
            out.append(None)
            continue
        if arg is None:
            with torch.no_grad():
                arg = model.decode(z)
        import warnings
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            prog = torch.onnx.export(module, (arg,), input_names=names[0], output_names=names[1],
                                     dynamic_shapes=({0: batch},), external_data=False, verbose=False)
        buf = io.BytesIO()
        buf.write(prog.model_proto.SerializeToString())
        out.append(buf.getvalue())
    return out[0], out[1]


def export(model: nn.Module, card: dict, source: str) -> OnnxGenerator:
    """A genlab model as an ONNX generator (validated) with the same prior."""
    decoder, encoder = export_graphs(model)
    loc, scale = (t.detach().cpu() for t in model.prior())
    caps = model.capabilities
    return from_graphs(decoder, encoder, caps.latent_dim, list(caps.data_shape),
                       caps.data_range, source=source, loc=loc, scale=scale)


def max_abs_difference(a: nn.Module, b: nn.Module, n: int = 64, seed: int = 0) -> dict:
    """The largest |a.decode(z) - b.decode(z)| over n prior draws (and of encode, where both have it)."""
    z = a.prior_sample(n, torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        xa, xb = a.decode(z), b.decode(z)
        out = {"decode": float((xa - xb).abs().max()), "n": n, "seed": seed}
        if a.capabilities.encode and b.capabilities.encode:
            out["encode"] = float((a.encode(xa) - b.encode(xa)).abs().max())
    return out


# ---------------------------------------------------------------------------- command line
def _export_args(p) -> None:
    p.add_argument("path", help="a genlab checkpoint with a decoder (VAE, autoencoder, GAN, flow, ...)")
    p.add_argument("--out", required=True, help="the new checkpoint's path (folder/NAME); NAME.decoder.onnx "
                   "(and NAME.encoder.onnx) are written beside it for other tools")


def _cmd_export(a) -> int:
    import sys

    from .. import store
    src, card = store.load(a.path)
    model = export(src, card, source=f"genlab {card.get('family')} {card.get('name', Path(a.path).name)}")
    diff = max_abs_difference(src, model)
    out = Path(a.out)
    store.save(model, out, dataset=card.get("dataset", {}), extra={"onnx_check": diff})
    for which in ("decoder", "encoder") if model.config.encoder_bytes else ("decoder",):
        out.with_name(f"{out.name}.{which}.onnx").write_bytes(model.graph_bytes(which))
    print(f"wrote {out}.json, its weights and {out.name}.decoder.onnx"
          + (f" and {out.name}.encoder.onnx" if model.config.encoder_bytes else "")
          + f"; ONNX against PyTorch on {diff['n']} codes: max |decode difference| {diff['decode']:.2e}"
          + (f", max |encode difference| {diff['encode']:.2e}" if "encode" in diff else ""), file=sys.stderr)
    return 0


def _import_args(p) -> None:
    p.add_argument("card", help=f"a card (JSON, \"format\": \"{USER_FORMAT}\") beside the .onnx files it names")
    p.add_argument("--out", required=True, help="the checkpoint's path (folder/NAME)")


def _cmd_import(a) -> int:
    import sys

    from .. import store
    card_path = Path(a.card)
    card = json.loads(card_path.read_text())
    names = [card_path.name] + [card[r] for r in ("decoder", "encoder") if isinstance(card.get(r), str)]
    files = {n: (card_path.parent / n).read_bytes() for n in names if "/" not in n and "\\" not in n}
    model, sections = import_files(files)
    store.save(model, a.out, **sections)
    print(f"wrote {a.out}.json and its weights ({model.config.decoder_bytes + model.config.encoder_bytes:,} bytes "
          "of ONNX)", file=sys.stderr)
    return 0


def _describe(cfg: OnnxConfig) -> str:
    enc = " and encoder" if cfg.encoder_bytes else ""
    return f"an ONNX decoder{enc} from {cfg.source or 'outside genlab'}, z={cfg.latent_dim}"


register("onnx", OnnxConfig, label=lambda cfg: "ONNX", describe=_describe, trains=False,
         commands={"export-onnx": ("write any genlab checkpoint with a decoder as an ONNX model", _export_args,
                                   _cmd_export),
                   "import-onnx": ("bring an ONNX decoder (and encoder) from any framework, with its card",
                                   _import_args, _cmd_import)},
         importer=import_files)(OnnxGenerator)

__all__ = ["OnnxConfig", "OnnxGenerator", "check_graph", "export", "export_graphs", "from_graphs", "import_files",
           "max_abs_difference"]
