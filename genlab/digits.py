"""Bring your own digit: read a drawing or an uploaded picture, prepare it the way MNIST's
digits were prepared, and score it with any model.

MNIST's recipe (LeCun et al.): the ink's bounding box is scaled, keeping its aspect ratio and
anti-aliased, so that its larger side is 20 pixels; the result is put in a 28x28 frame so that
its centre of mass sits at the frame's centre, moved by whole pixels. Conventions here:

- Pixel (row i, column j) has its centre at coordinates (i, j); the centre of mass is the
  ink-weighted mean of those coordinates.
- The target centre is (14, 14), not the geometric centre (13.5, 13.5): the 55,000 MNIST
  training digits have their mean centre of mass at (14.00, 14.01), spread 0.29 pixel in each
  direction, which is what whole-pixel shifts towards (14, 14) leave (a uniform rounding error
  has standard deviation 1/sqrt(12) = 0.289).
- The shift is round(14 - centre of mass), rounding halves up (floor(d + 0.5)); it is then
  clamped so that no ink leaves the frame (only very lopsided shapes need that).
- Scaling is an area average (box filter) when shrinking, bilinear when enlarging; the smaller
  side becomes round(side * 20 / larger side), at least 1 pixel.

Reading a picture (`read_grey`, `to_ink`): ink is white on black in [0, 1] as in MNIST. A
picture whose border is mostly light (dark ink on white paper) is inverted: the decision is
made by the median of the one-pixel border. The background level (the border's median plus
six robust spreads, so paper noise leaves no specks) becomes 0 and the strongest ink 1. A picture
with transparency is read as strokes on a transparent sheet: its opacity is the ink.

Uploads are checked before anything is decoded: at most MAX_BYTES bytes and MAX_PIXELS
pixels (read from the header, so a decompression bomb is refused unopened), one of FORMATS.
Every refusal is a `DigitError` whose message says what was wrong and what to do.
"""
from __future__ import annotations

import base64
import binascii
import io
import math
import struct
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from . import metrics
from .models.base import device_of

SIZE = 28  # the frame, pixels
BOX = 20  # the larger side of the scaled bounding box, pixels
CENTRE = 14.0  # target centre of mass (row, column), pixel-centre coordinates
MAX_BYTES = 5 * 2**20  # an upload's size
MAX_PIXELS = 4096 * 4096  # width x height, read from the header before decoding
WORK_SIDE = 1024  # larger pictures are shrunk (area average) to about this before the work
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
MIN_CONTRAST = 0.1  # the strongest ink must stand this far above the background
DATA_URL = "data:image/png;base64,"


class DigitError(ValueError):
    """A picture that cannot be read as a digit; the message is meant for the user."""


@dataclass
class Digit:
    """A prepared digit.

    image: (1, 28, 28) float32 in [0, 1], white ink on black, centred like MNIST.
    ink: (H, W) float32 in [0, 1], the picture as read (white ink on black, background at 0),
        possibly shrunk to about WORK_SIDE pixels.
    box: (top, left, height, width) of the ink in `ink`. scaled: (height, width) after scaling.
    offset: (row, column) of the scaled box's top-left corner in the 28x28 frame.
    centre: the output's centre of mass (row, column). inverted: dark ink on light paper was inverted.
    notes: sentences on what was done to read the picture (for the page to show).
    """

    image: torch.Tensor
    ink: np.ndarray
    box: tuple[int, int, int, int]
    scaled: tuple[int, int]
    offset: tuple[int, int]
    centre: tuple[float, float]
    inverted: bool = False
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- reading
def decode_data_url(url: str, max_bytes: int = MAX_BYTES) -> bytes:
    """The PNG bytes inside a `data:image/png;base64,...` URL (what the drawing canvas sends)."""
    if not isinstance(url, str) or not url.startswith(DATA_URL):
        raise DigitError("The drawing did not arrive as a PNG image; clear the canvas and draw again.")
    body = url[len(DATA_URL):]
    if len(body) > (max_bytes * 4) // 3 + 4:
        raise DigitError(f"The drawing is larger than {max_bytes // 2**20} MB; clear the canvas and draw again.")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise DigitError("The drawing arrived damaged (not valid base64); clear the canvas and draw again.") from None


