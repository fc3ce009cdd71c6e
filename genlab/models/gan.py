"""Generative adversarial networks (Goodfellow et al., 2014): an MLP GAN, a DCGAN for 28x28
images (Radford et al., 2016), and a small GAN for 2-d toy data.

The discriminator returns logits and every loss is computed from them:

    D loss      = BCE(D(x), 1 - smoothing) + BCE(D(G(z)), 0)       (labels flipped with prob. p_noise)
    G minimax   = mean log(1 - sigmoid(D(G(z))))  = -mean softplus(D(G(z)))
    G non-sat.  = -mean log sigmoid(D(G(z)))      =  mean softplus(-D(G(z)))

Images live in [-1, 1] inside the model (tanh output); decode() maps them to [0, 1].
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..live import LiveRun
from ..watch import FixedNoiseFilm
from .base import Capabilities, Curves, Preset, Series, descend, eval_mode, option, register

ARCHS = ("mlp", "dcgan", "toy")
LOSSES = ("nonsaturating", "minimax")


@dataclass
class GANConfig:
    arch: str = option("mlp", "architecture", choices=ARCHS)
    latent_dim: int = option(100, "latent dimensions")
    data_shape: tuple[int, ...] = option((1, 28, 28), "data shape: (C, H, W) images or (2,) points", cli=False)
    hidden: int = option(128, "the toy GAN's width")
    loss: str = option("nonsaturating", "generator loss", choices=LOSSES)
    label_smoothing: float = option(0.0, "one-sided label smoothing: real targets become 1 - s")
    label_noise: float = option(0.0, "probability of flipping each of D's labels")
    d_steps: int = option(1, "discriminator steps per generator step")
    d_lr_mult: float = option(1.0, "discriminator learning rate = lr x this (with --resume it replaces the "
                                   "checkpoint's: two time-scale updates, Heusel et al. 2017)", resume=True)
    beta1: float = option(0.5, "Adam's beta1 for both players")
    num_classes: int = option(0, "a conditional GAN (Mirza & Osindero 2014): the number of class labels given to "
                                 "the generator beside z and to the discriminator beside the image (0: none)")

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, not {self.arch!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, not {self.loss!r}")
        if not (0 <= self.label_smoothing < 0.5 and 0 <= self.label_noise < 0.5):
            raise ValueError("label_smoothing and label_noise must be in [0, 0.5)")
        if self.d_steps < 1 or self.latent_dim < 1:
            raise ValueError("d_steps and latent_dim must be >= 1")
        if self.arch == "dcgan" and tuple(self.data_shape) != (1, 28, 28):
            raise ValueError("the DCGAN is built for (1, 28, 28) images")
        if self.num_classes < 0 or (self.num_classes and self.arch == "toy"):
            raise ValueError("num_classes must be >= 0, and the toy GAN's points have no labels")


# ----------------------------------------------------------------------------- networks
def mlp_generator(z: int, d: int) -> nn.Sequential:
    """5 linear layers; batch norm and dropout 0.2 after every one but the first; tanh out."""
    sizes = [z, 128, 256, 512, 1024]
    layers: list[nn.Module] = [nn.Linear(sizes[0], sizes[1]), nn.LeakyReLU(0.2)]
    for a, b in zip(sizes[1:-1], sizes[2:]):
        layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.LeakyReLU(0.2), nn.Dropout(0.2)]
    layers += [nn.Linear(sizes[-1], d), nn.Tanh()]
    return nn.Sequential(*layers)


def mlp_discriminator(d: int) -> nn.Sequential:
    """3 linear layers with LeakyReLU(0.2), dropout 0.2 on the first; one logit out."""
    return nn.Sequential(nn.Linear(d, 512), nn.LeakyReLU(0.2), nn.Dropout(0.2),
                         nn.Linear(512, 256), nn.LeakyReLU(0.2),
                         nn.Linear(256, 1))


class DCGenerator(nn.Module):
    """dense z -> 7x7x256, then 5x5 transposed convolutions to 128 (7x7), 64 (14x14), 1 (28x28)."""

    def __init__(self, z: int):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(z, 7 * 7 * 256, bias=False), nn.BatchNorm1d(7 * 7 * 256), nn.LeakyReLU(0.2))
        self.net = nn.Sequential(
            nn.ConvTranspose2d(256, 128, 5, 1, 2, bias=False), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),  # (B, 128, 7, 7)
            nn.ConvTranspose2d(128, 64, 5, 2, 2, output_padding=1, bias=False), nn.BatchNorm2d(64), nn.LeakyReLU(0.2),  # 14x14
            nn.ConvTranspose2d(64, 1, 5, 2, 2, output_padding=1), nn.Tanh())  # (B, 1, 28, 28)

    def forward(self, z):
        return self.net(self.fc(z).view(-1, 256, 7, 7))


def dc_discriminator(channels: int = 1) -> nn.Sequential:
    """conv 64 stride 2, conv 128 stride 2, LeakyReLU and dropout 0.3, dense to one logit
    (channels: the image's, plus a conditional GAN's label planes)."""
    return nn.Sequential(
        nn.Conv2d(channels, 64, 5, 2, 2), nn.LeakyReLU(0.2), nn.Dropout(0.3),  # (B, 64, 14, 14)
        nn.Conv2d(64, 128, 5, 2, 2), nn.LeakyReLU(0.2), nn.Dropout(0.3),  # (B, 128, 7, 7)
        nn.Flatten(), nn.Linear(128 * 7 * 7, 1))


def toy_nets(z: int, width: int) -> tuple[nn.Module, nn.Module]:
    g = nn.Sequential(nn.Linear(z, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 2))
    d = nn.Sequential(nn.Linear(2, width), nn.LeakyReLU(0.2), nn.Linear(width, width), nn.LeakyReLU(0.2),
                      nn.Linear(width, 1))
    return g, d


def dcgan_init(module: nn.Module) -> None:
    """Radford et al.: weights from N(0, 0.02); batch-norm scales from N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


