"""The contract every registered family keeps, checked for each of its example configs.

A new family gets all of it by registering (models/base.py): build from its config, save and
reload to identical outputs, `sample` in the declared shape and range (the same for the same
seed), encode/decode shapes where declared, a short `fit` that lowers its progress key, and
likelihoods that come back as structured records. Which checks apply is read from the
model's capabilities, never from its family's name.
"""
import dataclasses
import math

import pytest
import torch

from genlab import data, recipes, store
from genlab.models import LikelihoodRecord, base, build, config_from_dict, families, family, sample
from genlab.train import TrainConfig, fit

CASES = [(name, i) for name in families() for i in range(len(family(name).examples()))]


def example(name: str, i: int):
    torch.manual_seed(0)
    cfg = family(name).examples()[i]
    return cfg, build(name, cfg)


def data_for(caps, n: int = 512) -> torch.Tensor:
    """Real data in the model's declared shape: 8x8 digits, MNIST, or a toy 2-d set."""
    shape = tuple(caps.data_shape)
    if shape == (1, 8, 8):
        return data.load_digits8("train").x[:n]
    if shape == (1, 28, 28):
        return data.load_mnist("train", limit=n).x
    if shape == (2,):
        return data.toy2d("ring8", n, seed=0)
    if len(shape) == 1:  # table rows: correlated Gaussian features on different scales
        g = torch.Generator().manual_seed(0)
        a = torch.randn(shape[0], shape[0], generator=g)
        return torch.randn(n, shape[0], generator=g) @ a + torch.linspace(-3, 3, shape[0])
    raise AssertionError(f"no test data of shape {shape}: add it here for the new family")


def test_every_family_has_examples_and_a_descriptor():
    assert {"vae", "gan", "classifier"} <= set(families())
    for name in families():
        fam = family(name)
        assert fam.examples() or not fam.trains, f"{name} registers no example configs"
        for cfg in fam.examples():
            assert fam.label(cfg) and fam.describe(cfg)
            assert isinstance(fam.curves(cfg), base.Curves)


@pytest.mark.parametrize("name,i", CASES)
def test_has_every_method_its_capabilities_promise(name, i):
    _, model = example(name, i)
    assert base.protocol_gaps(model) == []


def test_a_missing_promised_method_is_found():
    class Half(torch.nn.Module):
        capabilities = base.Capabilities(data_kind="image", data_shape=(1, 8, 8), latent="gaussian", latent_dim=2,
                                         likelihoods=("exact",))

        def decode(self, z):
            return z
    assert base.protocol_gaps(Half()) == ["gaussian_latent: prior", "gaussian_latent: prior_sample",
                                          "likelihoods: likelihoods", "exact_likelihood: log_prob",
                                          "exact_likelihood: bits_per_dim"]


@pytest.mark.parametrize("name,i", CASES)
def test_builds_from_its_config_and_the_card_round_trips(name, i):
    cfg, model = example(name, i)
    again = config_from_dict(name, json_round_trip(dataclasses.asdict(cfg)))
    assert again == cfg
    caps = model.capabilities
    assert caps == base.expected_capabilities(name, cfg)  # readable from the card alone
    expected = base.expected_shapes(name, cfg)  # meta device: nothing allocated
    assert expected == {k: tuple(v.shape) for k, v in model.state_dict().items()}


def json_round_trip(d):
    import json
    return json.loads(json.dumps(d))


@pytest.mark.parametrize("name,i", CASES)
def test_save_and_reload_give_identical_outputs(name, i, tmp_path):
    cfg, model = example(name, i)
    store.save(model, tmp_path / "m")
    loaded, card = store.load(tmp_path / "m")
    assert card["family"] == name and card["likelihoods"] == []
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    caps = model.capabilities
    if caps.generative:
        a = sample(model, 8, torch.Generator().manual_seed(3))
        b = sample(loaded, 8, torch.Generator().manual_seed(3))
        assert torch.equal(a, b)
    else:
        x = data_for(caps, 8)
        model.eval()
        assert torch.equal(model(x), loaded(x))


@pytest.mark.parametrize("name,i", CASES)
def test_sample_has_the_declared_shape_and_range_and_follows_the_seed(name, i):
    _, model = example(name, i)
    caps = model.capabilities
    if not caps.generative:
        assert not hasattr(model, "sample") or caps.generative  # helpers declare they do not sample
        return
    x = sample(model, 6, torch.Generator().manual_seed(1))
    assert tuple(x.shape) == (6, *caps.data_shape) and torch.isfinite(x).all()
    if caps.data_range is not None:
        lo, hi = caps.data_range
        assert lo <= x.min().item() and x.max().item() <= hi
    assert torch.equal(x, sample(model, 6, torch.Generator().manual_seed(1)))
    assert not torch.equal(x, sample(model, 6, torch.Generator().manual_seed(2)))
    if caps.gaussian_latent:
        z = model.prior_sample(5, torch.Generator().manual_seed(0))
        assert tuple(z.shape) == (5, caps.latent_dim)
        with torch.inference_mode():
            assert tuple(model.decode(z).shape) == (5, *caps.data_shape)
        loc, scale = model.prior()
        assert tuple(loc.shape) == tuple(scale.shape) == (caps.latent_dim,)
    if caps.encode:
        x = data_for(caps, 4)
        with torch.inference_mode():
            z = model.encode(x)
            assert tuple(z.shape) == (4, caps.latent_dim)
            assert tuple(model.decode(z).shape) == tuple(x.shape)
    if caps.draw:
        with torch.inference_mode():
            d = model.decode_sample(model.prior_sample(4, torch.Generator().manual_seed(0)),
                                    torch.Generator().manual_seed(0))
        assert tuple(d.shape) == (4, *caps.data_shape)