def open_image(data: bytes, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open and decode an uploaded picture, refusing what is not a small picture of a known format.

    Size and format are checked from the bytes and the header before any pixel is decoded.
    Returns the first frame, decoded, with any EXIF rotation applied.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DigitError("Nothing was uploaded.")
    n = len(data)
    if n == 0:
        raise DigitError("The file is empty.")
    if n > max_bytes:
        raise DigitError(f"The file is {n / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB. "
                         "A digit needs only a small picture: crop it or save it smaller.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(bytes(data)), formats=list(FORMATS))
    except UnidentifiedImageError:
        raise DigitError("This file is not an image that can be read (" + ", ".join(FORMATS)
                         + "). Upload a picture of one digit.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DigitError(f"The picture claims a huge size; at most {max_pixels:,} pixels are read.") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise DigitError(f"The image could not be read: it looks damaged ({type(e).__name__}).") from None
    w, h = img.size
    if w < 1 or h < 1:
        raise DigitError("The picture has no pixels.")
    if w * h > max_pixels:
        raise DigitError(f"The picture is {w:,} × {h:,} pixels; at most {max_pixels:,} pixels "
                         f"(e.g. {math.isqrt(max_pixels):,} × {math.isqrt(max_pixels):,}) are read. Save it smaller.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.load()  # the first frame only
            img = ImageOps.exif_transpose(img) or img
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DigitError(f"The picture claims a huge size; at most {max_pixels:,} pixels are read.") from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as e:
        raise DigitError(f"The image could not be decoded: it is damaged or cut short ({type(e).__name__}).") from None
    return img


def read_grey(img: Image.Image) -> tuple[np.ndarray, list[str]]:
    """A decoded picture -> (H, W) float32 grey levels in [0, 1] (1 = white), and notes.

    16-bit grey is scaled by 65535; any colour mode by its luma (ITU-R 601); a picture with
    transparency gives its opacity (strokes on a transparent sheet, whatever their colour).
    Pictures larger than WORK_SIDE are shrunk by an integer factor (area average) first.
    """
    notes = []
    mode = img.mode
    if getattr(img, "n_frames", 1) > 1:
        notes.append("Only the first frame of the animated picture is used.")
    factor = max(1, math.ceil(max(img.size) / WORK_SIDE))
    if mode.startswith("I;16") or mode == "I":  # 16-bit grey (Pillow reads 16-bit PNGs as I;16, older ones as I)
        a = np.clip(np.asarray(img, dtype=np.float32) / 65535.0, 0, 1)
        notes.append("16-bit grey levels were scaled to [0, 1].")
        single = Image.fromarray(a)
    else:
        try:
            opacity = img.convert("RGBA").getchannel("A") if img.has_transparency_data else None
            if opacity is not None and opacity.getextrema()[0] < 255:  # some pixel is see-through
                single = opacity
                notes.append("The picture is transparent: its opaque strokes were read as the ink.")
            else:
                single = img.convert("L")
        except (ValueError, OSError) as e:
            raise DigitError(f"Pixels of mode {mode} cannot be read ({e}).") from None
    if factor > 1:
        w, h = single.size
        single = single.reduce(factor)
        notes.append(f"The {w:,} × {h:,} picture was shrunk {factor}× before reading.")
    a = np.asarray(single, dtype=np.float32)
    if single.mode != "F":
        a = a / 255.0
    return np.ascontiguousarray(a), notes


def border(a: np.ndarray) -> np.ndarray:
    """The one-pixel ring around a picture (the whole picture when it is under 3 pixels a side)."""
    if min(a.shape) < 3:
        return a.ravel()
    return np.concatenate([a[0], a[-1], a[1:-1, 0], a[1:-1, -1]])


def to_ink(grey: np.ndarray) -> tuple[np.ndarray, bool]:
    """Grey levels (H, W) in [0, 1] -> (ink (H, W) in [0, 1], white on black; inverted?).

    Inverted when the border's median is light (above 0.5). Then the background level (the
    border's median plus six robust spreads, 6 x 1.4826 x the median absolute deviation) maps to 0
    and the strongest ink to 1. Raises DigitError for a picture with no ink.
    """
    g = np.asarray(grey, dtype=np.float32)
    inverted = bool(np.median(border(g)) > 0.5)
    if inverted:
        g = 1.0 - g
    ring = border(g)
    med = float(np.median(ring))
    lo = med + 6 * 1.4826 * float(np.median(np.abs(ring - med)))
    hi = float(g.max())
    if hi - lo < MIN_CONTRAST:
        raise DigitError("No digit found: the picture is blank (one flat shade, or ink too faint to tell from "
                         "the background). Draw or upload a digit with clear strokes.")
    return np.clip((g - lo) / (hi - lo), 0.0, 1.0).astype(np.float32), inverted


# ----------------------------------------------------------------------------- centring
def centre_of_mass(a: np.ndarray) -> tuple[float, float]:
    """Ink-weighted mean (row, column) of pixel centres, pixel (i, j) at (i, j)."""
    a = np.asarray(a, dtype=np.float64)
    m = a.sum()
    if m <= 0:
        raise DigitError("No digit found: there is no ink.")
    rows = np.arange(a.shape[0]) @ a.sum(1) / m
    cols = np.arange(a.shape[1]) @ a.sum(0) / m
    return float(rows), float(cols)


def _round_half_up(v: float) -> int:
    return int(math.floor(v + 0.5))


def _resize(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """(H, W) float -> (h, w): area average when shrinking, bilinear when enlarging."""
    if (h, w) == a.shape:
        return a.astype(np.float32)
    shrink = h * w <= a.shape[0] * a.shape[1]
    out = Image.fromarray(a.astype(np.float32)).resize((w, h), Image.BOX if shrink else Image.BILINEAR)
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)


def centre_like_mnist(ink: np.ndarray) -> tuple[np.ndarray, dict]:
    """Ink (H, W) in [0, 1], white on black -> (28, 28) float32 centred like MNIST, and how.

    The box of nonzero ink is scaled so its larger side is BOX pixels (aspect ratio kept), then
    placed so its centre of mass lands on (CENTRE, CENTRE) up to a whole-pixel shift (see the
    module docstring for the conventions). Returns the frame and {box, scaled, offset, centre}.
    """
    ink = np.asarray(ink, dtype=np.float32)
    rows = np.flatnonzero(ink.max(1) > 0)
    cols = np.flatnonzero(ink.max(0) > 0)
    if len(rows) == 0:
        raise DigitError("No digit found: there is no ink.")
    top, left = int(rows[0]), int(cols[0])
    h, w = int(rows[-1]) - top + 1, int(cols[-1]) - left + 1
    crop = ink[top:top + h, left:left + w]
    side = max(h, w)
    sh = max(1, _round_half_up(h * BOX / side))
    sw = max(1, _round_half_up(w * BOX / side))
    block = _resize(crop, sh, sw)  # (sh, sw)
    cy, cx = centre_of_mass(block)
    dy = min(max(_round_half_up(CENTRE - cy), 0), SIZE - sh)
    dx = min(max(_round_half_up(CENTRE - cx), 0), SIZE - sw)
    out = np.zeros((SIZE, SIZE), np.float32)
    out[dy:dy + sh, dx:dx + sw] = block
    return out, {"box": (top, left, h, w), "scaled": (sh, sw), "offset": (dy, dx), "centre": (cy + dy, cx + dx)}


def prepare_ink(ink: np.ndarray, inverted: bool = False, notes: list[str] | None = None) -> Digit:
    """A `Digit` from ink already white on black in [0, 1] (H, W)."""
    frame, how = centre_like_mnist(ink)
    return Digit(torch.from_numpy(frame)[None], np.asarray(ink, np.float32), how["box"], how["scaled"],
                 how["offset"], how["centre"], inverted, list(notes or []))


def prepare(data: bytes, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS) -> Digit:
    """An uploaded picture's bytes -> a `Digit` (validated, read, inverted if light, centred).

    Raises DigitError with a message for the user when the bytes are not a usable picture.
    """
    img = open_image(data, max_bytes, max_pixels)
    grey, notes = read_grey(img)
    ink, inverted = to_ink(grey)
    if inverted:
        notes.append("Dark ink on a light background was inverted: MNIST digits are white on black.")
    return prepare_ink(ink, inverted, notes)


def prepare_drawing(url: str) -> Digit:
    """The drawing canvas's PNG data URL -> a `Digit`."""
    try:
        return prepare(decode_data_url(url))
    except DigitError as e:
        if str(e).startswith("No digit found"):
            raise DigitError("The canvas is empty: draw a digit on it.") from None
        raise


# ----------------------------------------------------------------------------- scoring
@dataclass(frozen=True)
class Score:
    """A per-image score of a model; lower always means more typical of the training data.

    key: its name in `scores`' result. label: what the page calls it. unit: "nats" or "".
    per_dim: divide a value in nats by this for bits per dimension (None where not meaningful).
    note: one sentence on what it measures.
    """

    key: str
    label: str
    unit: str
    note: str
    per_dim: float | None = None


def _device(model) -> torch.device:
    return device_of(model)


def _binarizes(model) -> bool:
    """Whether the model's reported likelihoods are on binarized data (its `test_data`)."""
    if not hasattr(model, "test_data"):
        return False
    with torch.inference_mode():
        out = model.test_data(torch.full((4, *model.capabilities.data_shape), 0.5, device=_device(model)))
    return bool(((out == 0) | (out == 1)).all())


def score_kinds(model, k: int = 64, log_z: float | None = None) -> list[Score]:
    """The scores `scores` gives for this model, from its capabilities (a GAN has none).

    log_z: an energy model's log normaliser where known (then its NLL is scored too)."""
    caps = model.capabilities
    d = math.prod(caps.data_shape)
    out = []
    binarized = " on the digit binarized once (seed 0), as the card's figures are" if _binarizes(model) else ""
    if "elbo" in caps.likelihoods:
        out.append(Score("neg_elbo", "−ELBO", "nats",
                         f"−ELBO bounds −log p(x): reconstruction cost plus KL, averaged over {k} posterior "
                         f"draws{binarized}."))
    if "iw" in caps.likelihoods:
        out.append(Score("iw_nll", f"importance-weighted NLL, k={k}", "nats",
                         f"The importance-weighted bound from the same {k} draws is tighter (Burda et al.)."))
    if "exact" in caps.likelihoods and not caps.energy:  # an energy model's NLL is F(v) + log Z, below
        out.append(Score("nll", "exact NLL", "nats", "The exact NLL, −log p(x) by the change of variables, is on "
                                                     "8-bit pixels with one uniform dequantisation draw (seed 0).",
                         per_dim=d * math.log(2)))
    if caps.energy:
        if caps.latent == "binary":
            out.append(Score("free_energy", "free energy F(v)", "",
                             "The free energy sums out the hidden units, p(v) ∝ exp(−F(v))"
                             + (f"; scored{binarized}." if binarized else ".")))
            if log_z is not None:
                out.append(Score("nll", "NLL = F(v) + log Z", "nats",
                                 f"log Z = {log_z:.1f} comes from the card's annealed importance sampling."))
        else:
            out.append(Score("free_energy", "energy E(x)", "",
                             "p(x) ∝ exp(−E(x)) with an unknown normaliser, so only the comparison with test "
                             "digits means something."))
    if can_reconstruct(model):
        out.append(Score("recon_dist", "distance to its reconstruction", "",
                         f"The distance ‖x − x̂‖ over the {d} pixels says how far the model's round trip moves "
                         "the digit."))
    return out


def _lossy_code(model) -> bool:
    caps = model.capabilities
    return caps.encode and caps.gaussian_latent and not {"exact", "ode"} & set(caps.likelihoods)


def can_reconstruct(model) -> bool:
    """Whether the model maps data to a code and back with a loss (a VAE, an autoencoder, an
    RBM's v -> h -> v); a flow's exact inverse would only give the digit back."""
    return _lossy_code(model) or model.capabilities.reconstruct


def _given(model, labels: torch.Tensor | None, x: torch.Tensor) -> dict:
    """encode / decode's labels= for a conditional model given labels (B,), else nothing."""
    return {"labels": labels.to(x.device)} if labels is not None and model.capabilities.num_classes else {}


def reconstruct(model, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor | None:
    """x (B, C, H, W) -> the model's reconstruction in x's shape, or None when it has none; a
    conditional model encodes and decodes with the labels (B,)."""
    if not can_reconstruct(model):
        return None
    with torch.inference_mode():
        x = x.to(_device(model))
        if _lossy_code(model):
            given = _given(model, labels, x)
            return model.decode(model.encode(x, **given), **given).view_as(x)
        return model.reconstruct(x)


def code(model, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The code of x (B, C, H, W): (posterior mean or z (B, Z), posterior std (B, Z) or None).
    Only for a model that can encode; a conditional model is given the labels (B,)."""
    with torch.inference_mode():
        x = x.to(_device(model))
        given = _given(model, labels, x)
        if hasattr(model, "posterior"):
            mu, logvar = model.posterior(x, **given)
            return mu, (None if logvar is None else torch.exp(0.5 * logvar))
        return model.encode(x, **given), None


@torch.no_grad()
def scores(model, x: torch.Tensor, k: int = 64, seed: int = 0, log_z: float | None = None,
           batch_size: int = 250, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Every score of `score_kinds` for images x (B, C, H, W) in [0, 1]: key -> (B,) on the CPU
    (a conditional model's reconstruction given the labels (B,)).

    Deterministic: the same images and seed give the same numbers (binarization and
    dequantisation draws come from generators seeded with `seed`).
    """
    kinds = {s.key for s in score_kinds(model, k, log_z)}
    dev = _device(model)
    parts: dict[str, list[torch.Tensor]] = {}
    g = torch.Generator(device=dev).manual_seed(seed)
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(dev)
        data = model.test_data(xb) if hasattr(model, "test_data") else xb  # as the card's figures: binarized
        out = {}
        with torch.inference_mode():
            if "neg_elbo" in kinds or "iw_nll" in kinds:
                lw = metrics.iw_log_weights(model, data, k, g)  # (k, B)
                out["neg_elbo"] = -lw.mean(0)
                out["iw_nll"] = -(torch.logsumexp(lw, 0) - math.log(k))
            if "nll" in kinds:
                out["nll"] = -model.log_prob(xb, g)
            if "free_energy" in kinds:
                out["free_energy"] = model.free_energy(data)
                if log_z is not None:
                    out["nll"] = out["free_energy"] + log_z
            if "recon_dist" in kinds:
                yb = None if labels is None else labels[i:i + batch_size]
                out["recon_dist"] = (reconstruct(model, xb, yb) - xb).flatten(1).norm(dim=1)
        for key in kinds:
            parts.setdefault(key, []).append(out[key].double().cpu())
    return {key: torch.cat(v) for key, v in parts.items()}


def percentile(value: float, reference) -> float:
    """Where value falls among reference values, in percent: the share below it, ties counted
    half (0 = below every reference value, 100 = above all of them)."""
    ref = np.asarray(reference, dtype=np.float64)
    ref = ref[np.isfinite(ref)]
    if len(ref) == 0 or not math.isfinite(value):
        return float("nan")
    return float(100.0 * ((ref < value).sum() + 0.5 * (ref == value).sum()) / len(ref))


def card_log_z(records) -> float | None:
    """log Z from a card's likelihood records (an AIS estimate keeps it in its settings)."""
    for r in records:
        lz = r.settings.get("log_z") if hasattr(r, "settings") else None
        if isinstance(lz, (int, float)) and math.isfinite(lz):
            return float(lz)
    return None


def to_png(a: np.ndarray) -> bytes:
    """(H, W) grey in [0, 1] -> 8-bit PNG bytes (for tests and downloads)."""
    arr = (np.clip(np.asarray(a, dtype=np.float64), 0, 1) * 255 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()
