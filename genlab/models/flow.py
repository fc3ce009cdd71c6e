"""Normalizing flows (Dinh et al., RealNVP, 2017): an invertible map from data x to a latent z
with a standard Gaussian prior, so the likelihood is exact by the change of variables:

    log p(x) = log N(z; 0, I) + sum_layers log |det dz_l / dz_{l-1}|

Every layer keeps one contract: forward(x) -> (z, log_det) and inverse(z) -> (x, log_det),
with log_det per example; `FlowSequence` composes them and sums the log-dets.

Images (8-bit pixels): uniform dequantisation y = (x_int + u) / 256 and the logit transform
s = logit(alpha + (1 - 2 alpha) y) are part of the model, their Jacobians in the likelihood.
Then RealNVP on 1x28x28: checkerboard affine couplings, a squeeze to 4x14x14, channel-wise
couplings, more checkerboard couplings; ActNorm before each coupling (data-dependent init).
It is single-scale (nothing is factored out): at 28x28 the whole net stays small, and every
intermediate is a full 784-value tensor that the Flow view can show as an image.

Vectors (2-d points, table rows): affine couplings with MLP conditioners and parity, random
or explicit binary masks (the coupling takes any mask), ActNorm between them.

Bits per dimension on 8-bit images: bpd = (-E_u log p(y) + D log 256) / (D ln 2), an upper
bound on the discrete data's NLL (Theis et al., 2016; the convention of Dinh et al.).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from .base import Capabilities, Curves, Preset, LikelihoodRecord, Series, minimize_terms, option, register

LOG_2PI = math.log(2 * math.pi)


@dataclass
class FlowConfig:
    data_shape: tuple[int, ...] = option((1, 28, 28), "data shape: (C, H, W) images or (D,) vectors", cli=False)
    hidden: int = option(64, "conditioner width (channels for images, units for vectors)")
    depth: int = option(3, "layers per conditioner")
    couplings: tuple[int, ...] = option((3, 3, 3), "couplings per stage: images checkerboard, (squeeze) channel-wise, "
                                                   "checkerboard, e.g. 3,3,3; vectors (L,) (default 6)")
    masks: str = option("checkerboard", "images: checkerboard; vectors: parity, random or explicit",
                        choices=("checkerboard", "parity", "random", "explicit"))
    mask_bits: tuple[tuple[int, ...], ...] = option((), "masks=explicit: one 0/1 row per coupling (1 = conditions)",
                                                    cli=False)
    mask_seed: int = option(0, "the seed of masks=random")
    clamp: float = option(3.0, "soft clamp of the log-scale: s = clamp * tanh(s / clamp); 0: none")
    conditioner: str = option("mlp", "vectors: mlp (ReLU layers) or tanh ((s, t) = tanh(W x_B + b), one layer)",
                              choices=("mlp", "tanh"))
    alpha: float = option(0.05, "logit transform margin (images)")
    actnorm: bool = option(True, "activation normalisation after each coupling")

    def __post_init__(self):
        self.data_shape = tuple(self.data_shape)
        self.couplings = tuple(self.couplings)
        self.mask_bits = tuple(tuple(int(b) for b in row) for row in self.mask_bits)
        image = len(self.data_shape) == 3
        if image and (self.data_shape[1] % 2 or self.data_shape[2] % 2 or len(self.couplings) != 3):
            raise ValueError("an image flow needs even height and width and three coupling counts")
        if not image and len(self.data_shape) != 1:
            raise ValueError(f"data_shape is (C, H, W) or (D,), not {self.data_shape}")
        if image and self.masks != "checkerboard":
            raise ValueError("image flows use checkerboard (and, after the squeeze, channel-wise) masks")
        if not image and self.masks not in ("parity", "random", "explicit"):
            raise ValueError(f"vector flows use parity, random or explicit masks, not {self.masks!r}")
        if self.masks == "explicit" and (len(self.mask_bits) != sum(self.couplings)
                                         or any(len(r) != self.data_shape[0] for r in self.mask_bits)):
            raise ValueError("explicit masks need one row of D bits per coupling")
        if self.hidden < 1 or self.depth < 1 or min(self.couplings) < 0 or not (0 < self.alpha < 0.5):
            raise ValueError("hidden, depth must be >= 1, couplings >= 0, 0 < alpha < 0.5")
        if self.conditioner not in ("mlp", "tanh") or (image and self.conditioner != "mlp"):
            raise ValueError(f"conditioner is mlp, or tanh for vector flows, not {self.conditioner!r}")
        if self.clamp < 0:
            raise ValueError("clamp must be >= 0 (0: no soft clamp)")


# ----------------------------------------------------------------------------- masks
def checkerboard(h: int, w: int, parity: int) -> torch.Tensor:
    """(1, 1, H, W) with 1 where (i + j + parity) is even."""
    i, j = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return ((i + j + parity) % 2 == 0).float().view(1, 1, h, w)


def channel_mask(c: int, parity: int) -> torch.Tensor:
    """(1, C, 1, 1): the first half of the channels condition (parity 0), or the second half."""
    m = (torch.arange(c) < c // 2).float()
    return (m if parity == 0 else 1 - m).view(1, c, 1, 1)


def parity_mask(d: int, parity: int) -> torch.Tensor:
    """(1, D): odd features condition the even ones, alternating with the layer's parity."""
    return ((torch.arange(d) + parity) % 2 == 1).float().view(1, d)