# ----------------------------------------------------------------------------- losses
def d_loss_from_logits(real: torch.Tensor, fake: torch.Tensor, smoothing: float = 0.0, noise: float = 0.0,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Discriminator loss: real toward 1 - smoothing, fake toward 0, labels flipped with prob `noise`."""
    t_real = torch.full_like(real, 1.0 - smoothing)
    t_fake = torch.zeros_like(fake)
    if noise > 0:
        flip_r = torch.rand(real.shape, generator=generator, device=real.device) < noise
        flip_f = torch.rand(fake.shape, generator=generator, device=fake.device) < noise
        t_real = torch.where(flip_r, 1.0 - t_real, t_real)
        t_fake = torch.where(flip_f, 1.0 - t_fake, t_fake)
    return F.binary_cross_entropy_with_logits(real, t_real) + F.binary_cross_entropy_with_logits(fake, t_fake)


def g_loss_from_logits(fake: torch.Tensor, kind: str = "nonsaturating") -> torch.Tensor:
    """Generator loss: minimax log(1 - D(G(z))), or the non-saturating -log D(G(z))."""
    if kind == "minimax":
        return -F.softplus(fake).mean()
    return F.softplus(-fake).mean()


@functools.lru_cache(maxsize=4)
def loss_curves(n: int = 199, kinds: tuple[str, ...] = LOSSES) -> dict[str, torch.Tensor]:
    """Each generator loss and its derivative as functions of d = D(G(z)) in (0, 1), by autograd
    through `g_loss_from_logits`, the function the generator trains with (d is the input; its
    logit goes in as a batch of one). Returns d (n,) and, per kind, `loss_<kind>` and `grad_<kind>`
    = dLoss/dd (n,), float64. Computed once per process (the curves do not depend on the model);
    the tensors are shared: do not modify them."""
    d = torch.sigmoid(torch.linspace(-12.0, 12.0, n, dtype=torch.float64))  # even in the logit: dense near 0 and 1
    out = {"d": d}
    for kind in kinds:
        def one(v, kind=kind):
            return g_loss_from_logits(torch.logit(v).view(1), kind)
        out[f"loss_{kind}"] = torch.func.vmap(one)(d)
        out[f"grad_{kind}"] = torch.func.vmap(torch.func.grad(one))(d)
    return out


def generator_gradients(model: "GAN", z: torch.Tensor, kinds: tuple[str, ...] = LOSSES) -> dict[str, torch.Tensor]:
    """What each generator loss sends back to G for the samples G(z) under the current D, by
    autograd on the model: d = D(G(z)) (B,), and per kind `dl_dd_<kind>` (the loss's slope at each
    sample's d) and `grad_x_<kind>` (B, ...) = dLoss_i/dx_i, the gradient reaching the generator's
    output (each sample's own loss: the batch mean's gradient times B). Model space (images in
    [-1, 1]); D in eval mode (its batch-norm statistics fixed, so samples do not interact)."""
    with eval_mode(model), torch.enable_grad():
        x = model.generate(z).detach().requires_grad_(True)
        logits = model.discriminate(x)
        out = {"d": torch.sigmoid(logits.detach().double())}
        for kind in kinds:
            loss = len(z) * g_loss_from_logits(logits, kind)  # the sum of the samples' own losses
            (gx,) = torch.autograd.grad(loss, x, retain_graph=True)
            out[f"grad_x_{kind}"] = gx.detach()
            # each sample's own loss and its slope in D, in float64 from the logit (D may round to 0 or 1 in float32)
            lg = logits.detach().double().requires_grad_(True)
            d = torch.sigmoid(lg)
            each = torch.func.vmap(lambda v, kind=kind: g_loss_from_logits(v.view(1), kind))(lg)
            (dl_dlogit,) = torch.autograd.grad(each.sum(), lg)
            out[f"loss_{kind}"] = each.detach()
            out[f"dl_dd_{kind}"] = dl_dlogit / (d * (1 - d)).detach()  # chain rule: dD/dlogit = D(1 - D)
    return out


# ----------------------------------------------------------------------------- model
KIND = {"mlp": "MLP GAN", "dcgan": "DCGAN", "toy": "2-d GAN"}
LOSS_CURVES = Series((("d_loss", "D loss", "#d62728"), ("g_loss", "G loss", "#1f77b4")), "loss")
OUTPUT_CURVES = Series((("d_real", "mean D(x), real", "#2ca02c"), ("d_fake", "mean D(G(z)), generated", "#ff7f0e")),
                       "discriminator output", yrange=(0.0, 1.0), hline=0.5)


def _describe(cfg: GANConfig) -> str:
    what = {"mlp": "MLP GAN", "dcgan": "DCGAN", "toy": "GAN on 2-d toy data"}[cfg.arch]
    return f"{what}, {cfg.loss} generator loss"


# ----------------------------------------------------------------------------- live training (GAN Live)
@dataclass
class LiveSettings:
    """What the GAN Live page may change while the job is paused."""

    lr_g: float = 2e-4
    lr_d: float = 2e-4
    d_steps: int = 1
    loss: str = "nonsaturating"
    batch_size: int = 128


class LiveGAN(LiveRun):
    """A GAN stepped by hand or in chunks: "d" (one discriminator step), "g" (one generator
    step) or "both" (d_steps discriminator steps, then one generator step). The run's step
    counter counts generator steps."""

    keys = ("d_loss", "g_loss", "d_real", "d_fake")
    actions = ("d", "g", "both")
    kind = "adversarial"
    Settings = LiveSettings

    def __init__(self, model, data: torch.Tensor, settings: LiveSettings, seed: int = 0, toy: str | None = None,
                 film_every: int = 100, film: FixedNoiseFilm | None = None):
        self.opt_g, self.opt_d = model.configure_optimizers(settings.lr_g)
        film = film or FixedNoiseFilm(model, n=64 if toy is None else 512, seed=0)
        super().__init__(model, data, settings, seed, film, film_every, toy)
        self.apply(settings)

    @property
    def g_steps(self) -> int:
        return self.steps

    def apply(self, s: LiveSettings) -> None:
        """Take new settings (learning rates, D steps, loss, batch size)."""
        self.settings = s
        for grp in self.opt_g.param_groups:
            grp["lr"] = s.lr_g
        for grp in self.opt_d.param_groups:
            grp["lr"] = s.lr_d
        self.model.config.loss = s.loss
        self.model.config.d_steps = s.d_steps

    def _batch(self) -> torch.Tensor:
        idx = torch.randint(0, len(self.data), (self.settings.batch_size,), generator=self.gen, device=self.device)
        return self.model.to_model_space(self.data[idx])

    def _update(self, action: str) -> tuple[dict[str, torch.Tensor], bool]:
        out: dict[str, torch.Tensor] = {}
        if action in ("d", "both"):
            for _ in range(self.settings.d_steps if action == "both" else 1):
                out.update(self.model.d_step(self._batch(), self.opt_d, self.gen))
        if action in ("g", "both"):
            out.update(self.model.g_step(self.settings.batch_size, self.opt_g, self.gen))
        return out, action in ("g", "both")

    @torch.no_grad()
    def samples(self) -> torch.Tensor:
        with eval_mode(self.model):
            return self.model.decode(self.film.z).cpu()

    @torch.no_grad()
    def field(self, n: int = 40, extent: float = 3.0, arrows: int = 200) -> dict:
        """For 2-d data: D's probability on a grid, real and generated points, and the
        generator's gradient direction (-dLoss_G/dx) at generated points."""
        with eval_mode(self.model):
            ticks = torch.linspace(-extent, extent, n, device=self.device)
            yy, xx = torch.meshgrid(ticks, ticks, indexing="ij")
            grid = torch.stack([xx.flatten(), yy.flatten()], 1)
            prob = torch.sigmoid(self.model.discriminate(grid)).view(n, n).cpu().numpy()
            fake = self.model.decode(self.film.z[:arrows])
        grads = generator_gradients(self.model, self.film.z[:arrows])
        real = self.data[torch.randint(0, len(self.data), (500,), generator=self.gen, device=self.device)]
        return {"ticks": ticks.cpu().numpy(), "prob": prob, "real": real.cpu().numpy(),
                "fake": fake.cpu().numpy(), "grad": -grads[f"grad_x_{self.settings.loss}"].cpu().numpy(),
                "grads": {k: -grads[f"grad_x_{k}"].cpu().numpy() for k in LOSSES}}

    def loss_view(self, n: int = 64) -> dict:
        """Both generator losses for the current D: the curves over D(G(z)), and for the first n
        fixed-noise samples their D(G(z)), each loss's slope there, and the norm of the gradient
        that reaches each sample (host arrays; see generator_gradients)."""
        g = generator_gradients(self.model, self.film.z[:n])
        out = {"d": g["d"].cpu().numpy(), "curves": {k: v.numpy() for k, v in loss_curves().items()}}
        for k in LOSSES:
            out[f"loss_{k}"] = g[f"loss_{k}"].cpu().numpy()
            out[f"slope_{k}"] = g[f"dl_dd_{k}"].cpu().numpy()
            out[f"norm_{k}"] = g[f"grad_x_{k}"].flatten(1).norm(dim=1).cpu().numpy()
        return out

    def draw(self) -> dict:
        return {"g_steps": self.steps, **({"losses": self.loss_view()} if self.at_rest else {}),
                **({"field": self.field()} if self.toy else {"samples": self.samples()})}



def _recipe(opts: dict, shape: tuple[int, ...], dataset: str) -> tuple[GANConfig, dict]:
    """A GAN: images (MLP or DCGAN) in [-1, 1] inside the model, or a toy GAN on 2-d points."""
    cfg = GANConfig(data_shape=shape, **opts)
    toy = len(shape) == 1
    if toy != (cfg.arch == "toy"):
        raise ValueError(f"a {cfg.arch} GAN cannot train on {dataset} ({'points' if toy else 'images'})")
    return cfg, {"lr": 1e-3 if toy else 2e-4, "batch_size": 256 if toy else 128, "binarize": False}


@register("gan", GANConfig, label=lambda cfg: KIND[cfg.arch], describe=_describe,
          presets={"gan": Preset(fixed={"arch": "mlp"}, defaults={"latent_dim": 100}, help="MLP GAN"),
                   "dcgan": Preset(fixed={"arch": "dcgan"}, defaults={"latent_dim": 100}, help="DCGAN (slow on a CPU)"),
                   "gan2d": Preset(fixed={"arch": "toy"}, defaults={"latent_dim": 2}, data="ring8",
                                   help="GAN on 2-d toy data")},
          make_config=_recipe, live=LiveGAN,
          curves=lambda cfg: Curves(steps=(LOSS_CURVES, OUTPUT_CURVES), note=(
              "A balanced game keeps mean D(x) and D(G(z)) apart but near 0.5; D(G(z)) at 0 means the "
              "discriminator wins outright and the generator's gradient fades.")),
          names={"d_loss": "D loss", "g_loss": "G loss", "d_real": "mean D(x)", "d_fake": "mean D(G(z))"},
          examples=lambda: [GANConfig(arch="toy", data_shape=(2,), latent_dim=2, hidden=32),
                            GANConfig(arch="mlp", data_shape=(1, 8, 8), latent_dim=8),
                            GANConfig(arch="dcgan", latent_dim=8),
                            GANConfig(arch="mlp", data_shape=(1, 8, 8), latent_dim=8, num_classes=10)],
          progress_key="d_loss")  # D learns first: its loss falls while G is still poor
class GAN(nn.Module):
    def __init__(self, config: GANConfig):
        super().__init__()
        self.config = config
        self.latent_dim = config.latent_dim
        d = math.prod(config.data_shape)
        c = config.num_classes  # a conditional GAN: a one-hot label beside z, and beside (or under) the image
        if config.arch == "mlp":
            self.G, self.D = mlp_generator(config.latent_dim + c, d), mlp_discriminator(d + c)
        elif config.arch == "dcgan":
            self.G, self.D = DCGenerator(config.latent_dim + c), dc_discriminator(1 + c)
            dcgan_init(self)
        else:
            self.G, self.D = toy_nets(config.latent_dim, config.hidden)
        self.points = config.arch == "toy"

    @property
    def capabilities(self) -> Capabilities:
        c = self.config
        return Capabilities(data_kind="points" if self.points else "image", data_shape=tuple(c.data_shape),
                            data_range=None if self.points else (0.0, 1.0),
                            latent="gaussian", latent_dim=c.latent_dim, num_classes=c.num_classes)

    def sample(self, n: int, generator: torch.Generator | None = None, labels: torch.Tensor | None = None
               ) -> torch.Tensor:
        """G(z) for n prior draws: images (n, C, H, W) in [0, 1], or points (n, 2); a conditional
        GAN draws the n labels from the generator too, unless given."""
        z = self.prior_sample(n, generator)
        return self.decode(z, self._labels(n, generator, labels, z.device))

    def _labels(self, n: int, generator, labels, device) -> torch.Tensor | None:
        """A conditional GAN's labels: as given, else drawn from the generator; None when unconditional."""
        if not self.config.num_classes or labels is not None:
            return labels
        return torch.randint(self.config.num_classes, (n,), generator=generator, device=device)

    def _onehot(self, labels: torch.Tensor | None, n: int, device) -> torch.Tensor:
        if labels is None:
            labels = torch.zeros(n, dtype=torch.long, device=device)
        return F.one_hot(labels.to(device).long(), self.config.num_classes).float()

    def _g(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.config.num_classes:
            z = torch.cat([z, self._onehot(labels, z.shape[0], z.device)], 1)
        return self.G(z)

    def _d(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.config.num_classes:
            y = self._onehot(labels, x.shape[0], x.device)
            if x.dim() == 4:  # the DCGAN: one constant plane per label under the image
                y = y[:, :, None, None].expand(-1, -1, *x.shape[2:])
            x = torch.cat([x, y.to(x.dtype)], 1)
        return self.D(x)

    # -- data space: images in [-1, 1] inside, [0, 1] outside; points unchanged
    def to_model_space(self, x: torch.Tensor) -> torch.Tensor:
        if self.points:
            return x
        x = x * 2 - 1
        return x.flatten(1) if self.config.arch == "mlp" else x

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """G(z) in model space: (B, D) for the MLP, (B, 1, 28, 28) for the DCGAN, (B, 2) toy."""
        return self._g(z, labels)

    def discriminate(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B,) for inputs in model space."""
        return self._d(x, labels).view(-1)

    def prior(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The prior's location and scale (Z,) each: N(0, I)."""
        device = next(self.parameters()).device
        return torch.zeros(self.latent_dim, device=device), torch.ones(self.latent_dim, device=device)

    def prior_sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0
                     ) -> torch.Tensor:
        """z ~ N(0, T^2 I), (n, Z)."""
        device = next(self.parameters()).device
        return temperature * torch.randn(n, self.latent_dim, generator=generator, device=device)

    def features(self, z: torch.Tensor) -> torch.Tensor:
        """The generator's first layer's activations (B, F): where GANSpace looks for directions."""
        first = self.G.fc if isinstance(self.G, DCGenerator) else self.G[:2]
        if self.config.num_classes:  # label 0's
            z = torch.cat([z, self._onehot(None, z.shape[0], z.device)], 1)
        return first(z).flatten(1)

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images (B, C, H, W) in [0, 1], or points (B, 2) for the toy GAN (a conditional GAN:
        given the labels, label 0 when not given)."""
        out = self._g(z, labels)
        if self.points:
            return out
        return ((out + 1) / 2).view(z.shape[0], *self.config.data_shape)

    # -- training
    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        betas = (self.config.beta1, 0.999)
        return [torch.optim.Adam(self.G.parameters(), lr=lr, betas=betas),
                torch.optim.Adam(self.D.parameters(), lr=lr * self.config.d_lr_mult, betas=betas)]

    def d_step(self, real: torch.Tensor, opt_d: torch.optim.Optimizer, generator=None,
               labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One discriminator update on a batch of real data (model space), with its labels when
        conditional (the fakes get labels drawn at random)."""
        z = self.prior_sample(real.shape[0], generator)
        asked = self._labels(real.shape[0], generator, None, z.device)
        with torch.no_grad():
            fake = self._g(z, asked)
        l_real, l_fake = self.discriminate(real, labels), self.discriminate(fake, asked)
        loss = d_loss_from_logits(l_real, l_fake, self.config.label_smoothing, self.config.label_noise, generator)
        descend(opt_d, loss)
        return {"d_loss": loss.detach(), "d_real": torch.sigmoid(l_real).mean().detach(),
                "d_fake": torch.sigmoid(l_fake).mean().detach()}

    def g_step(self, n: int, opt_g: torch.optim.Optimizer, generator=None) -> dict[str, torch.Tensor]:
        """One generator update through a discriminator that is not updated."""
        self.D.requires_grad_(False)
        try:
            z = self.prior_sample(n, generator)
            asked = self._labels(n, generator, None, z.device)
            loss = g_loss_from_logits(self.discriminate(self._g(z, asked), asked), self.config.loss)
            descend(opt_g, loss)
        finally:
            self.D.requires_grad_(True)
        return {"g_loss": loss.detach()}

    def train_step(self, batch: torch.Tensor, optimizers: list, generator=None,
                   labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        opt_g, opt_d = optimizers
        real = self.to_model_space(batch)
        for _ in range(self.config.d_steps):
            out = self.d_step(real, opt_d, generator, labels)
        out.update(self.g_step(real.shape[0], opt_g, generator))
        return out
