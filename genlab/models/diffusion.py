"""Diffusion models (Ho et al., "Denoising diffusion probabilistic models", 2020) and flow
matching (Lipman et al. 2023; Liu et al. 2023), in one continuous time t in [0, 1].

Data x0 (images scaled to [-1, 1], or 2-d points) are noised along a Gaussian path

    x_t = alpha_t x0 + sigma_t eps,   eps ~ N(0, I)

- diffusion (variance preserving): alpha_t^2 = sigmoid(lambda_t), sigma_t^2 = sigmoid(-lambda_t),
  lambda_t the log signal-to-noise ratio, falling from about +10 at t = 0 to -10 at t = 1: the
  "cosine" schedule (Nichol & Dhariwal 2021: lambda = -2 log tan(pi t / 2), its ends cut at
  +-10) or the "linear" one of Ho et al. (beta from 0.1 to 20 in continuous time, Song et al.
  2021). The network predicts eps, or v = alpha eps - sigma x0 (Salimans & Ho 2022).
- flow matching: alpha_t = 1 - t, sigma_t = t (straight paths from data to noise); the network
  predicts the velocity v = eps - x0.

Every prediction gives the model's estimates of the clean data and of the noise, x0_hat and
eps_hat (x_t = alpha_t x0_hat + sigma_t eps_hat), and every sampler is written with them:

- DDIM (Song, Meng & Ermon 2021) from t to s < t: x_s = alpha_s x0_hat + sqrt(sigma_s^2 - c^2)
  eps_hat + c z, c = eta sigma_s sqrt(1 - (alpha_t sigma_s / (alpha_s sigma_t))^2).
  eta = 0 is deterministic (for flow matching it is exactly an Euler step of the ODE); eta = 1
  is the ancestral step, the posterior q(x_s | x_t, x0_hat): DDPM when taken on all `timesteps`.
- The probability-flow ODE (Song et al. 2021): dx/dt = alpha'_t x0_hat + sigma'_t eps_hat,
  which moves the data's marginals exactly as the noising does, solved by Heun's or RK4 steps.

DDIM with eta = 0 maps Gaussian noise x_1 to data and back (DDIM inversion runs the same steps
from s to t), so the model declares a Gaussian latent of the data's size with decode and
encode. Its log-likelihood comes from the same ODE and the instantaneous change of variables,
log p_0(x_0) = log p_1(x_1) + integral_0^1 div f(x_t, t) dt, the divergence estimated by
Hutchinson's trace estimator (Grathwohl et al. 2019) or computed exactly for small data.

Class conditioning with label dropout, so one network is both conditional and unconditional,
and classifier-free guidance (Ho & Salimans 2022) at sampling: pred = pred_u + w (pred_c - pred_u).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..live import LiveRun
from .base import Capabilities, Curves, LikelihoodRecord, Preset, Series, descend, option, register

LAMBDA_MAX, LAMBDA_MIN = 10.0, -10.0  # the log-SNR at t = 0 and t = 1 (cosine schedule)
BETA_MIN, BETA_MAX, T_EPS = 0.1, 20.0, 1e-3  # the linear schedule, used on t in [T_EPS, 1]
LOG_2PI = math.log(2 * math.pi)


@dataclass
class DiffusionConfig:
    data_shape: tuple[int, ...] = option((1, 28, 28), "data shape: (C, H, W) images or (2,) points", cli=False)
    objective: str = option("diffusion", "diffusion (a variance-preserving path) or flow (flow matching, straight "
                                         "paths)", choices=("diffusion", "flow"))
    prediction: str = option("v", "what the network predicts (diffusion): eps, or v = alpha eps - sigma x0",
                             choices=("eps", "v"))
    schedule: str = option("cosine", "the noise schedule (diffusion)", choices=("cosine", "linear"))
    timesteps: int = option(1000, "T: the steps of ancestral DDPM sampling")
    sample_steps: int = option(20, "DDIM steps of sample, decode and encode (1 to 50)")
    channels: tuple[int, ...] = option((32, 64, 64), "U-Net widths at full, half and quarter size (images)")
    hidden: tuple[int, ...] = option((128, 128, 128), "MLP widths (points)")
    time_dim: int = option(64, "size of the time embedding")
    num_classes: int = option(0, "class labels for conditioning and guidance (10 for MNIST; 0: unconditional)")
    label_dropout: float = option(0.1, "share of training labels replaced by 'no label' (for guidance)")
    guidance: float = option(2.0, "guidance scale w when labels are given: pred_u + w (pred_c - pred_u)")
    ema: float = option(0.999, "decay of the weights' moving average that samples (0: sample with the weights)")

    def __post_init__(self):
        self.data_shape, self.channels, self.hidden = tuple(self.data_shape), tuple(self.channels), tuple(self.hidden)
        if len(self.data_shape) not in (1, 3):
            raise ValueError("a diffusion model here takes images (C, H, W) or vectors (D,)")
        if len(self.data_shape) == 3 and (len(self.channels) != 3 or min(self.channels) < 1
                                          or self.data_shape[1] % 4 or self.data_shape[2] % 4):
            raise ValueError("the U-Net takes three positive widths and images whose sides divide by 4")
        if len(self.data_shape) == 1 and (not self.hidden or min(self.hidden) < 1):
            raise ValueError("hidden sizes must be positive")
        if not 1 <= self.sample_steps <= 50 or self.timesteps < 2:
            raise ValueError("1 <= sample_steps <= 50 and timesteps >= 2")
        if self.num_classes < 0 or not 0 <= self.label_dropout < 1 or not 0 <= self.ema < 1 or self.time_dim < 2:
            raise ValueError("num_classes >= 0, 0 <= label_dropout < 1, 0 <= ema < 1, time_dim >= 2")
        for name, val, ok in (("objective", self.objective, ("diffusion", "flow")),
                              ("prediction", self.prediction, ("eps", "v")),
                              ("schedule", self.schedule, ("cosine", "linear"))):
            if val not in ok:
                raise ValueError(f"{name} must be one of {ok}, not {val!r}")


# ----------------------------------------------------------------------------- the networks
def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features (B, dim) of times t (B,) in [0, 1] (as of step 1000 t)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000 * t.float()[:, None] * freqs[None]  # (B, half)
    return torch.cat([args.sin(), args.cos()], 1)


class Conditioning(nn.Module):
    """The time embedding, plus a learned label embedding (the last row: "no label")."""

    def __init__(self, time_dim: int, out: int, num_classes: int):
        super().__init__()
        self.time_dim = time_dim
        self.mlp = nn.Sequential(nn.Linear(time_dim, out), nn.SiLU(), nn.Linear(out, out))
        self.label = nn.Embedding(num_classes + 1, out) if num_classes else None

    def forward(self, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        e = self.mlp(time_embedding(t, self.time_dim))  # (B, out)
        if self.label is not None:
            if labels is None:  # no label: the unconditional row
                labels = torch.full((len(t),), self.label.num_embeddings - 1, dtype=torch.long, device=t.device)
            e = e + self.label(labels)
        return e


class ResBlock(nn.Module):
    """GroupNorm, SiLU, 3x3 conv; the conditioning added per channel; again; a skip."""

    def __init__(self, cin: int, cout: int, emb: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(min(8, cin), cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb, cout)
        self.norm2, self.conv2 = nn.GroupNorm(min(8, cout), cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, cout, H, W)
        h = h + self.emb(F.silu(e))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class UNet(nn.Module):
    """A small U-Net: full size -> half -> quarter and back, with skips across."""

    def __init__(self, cfg: DiffusionConfig):
        super().__init__()
        c = cfg.data_shape[0]
        c0, c1, c2 = cfg.channels
        emb = 4 * c0
        self.cond = Conditioning(cfg.time_dim, emb, cfg.num_classes)
        self.inp = nn.Conv2d(c, c0, 3, padding=1)
        self.down0 = ResBlock(c0, c0, emb)
        self.pool0 = nn.Conv2d(c0, c0, 3, stride=2, padding=1)
        self.down1 = ResBlock(c0, c1, emb)
        self.pool1 = nn.Conv2d(c1, c1, 3, stride=2, padding=1)
        self.mid1, self.mid2 = ResBlock(c1, c2, emb), ResBlock(c2, c2, emb)
        self.up1 = ResBlock(c2 + c1, c1, emb)
        self.up0 = ResBlock(c1 + c0, c0, emb)
        self.out = nn.Sequential(nn.GroupNorm(min(8, c0), c0), nn.SiLU(), nn.Conv2d(c0, c, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        e = self.cond(t, labels)  # (B, emb)
        h0 = self.down0(self.inp(x), e)  # (B, c0, H, W)
        h1 = self.down1(self.pool0(h0), e)  # (B, c1, H/2, W/2)
        h = self.mid2(self.mid1(self.pool1(h1), e), e)  # (B, c2, H/4, W/4)
        h = self.up1(torch.cat([F.interpolate(h, scale_factor=2.0, mode="nearest"), h1], 1), e)
        h = self.up0(torch.cat([F.interpolate(h, scale_factor=2.0, mode="nearest"), h0], 1), e)
        return self.out(h)  # (B, C, H, W)


class PointNet(nn.Module):
    """An MLP for vectors: [x, embedding(t, label)] -> prediction."""

    def __init__(self, cfg: DiffusionConfig):
        super().__init__()
        d = cfg.data_shape[0]
        self.cond = Conditioning(cfg.time_dim, cfg.hidden[0], cfg.num_classes)
        sizes = [d + cfg.hidden[0], *cfg.hidden]
        self.body = nn.Sequential(*[m for a, b in zip(sizes[:-1], sizes[1:]) for m in (nn.Linear(a, b), nn.SiLU())])
        self.out = nn.Linear(cfg.hidden[-1], d)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.out(self.body(torch.cat([x, self.cond(t, labels)], 1)))


# ----------------------------------------------------------------------------- live: two models on 2-d points
class Pair(nn.Module):
    """Two models trained side by side on the same batches: a diffusion model and flow matching."""

    def __init__(self, diffusion: Diffusion, flow: Diffusion):
        super().__init__()
        self.diffusion, self.flow = diffusion, flow


def toy_pair(seed: int = 0, hidden: tuple[int, ...] = (128, 128, 128)) -> Pair:
    """The live comparison's two models: the same MLP, one trained as a diffusion model
    (v-prediction, cosine schedule), one by flow matching; weights drawn from the seed."""
    torch.manual_seed(seed)
    make = lambda objective: Diffusion(DiffusionConfig(data_shape=(2,), hidden=hidden, time_dim=32,  # noqa: E731
                                                       objective=objective, ema=0))
    return Pair(make("diffusion"), make("flow"))


@dataclass
class LiveDenoiseSettings:
    lr: float = 2e-3
    batch_size: int = 256


class LiveDenoise(LiveRun):
    """A diffusion model and a flow-matching model on 2-d points, stepped together on the same
    batches. Each draws its learned velocity field (where the ODE carries points at a time t) and
    particles carried from noise to data along their trajectories."""

    keys = ("loss_diffusion", "loss_flow")
    actions = ("step",)
    kind = "denoising"
    Settings = LiveDenoiseSettings

    @staticmethod
    def models(seed: int = 0) -> Pair:
        """The two models a live comparison trains (`toy_pair`)."""
        return toy_pair(seed)

    def __init__(self, model: Pair, data: torch.Tensor, settings: LiveDenoiseSettings, seed: int = 0,
                 toy: str | None = None, film_every: int = 100, film=None):
        self.opts = [m.configure_optimizers(settings.lr)[0] for m in (model.diffusion, model.flow)]
        super().__init__(model, data, settings, seed, None, film_every, None)
        self.particles = torch.randn(64, 2, generator=self.gen, device=self.device)  # the same noise every frame
        self.real = data[torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:600].to(
            data.device)]

    def apply(self, s: LiveDenoiseSettings) -> None:
        self.settings = s
        for opt in self.opts:
            for grp in opt.param_groups:
                grp["lr"] = s.lr

    def _update(self, action: str) -> tuple[dict[str, torch.Tensor], bool]:
        idx = torch.randint(0, len(self.data), (self.settings.batch_size,), generator=self.gen, device=self.device)
        x = self.data[idx]
        a = self.model.diffusion.train_step(x, [self.opts[0]], self.gen)["loss"]
        b = self.model.flow.train_step(x, [self.opts[1]], self.gen)["loss"]
        return {"loss_diffusion": a, "loss_flow": b}, True

    @torch.no_grad()
    def picture(self, m: Diffusion, t: float = 0.5, n: int = 15, extent: float = 3.0, steps: int = 24) -> dict:
        """The velocity of sampling (towards the data: -dx/dt) on an n x n grid at time t, and the
        particles' paths by Heun's method from t = 1 to 0, (steps + 1, P, 2)."""
        was = m.training
        m.eval()
        ticks = torch.linspace(-extent, extent, n, device=self.device)
        yy, xx = torch.meshgrid(ticks, ticks, indexing="ij")
        grid = torch.stack([xx.flatten(), yy.flatten()], 1)
        arrows = -m.velocity(grid, t) / steps  # how far one sampling step moves a point there
        _, paths, _ = m.ode(self.particles, steps, method="heun", trajectory=True)
        m.train(was)
        return {"grid": grid.cpu().numpy(), "arrows": arrows.cpu().numpy(), "paths": paths.cpu().numpy(), "t": t}

    def draw(self) -> dict:
        """The data and one panel per model: its title, the history key of its loss, its picture."""
        return {"real": self.real.cpu().numpy(), "panels": [
            {"title": "diffusion (v-prediction, cosine schedule)", "loss": "loss_diffusion",
             **self.picture(self.model.diffusion)},
            {"title": "flow matching (straight paths)", "loss": "loss_flow", **self.picture(self.model.flow)}]}


# ----------------------------------------------------------------------------- the descriptor
def _label(cfg: DiffusionConfig) -> str:
    kind = "flow matching" if cfg.objective == "flow" else "DDPM"
    return ("conditional " if cfg.num_classes else "") + kind + ("" if len(cfg.data_shape) == 3 else " (2-d)")


def _describe(cfg: DiffusionConfig) -> str:
    net = "a small U-Net" if len(cfg.data_shape) == 3 else "an MLP"
    what = ("flow matching (straight paths from data to noise)" if cfg.objective == "flow" else
            f"diffusion model, {cfg.schedule} schedule, {cfg.prediction}-prediction")
    return (f"{what}, {net}; samples by {cfg.sample_steps} DDIM steps"
            + (f", given one of {cfg.num_classes} labels with guidance {cfg.guidance:g}" if cfg.num_classes else ""))


def _curves(cfg: DiffusionConfig) -> Curves:
    return Curves(epoch=("loss",), epoch_unit="mean squared error",
                  steps=(Series((("loss", "loss", "#1f77b4"),), "mean squared error"),),
                  note="The network's error on the noise (or velocity) it predicts at a random time, averaged over "
                       "times: lower is better, but it is not a likelihood (eval reports bits/dim from the ODE).")


def _recipe(opts: dict, shape: tuple[int, ...], dataset: str) -> tuple[DiffusionConfig, dict]:
    """A U-Net for images, an MLP for 2-d points; Adam at 2e-4 (images) or 1e-3 (points)."""
    cfg = DiffusionConfig(data_shape=shape, **opts)
    image = len(shape) == 3
    return cfg, {"lr": 2e-4 if image else 1e-3, "batch_size": 128 if image else 256, "binarize": False}


@register("diffusion", DiffusionConfig, label=_label, describe=_describe, curves=_curves, make_config=_recipe,
          live=LiveDenoise,
          presets={"ddpm": Preset(help="denoising diffusion model (DDPM / DDIM)"),
                   "flow-matching": Preset(fixed={"objective": "flow"}, help="flow matching: straight paths"),
                   "ddpm-toy": Preset(data="moons", help="diffusion on 2-d points")},
          metrics={"test_loss": "test denoising loss"}, names={"loss": "loss"},
          examples=lambda: [DiffusionConfig(data_shape=(1, 8, 8), channels=(8, 8, 8), time_dim=16, sample_steps=3,
                                            timesteps=4),
                            DiffusionConfig(data_shape=(1, 8, 8), channels=(8, 8, 8), time_dim=16, sample_steps=3,
                                            timesteps=4, num_classes=10, prediction="eps", schedule="linear"),
                            DiffusionConfig(data_shape=(2,), hidden=(16, 16), time_dim=8, sample_steps=3,
                                            timesteps=4, objective="flow")])
class Diffusion(nn.Module):
    def __init__(self, config: DiffusionConfig):
        super().__init__()
        self.config = config
        self.image = len(config.data_shape) == 3
        self.net = UNet(config) if self.image else PointNet(config)
        self.ema_net = copy.deepcopy(self.net).requires_grad_(False) if config.ema else None
        if config.ema:  # how many updates the average has taken (its decay warms up with them)
            self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))
        self._updates: int | None = None  # the same count on the host, read from the buffer once
        self.dims = math.prod(config.data_shape)

    @property
    def capabilities(self) -> Capabilities:
        cfg = self.config
        return Capabilities(data_kind="image" if self.image else "points", data_shape=cfg.data_shape,
                            data_range=(0.0, 1.0) if self.image else None, latent="gaussian", latent_dim=self.dims,
                            encode=True, likelihoods=("ode",), validates=True, num_classes=cfg.num_classes,
                            denoises=True)

    # -- the path: alpha_t, sigma_t and their time derivatives -------------------------------
    def log_snr(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """lambda_t = log(alpha_t^2 / sigma_t^2) and d lambda / dt (diffusion)."""
        t = t.double()
        if self.config.schedule == "cosine":
            a = math.atan(math.exp(-LAMBDA_MAX / 2))
            b = math.atan(math.exp(-LAMBDA_MIN / 2)) - a
            u = a + b * t
            return -2 * torch.log(torch.tan(u)), -4 * b / torch.sin(2 * u)
        tp = T_EPS + (1 - T_EPS) * t  # the linear schedule: log alpha_bar = -(b0 tp + (b1 - b0) tp^2 / 2)
        log_ab = -(BETA_MIN * tp + 0.5 * (BETA_MAX - BETA_MIN) * tp ** 2)
        dlog_ab = -(BETA_MIN + (BETA_MAX - BETA_MIN) * tp) * (1 - T_EPS)
        lam = log_ab - torch.log(-torch.expm1(log_ab))
        return lam, dlog_ab / -torch.expm1(log_ab)

    def path(self, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(alpha_t, sigma_t, d alpha / dt, d sigma / dt) at times t, in double."""
        t = torch.as_tensor(t, dtype=torch.float64)
        if self.config.objective == "flow":
            return 1 - t, t, -torch.ones_like(t), torch.ones_like(t)
        lam, dlam = self.log_snr(t)
        a2, s2 = torch.sigmoid(lam), torch.sigmoid(-lam)
        a, s = a2.sqrt(), s2.sqrt()
        return a, s, 0.5 * a * s2 * dlam, -0.5 * s * a2 * dlam

    # -- the network's estimates ------------------------------------------------------------------
    def denoiser(self) -> nn.Module:
        """The weights that sample: the moving average once trained, the weights themselves while training."""
        return self.ema_net if self.ema_net is not None and not self.training else self.net

    def to_data(self, x: torch.Tensor) -> torch.Tensor:
        """Model space -> data space: images from [-1, 1] to [0, 1] (clamped); points unchanged."""
        return ((x + 1) / 2).clamp(0, 1).view(-1, *self.config.data_shape) if self.image else x

    def from_data(self, x: torch.Tensor) -> torch.Tensor:
        return (2 * x - 1).view(-1, *self.config.data_shape) if self.image else x.view(-1, *self.config.data_shape)

    def raw(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None,
            guidance: float | None = None) -> torch.Tensor:
        """The network's output at x (B, ...) and times t (B,); with labels and guidance w != 1,
        pred_u + w (pred_c - pred_u) from one doubled batch."""
        net = self.denoiser()
        w = self.config.guidance if guidance is None else guidance
        if labels is None or not self.config.num_classes or w == 1:
            return net(x, t, labels)
        null = torch.full_like(labels, self.config.num_classes)
        both = net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, null]))
        cond, uncond = both.chunk(2)
        return uncond + w * (cond - uncond)

    def estimates(self, x: torch.Tensor, t: float | torch.Tensor, labels: torch.Tensor | None = None,
                  guidance: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0_hat, eps_hat) at x_t (B, ...) and time t, in the model's space: x_t = a x0_hat + s eps_hat."""
        t = torch.as_tensor(t, dtype=torch.float64)
        a, s, _, _ = (v.to(x).expand(len(x))[:, *([None] * (x.dim() - 1))] for v in self.path(t.cpu()))
        out = self.raw(x, t.to(device=x.device, dtype=torch.float32).expand(len(x)), labels, guidance)
        if self.config.objective == "flow":  # out = v = eps - x0
            return x - s * out, x + a * out
        if self.config.prediction == "eps":
            return (x - s * out) / a, out
        return a * x - s * out, s * x + a * out  # out = v = a eps - s x0, with a^2 + s^2 = 1

    def velocity(self, x: torch.Tensor, t: float | torch.Tensor, labels: torch.Tensor | None = None,
                 guidance: float | None = None) -> torch.Tensor:
        """The probability-flow ODE's dx/dt = a'_t x0_hat + s'_t eps_hat."""
        x0, eps = self.estimates(x, t, labels, guidance)
        tt = torch.as_tensor(t, dtype=torch.float64).reshape(-1)[:1]
        _, _, da, ds = (float(v) for v in self.path(tt))
        return da * x0 + ds * eps

    # -- samplers -------------------------------------------------------------------------------------
    def grid(self, steps: int) -> list[float]:
        """Times 1 = t_0 > t_1 > ... > t_steps = 0, evenly spaced."""
        return [1 - i / steps for i in range(steps + 1)]

    def step_noise(self, t: float, s: float, eta: float) -> float:
        """DDIM's noise scale c from t down to s: eta sigma_s sqrt(1 - (alpha_t sigma_s / (alpha_s sigma_t))^2),
        at eta = 1 the standard deviation of the posterior q(x_s | x_t, x0) (DDPM's beta tilde)."""
        if eta <= 0:
            return 0.0
        (a_t, s_t, _, _), (a_s, s_s, _, _) = self.path(t), self.path(s)
        if s_s <= 0:
            return 0.0
        r = float((a_t * s_s / (a_s * s_t)).clamp(max=1.0))
        return eta * float(s_s) * math.sqrt(max(0.0, 1 - r ** 2))

    def ddim(self, z: torch.Tensor, steps: int, eta: float = 0.0, labels: torch.Tensor | None = None,
             guidance: float | None = None, generator: torch.Generator | None = None,
             trajectory: bool = False, times: list[float] | None = None):
        """DDIM from x_1 = z (B, ...) to t = 0 over `steps` even steps (or the given times); eta = 1 is
        ancestral sampling (DDPM with steps = timesteps). Returns x_0, or (x_0, xs, x0_hats) with
        every x_t (steps + 1, B, ...) and the estimate of the clean data at each step (steps, B, ...)."""
        ts = times or self.grid(steps)
        x, xs, x0s = z, [z], []
        for t, s in zip(ts[:-1], ts[1:]):
            x0, eps = self.estimates(x, t, labels, guidance)
            a_s, s_s = (float(v) for v in self.path(s)[:2])
            c = self.step_noise(t, s, eta)
            x = a_s * x0 + math.sqrt(max(0.0, s_s ** 2 - c ** 2)) * eps
            if c > 0:
                x = x + c * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            if trajectory:
                xs.append(x)
                x0s.append(x0)
        return (x, torch.stack(xs), torch.stack(x0s)) if trajectory else x

    def ode(self, z: torch.Tensor, steps: int, labels: torch.Tensor | None = None, guidance: float | None = None,
            method: str = "heun", t0: float = 1.0, t1: float = 0.0, trajectory: bool = False):
        """The probability-flow ODE from t0 to t1 (noise to data by default) in `steps` Heun or RK4
        steps. Returns x_t1, or (x_t1, xs, x0_hats) as `ddim` does."""
        h = (t1 - t0) / steps
        x, xs, x0s = z, [z], []
        f = lambda y, t: self.velocity(y, t, labels, guidance)  # noqa: E731
        for i in range(steps):
            t = t0 + i * h
            x = _step(f, x, t, h, method)
            if trajectory:
                xs.append(x)
                x0s.append(self.estimates(x, t + h, labels, guidance)[0])
        return (x, torch.stack(xs), torch.stack(x0s)) if trajectory else x

    def invert(self, x0: torch.Tensor, steps: int, labels: torch.Tensor | None = None,
               guidance: float | None = None) -> torch.Tensor:
        """DDIM inversion: data x0 (model space) to its x_1, the deterministic steps run from s up to t
        with the estimates taken at the start of each step."""
        ts = self.grid(steps)[::-1]
        x = x0
        for s, t in zip(ts[:-1], ts[1:]):
            x0_hat, eps = self.estimates(x, s, labels, guidance)
            a_t, s_t, _, _ = self.path(t)
            x = float(a_t) * x0_hat + float(s_t) * eps
        return x

    # -- the protocol: a Gaussian latent ---------------------------------------------------------------
    def _device(self) -> torch.device:
        return self.net.cond.mlp[0].weight.device

    def prior(self) -> tuple[torch.Tensor, torch.Tensor]:
        dev = self._device()
        return torch.zeros(self.dims, device=dev), torch.ones(self.dims, device=dev)

    def prior_sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0
                     ) -> torch.Tensor:
        """n draws of x_1 ~ N(0, T^2 I), flattened: (n, D)."""
        return temperature * torch.randn(n, self.dims, generator=generator, device=self._device())

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None, steps: int | None = None,
               guidance: float | None = None) -> torch.Tensor:
        """Deterministic DDIM (eta = 0) from noise z (B, D) to data: images (B, C, H, W) in [0, 1], or
        points (B, D). A conditional model without labels decodes unconditionally."""
        x = self.ddim(z.view(-1, *self.config.data_shape), steps or self.config.sample_steps, 0.0, labels, guidance)
        return self.to_data(x)

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None, steps: int | None = None,
               guidance: float | None = None) -> torch.Tensor:
        """DDIM inversion of data x (images in [0, 1]): its noise x_1, flattened (B, D)."""
        return self.invert(self.from_data(x), steps or self.config.sample_steps, labels, guidance).flatten(1)

    def sample(self, n: int, generator: torch.Generator | None = None, labels: torch.Tensor | None = None,
               steps: int | None = None) -> torch.Tensor:
        """n samples by DDIM with the config's steps (or `steps`); a conditional model draws the n
        labels from the generator when not given, and samples them with the config's guidance."""
        z = self.prior_sample(n, generator)
        if self.config.num_classes and labels is None:
            labels = torch.randint(self.config.num_classes, (n,), generator=generator, device=z.device)
        return self.decode(z, labels, steps)

    # -- learning ------------------------------------------------------------------------------------------
    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(self.net.parameters(), lr=lr)]

    def noise(self, x0: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """The forward process: x_t = alpha_t x0 + sigma_t eps for x0 (B, ...) in the model's space and
        times t (B,); returns (x_t, eps)."""
        eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        a, s, _, _ = (v.to(x0)[:, *([None] * (x0.dim() - 1))] for v in self.path(t))
        return a * x0 + s * eps, eps

    def loss(self, x: torch.Tensor, generator: torch.Generator | None = None, labels: torch.Tensor | None = None
             ) -> torch.Tensor:
        """The mean squared error of the prediction at a uniform random time, per example (B,)."""
        x0 = self.from_data(x)
        t = torch.rand(len(x0), generator=generator, device=x0.device)
        xt, eps = self.noise(x0, t, generator)
        a, s, _, _ = (v.to(x0)[:, *([None] * (x0.dim() - 1))] for v in self.path(t))
        if self.config.objective == "flow":
            target = eps - x0
        else:
            target = eps if self.config.prediction == "eps" else a * eps - s * x0
        out = self.net(xt, t, labels)
        return (out - target).pow(2).flatten(1).mean(1)

    def train_step(self, batch: torch.Tensor, optimizers: list, generator: torch.Generator | None = None,
                   labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        (opt,) = optimizers
        cfg = self.config
        if cfg.num_classes:  # label dropout: some labels become "no label", so one net learns both
            null = torch.full((len(batch),), cfg.num_classes, dtype=torch.long, device=batch.device)
            if labels is None:
                labels = null
            else:
                keep = torch.rand(len(batch), generator=generator, device=batch.device) >= cfg.label_dropout
                labels = torch.where(keep, labels.to(batch.device).long(), null)
        loss = self.loss(batch, generator, labels).mean()
        descend(opt, loss, 1.0)
        if self.ema_net is not None:
            self.update_average()
        return {"loss": loss.detach()}

    @torch.no_grad()
    def update_average(self) -> None:
        """ema <- d ema + (1 - d) weights, with d = min(ema, (1 + n) / (10 + n)) after n updates: early
        averages follow the weights closely instead of holding on to their random start (with a
        fixed 0.999 the first 1,000 steps' average is still 37 % initial weights)."""
        if self._updates is None:
            self._updates = int(self.ema_updates)  # once per process: the count a checkpoint carried
        self._updates += 1
        self.ema_updates.fill_(self._updates)  # no host sync: the value comes from the host
        decay = min(self.config.ema, (1 + self._updates) / (10 + self._updates))
        torch._foreach_lerp_(list(self.ema_net.parameters()), list(self.net.parameters()), 1 - decay)

    def loss_terms(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Held-out denoising loss (unconditional where the model is conditional), averaged over x."""
        return {"loss": self.loss(x, generator).mean()}

    # -- the likelihood ------------------------------------------------------------------------------------
    def log_prob(self, x: torch.Tensor, generator: torch.Generator | None = None, steps: int = 50,
                 method: str = "rk4", exact: bool | None = None, probes: int = 1) -> torch.Tensor:
        """log p_0(x) per example (B,), in nats, of data in the model's space, by the probability-flow ODE
        from t = 0 to 1 and the instantaneous change of variables, with log p_1 = N(0, sigma_1^2 I)
        (alpha_1 x0 is negligible for diffusion, zero for flow matching). The divergence is exact
        (autograd, one pass per dimension) for data of at most 16 dimensions unless told, else
        Hutchinson's estimate with `probes` Gaussian probes held fixed along the path."""
        exact = self.dims <= 16 if exact is None else exact
        eps = None if exact else torch.randn((probes, *x.shape), generator=generator, device=x.device)

        def f(state, t):
            y = state[0]
            with torch.enable_grad():
                y = y.detach().requires_grad_(True)
                v = self.velocity(y, t)
                if exact:
                    div = sum(torch.autograd.grad(v[:, i].sum(), y, retain_graph=True)[0][:, i]
                              for i in range(y.shape[1]))
                else:
                    div = sum((torch.autograd.grad(v, y, e, retain_graph=True)[0] * e).flatten(1).sum(1)
                              for e in eps) / len(eps)
            return v.detach(), div.detach().double()

        x1, integral = _solve(f, (x, torch.zeros(len(x), device=x.device, dtype=torch.float64)), 0.0, 1.0, steps,
                              method)
        s1 = float(self.path(1.0)[1])
        log_p1 = (-0.5 * (x1.double() / s1).pow(2) - 0.5 * LOG_2PI - math.log(s1)).flatten(1).sum(1)
        return log_p1 + integral

    def bits_per_dim(self, nll_nats: torch.Tensor) -> torch.Tensor:
        return nll_nats / (self.dims * math.log(2))

    def likelihoods(self, x: torch.Tensor, n: int = 1000, steps: int = 50, probes: int = 1, progress=None,
                    batch_size: int = 250, k: int | None = None) -> list[LikelihoodRecord]:
        """The NLL of the first n examples of x by the probability-flow ODE, in nats per example (and
        bits/dim for 8-bit images: uniform dequantisation y = (x_int + u) / 256, scaled to [-1, 1],
        so -log p = -log p(2y - 1) - D log 2 + D log 256). RK4 in `steps` steps, Hutchinson's
        estimator with `probes` probes; the standard error is over examples (it includes the
        estimator's noise)."""
        x = x[:n]
        g = torch.Generator(device=x.device).manual_seed(0)
        was = self.training
        self.eval()
        per = []
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size]
            if self.image:
                y = (torch.round(xb * 255) + torch.rand(xb.shape, generator=g, device=xb.device)) / 256
                lp = self.log_prob(2 * y - 1, g, steps, probes=probes) + self.dims * (math.log(2) - math.log(256))
            else:
                lp = self.log_prob(xb, g, steps, probes=probes)
            per.append(-lp)
            if progress:
                progress(min(i + batch_size, len(x)), len(x))
        self.train(was)
        nll = torch.cat(per).double()
        value, err = nll.mean().item(), (nll.std() / math.sqrt(len(nll))).item() if len(nll) > 1 else None
        settings = {"solver": f"RK4, {steps} steps", "divergence": "exact" if self.dims <= 16 else
                    f"Hutchinson, {probes} Gaussian probe(s)", "examples": len(x), "seed": 0,
                    **({"dequantization": "uniform, 8-bit"} if self.image else {})}
        return [LikelihoodRecord("ode", round(value, 3), None if err is None else round(err, 3), settings, {},
                                 len(x), bpd=round(value / (self.dims * math.log(2)), 4) if self.image else None)]


def _step(f: Callable, x: torch.Tensor, t: float, h: float, method: str) -> torch.Tensor:
    """One Heun or RK4 step of dx/dt = f(x, t) from t by h."""
    if method == "heun":
        k1 = f(x, t)
        k2 = f(x + h * k1, t + h)
        return x + h / 2 * (k1 + k2)
    k1 = f(x, t)
    k2 = f(x + h / 2 * k1, t + h / 2)
    k3 = f(x + h / 2 * k2, t + h / 2)
    k4 = f(x + h * k3, t + h)
    return x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def _solve(f: Callable, state: tuple[torch.Tensor, torch.Tensor], t0: float, t1: float, steps: int, method: str):
    """Fixed-step Heun or RK4 for a pair of tensors (x, a running integral) whose derivative f returns."""
    h = (t1 - t0) / steps
    x, q = state
    for i in range(steps):
        t = t0 + i * h
        if method == "heun":
            (v1, d1) = f((x, q), t)
            (v2, d2) = f((x + h * v1, q + h * d1), t + h)
            x, q = x + h / 2 * (v1 + v2), q + h / 2 * (d1 + d2)
        else:
            v1, d1 = f((x, q), t)
            v2, d2 = f((x + h / 2 * v1, q), t + h / 2)
            v3, d3 = f((x + h / 2 * v2, q), t + h / 2)
            v4, d4 = f((x + h * v3, q), t + h)
            x = x + h / 6 * (v1 + 2 * v2 + 2 * v3 + v4)
            q = q + h / 6 * (d1 + 2 * d2 + 2 * d3 + d4)
    return x, q