def random_mask(d: int, generator: torch.Generator) -> torch.Tensor:
    """(1, D) with floor(D / 2) conditioning features drawn at random."""
    m = torch.zeros(d)
    m[torch.randperm(d, generator=generator)[: d // 2]] = 1.0
    return m.view(1, d)


# ----------------------------------------------------------------------------- layers
class ActNorm(nn.Module):
    """z = (x + bias) * exp(log_scale) per channel (or feature); the first training batch sets
    bias and scale so that its output has zero mean and unit variance (Kingma & Dhariwal)."""

    def __init__(self, channels: int, image: bool):
        super().__init__()
        shape = (1, channels, 1, 1) if image else (1, channels)
        self.bias = nn.Parameter(torch.zeros(shape))
        self.log_scale = nn.Parameter(torch.zeros(shape))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.uint8))
        self._ready = False  # a host copy of `initialized`: read once, not every step

    def _init_from(self, x: torch.Tensor) -> None:
        if not self._ready:
            self._ready = bool(self.initialized)  # one host sync, the first time only
        if self._ready or not self.training:
            return
        with torch.no_grad():
            dims = [0, 2, 3] if x.dim() == 4 else [0]
            mean, std = x.mean(dims, keepdim=True), x.std(dims, keepdim=True)
            self.bias.copy_(-mean)
            self.log_scale.copy_(-torch.log(std.clamp_min(1e-6)))
            self.initialized.fill_(1)
        self._ready = True

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._init_from(x)
        z = (x + self.bias) * self.log_scale.exp()
        pixels = x.shape[2] * x.shape[3] if x.dim() == 4 else 1
        return z, (self.log_scale.sum() * pixels).expand(x.shape[0])

    def inverse(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = z * (-self.log_scale).exp() - self.bias
        pixels = z.shape[2] * z.shape[3] if z.dim() == 4 else 1
        return x, (-self.log_scale.sum() * pixels).expand(z.shape[0])


class AffineCoupling(nn.Module):
    """The masked part conditions an affine map of the rest (mask = 1: conditions, kept as is):

        (s, t) = net(x * mask),   s <- clamp * tanh(s / clamp)
        z = x * mask + (1 - mask) * (x * exp(s) + t),   log_det = sum (1 - mask) * s

    `net` maps a tensor of x's shape to 2x its channels (features); the convolutional and MLP
    conditioners' last layer starts at zero, so the coupling starts as the identity (the tanh
    conditioner starts near it). Any binary mask works.
    """

    def __init__(self, mask: torch.Tensor, net: nn.Module, clamp: float = 3.0):
        super().__init__()
        self.register_buffer("mask", mask)
        self.net, self.clamp = net, clamp

    def _scale_shift(self, x_cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self.net(x_cond).chunk(2, dim=1)
        if self.clamp > 0:
            s = self.clamp * torch.tanh(s / self.clamp)
        free = 1 - self.mask
        return s * free, t * free

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self._scale_shift(x * self.mask)
        z = x * self.mask + (1 - self.mask) * (x * s.exp() + t)  # s, t are 0 on the masked part
        return z, s.flatten(1).sum(1)

    def inverse(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self._scale_shift(z * self.mask)
        x = z * self.mask + (1 - self.mask) * ((z - t) * (-s).exp())
        return x, -s.flatten(1).sum(1)


class Squeeze(nn.Module):
    """(B, C, H, W) -> (B, 4C, H/2, W/2): each 2x2 block becomes 4 channels. Volume-preserving."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, h, w = x.shape
        z = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)
        return z, x.new_zeros(b)

    def inverse(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c4, h, w = z.shape
        x = z.view(b, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c4 // 4, 2 * h, 2 * w)
        return x, z.new_zeros(b)


class FlowSequence(nn.Module):
    """Layers applied in order; forward sums their log-dets, inverse runs them backwards."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_det = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x)
            log_det = log_det + ld
        return x, log_det

    def inverse(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_det = z.new_zeros(z.shape[0])
        for layer in reversed(self.layers):
            z, ld = layer.inverse(z)
            log_det = log_det + ld
        return z, log_det


# ----------------------------------------------------------------------------- conditioners
def conv_net(channels: int, hidden: int, depth: int) -> nn.Sequential:
    """3x3 convolutions with ReLU, C -> hidden -> ... -> 2C; the last one zero-initialised."""
    layers: list[nn.Module] = [nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU()]
    for _ in range(depth - 2):
        layers += [nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU()]
    last = nn.Conv2d(hidden, 2 * channels, 3, padding=1)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)


def mlp_net(d: int, hidden: int, depth: int) -> nn.Sequential:
    """Linear layers with ReLU, D -> hidden -> ... -> 2D; the last one zero-initialised."""
    sizes = [d] + [hidden] * (depth - 1)
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    last = nn.Linear(sizes[-1], 2 * d)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)


def tanh_net(d: int) -> nn.Sequential:
    """One layer, (s, t) = tanh(W x + b): the conditioner of Gonsior et al. (2021); W starts small
    and random, b at zero (genlab.structure initialises its populations the same way)."""
    lin = nn.Linear(d, 2 * d)
    nn.init.normal_(lin.weight, std=0.1 / math.sqrt(max(1, d // 2)))
    nn.init.zeros_(lin.bias)
    return nn.Sequential(lin, nn.Tanh())


# ----------------------------------------------------------------------------- the model
def _curves(cfg: FlowConfig) -> Curves:
    return Curves(epoch=("bpd",), epoch_unit="bits per dimension",
                  steps=(Series((("bpd", "bits per dimension", "#1f77b4"),), "bits/dim"),),
                  note="Bits per dimension = negative log-likelihood / (dimensions x ln 2), exact for a flow "
                       "(up to the dequantisation bound on 8-bit images); lower is better. A logarithmic axis: the "
                       "first updates can throw the loss far up before it settles.", log_y=True)


def _recipe(opts: dict, shape: tuple[int, ...], dataset: str) -> tuple[FlowConfig, dict]:
    """A flow: RealNVP on 8-bit images (dequantised inside the model), a coupling flow on vectors."""
    opts = dict(opts)
    if len(shape) == 1:
        opts.setdefault("masks", "parity")
        opts.setdefault("couplings", (6,))
    return FlowConfig(data_shape=shape, **opts), {"lr": 1e-3, "batch_size": 64, "binarize": False}


@register("flow", FlowConfig, make_config=_recipe, presets={"flow": Preset(help="RealNVP normalizing flow")}, label=lambda cfg: "RealNVP" if len(cfg.data_shape) == 3 else f"coupling flow ({cfg.masks})",
          describe=lambda cfg: (f"RealNVP normalizing flow, {sum(cfg.couplings)} affine couplings, exact likelihood"
                                if len(cfg.data_shape) == 3 else
                                f"affine coupling flow, {sum(cfg.couplings)} couplings with {cfg.masks} masks"),
          curves=_curves,
          metrics={"test_bpd": "test bits per dimension", "test_nll": "test NLL (nats)"},
          names={"bpd": "bits/dim", "nll": "NLL (nats)", "loss": "loss (bits/dim)"},
          examples=lambda: [FlowConfig(data_shape=(1, 8, 8), hidden=16, depth=2, couplings=(2, 2, 2)),
                            FlowConfig(data_shape=(2,), hidden=32, depth=2, couplings=(4,), masks="parity"),
                            FlowConfig(data_shape=(6,), hidden=16, depth=2, couplings=(3,), masks="random"),
                            FlowConfig(data_shape=(5,), couplings=(2,), masks="explicit", conditioner="tanh",
                                       clamp=0.0, mask_bits=((1, 0, 1, 0, 0), (0, 1, 0, 0, 1)))],
          progress_key="bpd")
class Flow(nn.Module):
    def __init__(self, config: FlowConfig):
        super().__init__()
        self.config = config
        self.image = len(config.data_shape) == 3
        self.dims = math.prod(config.data_shape)
        self.flow = FlowSequence(self._image_layers() if self.image else self._vector_layers())

    def _image_layers(self) -> list[nn.Module]:
        c, h, w = self.config.data_shape
        cfg, layers = self.config, []
        n1, n2, n3 = cfg.couplings

        def add(mask, channels):
            if cfg.actnorm:
                layers.append(ActNorm(channels, image=True))
            layers.append(AffineCoupling(mask, conv_net(channels, cfg.hidden, cfg.depth), cfg.clamp))

        for i in range(n1):
            add(checkerboard(h, w, i % 2), c)
        layers.append(Squeeze())
        for i in range(n2):
            add(channel_mask(4 * c, i % 2), 4 * c)
        for i in range(n3):
            add(checkerboard(h // 2, w // 2, i % 2), 4 * c)
        return layers

    def _vector_layers(self) -> list[nn.Module]:
        (d,) = self.config.data_shape
        cfg, layers = self.config, []
        g = torch.Generator().manual_seed(cfg.mask_seed)
        for i in range(sum(cfg.couplings)):
            if cfg.masks == "parity":
                mask = parity_mask(d, i % 2)
            elif cfg.masks == "random":
                mask = random_mask(d, g)
            else:
                mask = torch.tensor(cfg.mask_bits[i], dtype=torch.float32).view(1, d)
            if cfg.actnorm:
                layers.append(ActNorm(d, image=False))
            net = tanh_net(d) if cfg.conditioner == "tanh" else mlp_net(d, cfg.hidden, cfg.depth)
            layers.append(AffineCoupling(mask, net, cfg.clamp))
        return layers

    @property
    def capabilities(self) -> Capabilities:
        kind = "image" if self.image else ("points" if self.dims == 2 else "table")
        return Capabilities(data_kind=kind, data_shape=self.config.data_shape,
                            data_range=(0.0, 1.0) if self.image else None, latent="gaussian", latent_dim=self.dims,
                            encode=True, likelihoods=("exact",), validates=True, traceable=True)

    @property
    def serving_hints(self) -> dict:
        """What a server may speed up (genlab.serving): an image flow's two directions compute
        each image on its own. A vector flow's small layers gain nothing from it."""
        return {"rows": ("flow.forward", "flow.inverse")} if self.image else {}

    # -- dequantisation and the logit transform (images) -----------------------
    def _to_logits(self, x: torch.Tensor, noise: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixels in [0, 1] (8-bit) -> y = (x_int + u) / 256 -> logit(alpha + (1 - 2 alpha) y).
        u ~ U(0, 1) when training and scoring; u = 0.5 (the bin's centre) when noise is None."""
        a = self.config.alpha
        x_int = torch.round(x * 255)
        y = (x_int + (0.5 if noise is None else noise)) / 256
        yp = a + (1 - 2 * a) * y
        s = torch.log(yp) - torch.log1p(-yp)
        log_det = (math.log(1 - 2 * a) - torch.log(yp) - torch.log1p(-yp)).flatten(1).sum(1)
        return s, log_det

    def _from_logits(self, s: torch.Tensor) -> torch.Tensor:
        """The inverse: logits -> y in [0, 1] (continuous pixels)."""
        a = self.config.alpha
        return ((torch.sigmoid(s) - a) / (1 - 2 * a)).clamp(0, 1)

    # -- the flow ---------------------------------------------------------------
    def _run(self, direction: str, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The flow ("forward") or its inverse on h: (z or x, log_det per example)."""
        return getattr(self.flow, direction)(h)

    def log_prob(self, x: torch.Tensor, generator: torch.Generator | None = None, dequantize: bool = True
                 ) -> torch.Tensor:
        """log p per example, in nats. Images: the discrete 8-bit likelihood's lower bound
        log p(y) - D log 256 with one uniform dequantisation draw (the bin's centre if not
        dequantize); vectors: the exact density."""
        if self.image:
            noise = torch.rand(x.shape, generator=generator, device=x.device) if dequantize else None
            h, ld0 = self._to_logits(x, noise)
        else:
            h, ld0 = x, x.new_zeros(x.shape[0])
        z, ld = self._run("forward", h)
        log_pz = (-0.5 * z.pow(2) - 0.5 * LOG_2PI).flatten(1).sum(1)
        out = log_pz + ld + ld0
        return out - self.dims * math.log(256) if self.image else out

    def bits_per_dim(self, nll_nats: torch.Tensor) -> torch.Tensor:
        return nll_nats / (self.dims * math.log(2))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The exact forward map (the pixel bins' centres for images): z (B, D)."""
        h = self._to_logits(x, None)[0] if self.image else x
        return self._run("forward", h)[0].flatten(1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The exact inverse: z (B, D) -> images (B, C, H, W) in [0, 1], or vectors (B, D)."""
        h = self._run("inverse", self._latent_view(z))[0]
        return self._from_logits(h) if self.image else h

    def _latent_view(self, z: torch.Tensor) -> torch.Tensor:
        if not self.image:
            return z
        c, h, w = self.config.data_shape
        return z.view(z.shape[0], 4 * c, h // 2, w // 2)  # the squeezed layout the last layer works in

    def prior(self) -> tuple[torch.Tensor, torch.Tensor]:
        dev = self.flow.layers[-1].mask.device
        return torch.zeros(self.dims, device=dev), torch.ones(self.dims, device=dev)

    def prior_sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0
                     ) -> torch.Tensor:
        """z ~ N(0, T^2 I), (n, D)."""
        dev = self.flow.layers[-1].mask.device
        return temperature * torch.randn(n, self.dims, generator=generator, device=dev)

    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        return self.decode(self.prior_sample(n, generator, temperature))

    @torch.no_grad()
    def trace(self, x: torch.Tensor) -> list[dict]:
        """One input passed layer by layer: name, the tensor in data layout, and each layer's
        log-det per example. The first entry is the dequantised input (bin centres)."""
        squeezed = 0
        h, ld = (self._to_logits(x, None) if self.image else (x, x.new_zeros(len(x))))
        out = [{"name": "input", "x": x, "log_det": None}]
        if self.image:
            out.append({"name": "dequantise + logit", "x": h, "log_det": ld})
        for i, layer in enumerate(self.flow.layers):
            h, ld = layer(h)
            squeezed += isinstance(layer, Squeeze)
            shown = Squeeze().inverse(h)[0] if squeezed else h
            kind = type(layer).__name__
            if isinstance(layer, AffineCoupling):
                kind = "coupling, " + ("channel-wise" if layer.mask.shape[-1] == 1 and self.image else
                                       "checkerboard" if self.image else "masked")
            out.append({"name": f"{i + 1}. {kind}", "x": shown, "log_det": ld})
        return out

    # -- training ----------------------------------------------------------------
    def loss_terms(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Batch means: loss (bits/dim), bits/dim and NLL in nats per example."""
        nll = -self.log_prob(x, generator)  # (B,)
        bpd = self.bits_per_dim(nll).mean()
        return {"loss": bpd, "bpd": bpd, "nll": nll.mean()}

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(self.parameters(), lr=lr)]

    def train_step(self, batch: torch.Tensor, optimizers: list, generator: torch.Generator | None = None
                   ) -> dict[str, torch.Tensor]:
        return minimize_terms(self, batch, optimizers, generator, max_norm=100.0)

    @torch.no_grad()
    def likelihoods(self, x: torch.Tensor, k: int = 1, progress=None, batch_size: int = 500
                    ) -> list[LikelihoodRecord]:
        """The exact NLL in nats per example (and bits/dim) on data x. For images, k
        dequantisation draws per image are importance-weighted: -log mean_i p(y_i) + D log 256,
        a bound that tightens with k (k = 1: the usual single-draw estimate)."""
        k = max(1, k)
        g = torch.Generator(device=x.device).manual_seed(0)
        per = []
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size]
            lp = torch.stack([self.log_prob(xb, g) for _ in range(k if self.image else 1)])  # (k, B)
            per.append(-(torch.logsumexp(lp, 0) - math.log(lp.shape[0])))
            if progress:
                progress(min(i + batch_size, len(x)), len(x))
        nll = torch.cat(per).double()
        value, err = nll.mean().item(), (nll.std() / math.sqrt(len(nll))).item() if len(nll) > 1 else None
        settings = {"dequantization": "uniform, 8-bit", "samples": k, "seed": 0} if self.image else {}
        return [LikelihoodRecord("exact", round(value, 3), None if err is None else round(err, 3), settings, {},
                                 len(x), bpd=round(value / (self.dims * math.log(2)), 4))]