@pytest.mark.parametrize("name,i", CASES)
def test_a_short_fit_lowers_the_progress_key(name, i):
    """Within 60 steps, some later window of the family's progress key sits clearly below the
    first window. (A GAN's losses are a game, not a descent; its discriminator's loss still
    falls from 2 ln 2 as D starts to tell real from generated.)"""
    _, model = example(name, i)
    caps = model.capabilities
    if not hasattr(model, "train_step"):  # the measuring-stick classifier trains with its own function
        assert not caps.generative
        return
    x = data_for(caps, 1024)
    fam = family(name)
    h = fit(model, x, TrainConfig(epochs=10, batch_size=64, lr=1e-3, seed=0, check_every=10, max_steps=60,
                                  binarize=caps.draw == "bernoulli"))
    series = [v for v in h.steps[fam.progress_key] if math.isfinite(v)]
    assert len(series) == 60
    windows = [sum(series[j:j + 5]) / 5 for j in range(0, 60, 5)]
    assert min(windows[1:]) < windows[0] - 0.02, f"{fam.progress_key} did not fall: {windows}"


@pytest.mark.parametrize("name,i", CASES)
def test_likelihoods_come_back_as_structured_records(name, i):
    _, model = example(name, i)
    caps = model.capabilities
    if not caps.likelihoods:
        assert not hasattr(model, "likelihoods") or model.likelihoods(data_for(caps, 16), k=2) == []
        return
    x = data_for(caps, 64)
    records = model.likelihoods(x, k=20)
    assert records and all(isinstance(r, LikelihoodRecord) for r in records)
    assert {r.method for r in records} <= set(caps.likelihoods)
    for r in records:
        assert math.isfinite(r.value) and r.n == len(x)
        assert LikelihoodRecord.from_dict(json_round_trip(r.to_dict())) == r
    by = {r.method: r for r in records}
    if "iw" in by and "elbo" in by:  # the k-sample bound is at least as tight as the ELBO
        assert by["iw"].value <= by["elbo"].value + 3 * (by["iw"].stderr or 0) + 0.5


def test_recipes_write_the_same_card_sections_for_every_preset(tmp_path):
    keys = set()
    for preset, data_name in [("vae", "digits8"), ("ae", "digits8"), ("gan2d", "ring8")]:
        recipe = recipes.make_recipe(preset, data=data_name, epochs=1, max_steps=3, limit=256,
                                     **({"hidden": (16,)} if preset in ("vae", "ae") else {}))
        run = recipes.Run(recipe)
        history = run.fit()
        metrics, records = run.score(k=0)
        run.save(tmp_path / preset, history, metrics, records)
        card = store.read_card(tmp_path / preset)
        keys.add(tuple(sorted(card)))
        assert card["film"]["steps"][0] == 0 and card["extra_tensors"]["film"][0] == len(card["film"]["steps"])
        assert card["dataset"]["name"] == data_name
    assert len(keys) == 1, keys


@pytest.mark.parametrize("name,i", CASES)
def test_an_energy_model_runs_its_chain_at_its_own_settings(name, i):
    _, model = example(name, i)
    caps = model.capabilities
    if not caps.energy:
        return
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(3, *caps.data_shape, generator=g)
    out = model.chain(x0.round() if caps.sampler == "gibbs" else x0, 2, 1, g, **model.chain_settings())
    frames = out[0] if isinstance(out, tuple) else out
    assert torch.isfinite(torch.as_tensor(frames, dtype=torch.float32)).all()


def test_an_exact_rbm_log_prob_sums_to_one_over_every_image():
    """On 2x2 binary images, exp(log p(v)) over all 16 images adds up to 1 (enumeration)."""
    import itertools
    from genlab.models.rbm import RBMConfig
    torch.manual_seed(0)
    model = build("rbm", RBMConfig(data_shape=(1, 2, 2), hidden=3, chains=4, sample_steps=5))
    with torch.no_grad():
        model.W.normal_(0, 1.0), model.b.normal_(0, 0.5), model.c.normal_(0, 0.5)
    assert "exact" in model.capabilities.likelihoods
    v = torch.tensor(list(itertools.product((0.0, 1.0), repeat=4))).view(16, 1, 2, 2)
    with torch.no_grad():
        total = model.log_prob(v).double().exp().sum().item()
    assert total == pytest.approx(1.0, abs=1e-5)
    assert model.bits_per_dim(torch.tensor(4 * math.log(2.0))).item() == pytest.approx(1.0)
