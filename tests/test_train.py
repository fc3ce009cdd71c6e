"""The one training loop with any family: keys that appear on some steps only, non-weight
state kept out of the last-good snapshot and the weights file, reused optimizers and a
per-step hook for an outer loop, random batches, and no default binarization."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from genlab import store
from genlab.models.base import Capabilities
from genlab.train import Divergence, TrainConfig, fit


class Toy(nn.Module):
    """A least-squares fit of the data mean, with a chain-like buffer that is not a weight;
    it logs `every3` on every third step only, and can be told to blow up."""

    family = "toy-test"

    def __init__(self, blow_up_at: int | None = None):
        super().__init__()
        self.mu = nn.Parameter(torch.zeros(2))
        self.register_buffer("chains", torch.zeros(100, 2), persistent=False)  # non-weight state
        self.blow_up_at, self.calls, self.seen = blow_up_at, 0, []

    capabilities = Capabilities(data_kind="points", data_shape=(2,), data_range=None)

    def configure_optimizers(self, lr):
        return [torch.optim.Adam(self.parameters(), lr=lr)]

    def train_step(self, batch, optimizers, generator=None):
        (opt,) = optimizers
        self.calls += 1
        self.seen.append(batch.clone())
        loss = (batch - self.mu).pow(2).sum(1).mean()
        if self.blow_up_at is not None and self.calls >= self.blow_up_at:
            loss = loss * float("nan")
        opt.zero_grad()
        loss.backward()
        opt.step()
        self.chains += 1.0  # the chains move every step
        out = {"loss": loss.detach()}
        if self.calls % 3 == 0:
            out["every3"] = torch.tensor(float(self.calls))
        return out


@pytest.fixture
def points():
    return torch.randn(256, 2, generator=torch.Generator().manual_seed(0)) * 0.5 + torch.tensor([1.0, -2.0])


def test_keys_that_appear_on_some_steps_only(points):
    m = Toy()
    h = fit(m, points, TrainConfig(epochs=1, batch_size=16, check_every=5))
    assert h.n_steps == 16 and len(h.steps["every3"]) == 16
    got = h.steps["every3"]
    assert [v for v in got if not math.isnan(v)] == [3.0, 6.0, 9.0, 12.0, 15.0]
    assert all(math.isnan(got[i]) for i in range(16) if (i + 1) % 3)
    assert h.epochs[0]["train"]["every3"] == pytest.approx(9.0)  # the mean of the steps that had it
    d = h.to_dict(max_points=4)  # bins of 4 steps: every bin holds one or two values
    assert d["steps"]["every3"] == [3.0, 6.0, 10.5, 15.0]  # steps 1-4, 5-8, 9-12, 13-16


def test_a_nan_in_a_sparse_key_still_trips_the_guard_and_missing_ones_do_not(points):
    m = Toy(blow_up_at=12)
    with pytest.raises(Divergence, match="step 12"):
        fit(m, points, TrainConfig(epochs=2, batch_size=16, check_every=5))
    assert torch.isfinite(m.mu).all()


def test_non_weight_state_stays_out_of_the_snapshot_and_the_weights_file(points, tmp_path):
    m = Toy(blow_up_at=9)
    with pytest.raises(Divergence, match="weights from step 5"):
        fit(m, points, TrainConfig(epochs=1, batch_size=16, check_every=5))
    good = Toy()
    fit(good, points, TrainConfig(epochs=1, batch_size=16, check_every=5, max_steps=5))
    assert torch.equal(m.mu, good.mu)  # the weights went back to the check at step 5...
    assert m.chains[0, 0].item() == 10.0  # ...the chains were not (they are not weights): 10 steps ran
    assert "chains" not in m.state_dict()


def test_reused_optimizers_and_a_per_step_hook(points):
    m = Toy()
    opts = m.configure_optimizers(0.1)
    seen = []

    def schedule(step, optimizers):  # a cyclic learning rate, as the structure search uses
        for g in optimizers[0].param_groups:
            g["lr"] = 0.05 + 0.05 * math.cos(2 * math.pi * step / 8)
        seen.append((step, optimizers[0].param_groups[0]["lr"]))

    fit(m, points, TrainConfig(epochs=1, batch_size=32, max_steps=5), optimizers=opts, on_step=schedule)
    fit(m, points, TrainConfig(epochs=1, batch_size=32, max_steps=5), optimizers=opts, on_step=schedule)
    assert opts[0].state[m.mu]["step"].item() == 10  # Adam's state carried across the two short fits
    assert [s for s, _ in seen] == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4] and seen[0][1] == pytest.approx(0.1)


def test_random_batches_draw_with_replacement_and_follow_the_seed(points):
    runs = []
    for _ in range(2):
        m = Toy()
        fit(m, points, TrainConfig(epochs=2, batch_size=64, batches="random", seed=3))
        runs.append(torch.cat(m.seen))
    assert torch.equal(runs[0], runs[1]) and len(runs[0]) == 2 * 4 * 64
    rows = {tuple(r.tolist()) for r in runs[0][:256]}
    assert len(rows) < 256  # an epoch of random batches repeats some rows and misses others
    with pytest.raises(ValueError, match="batches"):
        TrainConfig(batches="shuffled")


def test_no_binarization_unless_the_recipe_asks(points):
    assert TrainConfig().binarize is False
    x = torch.rand(64, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    m = Toy()
    m.train_step = lambda b, o, g=None: (m.seen.append(b.clone()), {"loss": b.sum()})[1]
    fit(m, x.view(64, -1)[:, :2], TrainConfig(epochs=1, batch_size=64))
    assert not set(np.unique(m.seen[0].numpy())) <= {0.0, 1.0}
    m.seen.clear()
    fit(m, x.view(64, -1)[:, :2], TrainConfig(epochs=1, batch_size=64, binarize=True))
    assert set(np.unique(m.seen[0].numpy())) <= {0.0, 1.0}


def test_a_toy_with_a_non_persistent_buffer_saves_no_chains(tmp_path):
    m = Toy()
    assert set(m.state_dict()) == {"mu"}
    blob = store.st_save({k: v.contiguous() for k, v in m.state_dict().items()})
    assert b"chains" not in blob
