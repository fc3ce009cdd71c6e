"""Checkpoints: round trip, and every rejection loads nothing and says why."""
import json
import pickle
from pathlib import Path

import pytest
import torch

from genlab import CheckpointError, VAE, VAEConfig, load, read_card, save, store


@pytest.fixture
def saved(tmp_path):
    m = VAE(VAEConfig(image_shape=(1, 8, 8), hidden=(16,), latent_dim=3))
    save(m, tmp_path / "m", dataset={"name": "digits8"}, metrics={"test_neg_elbo": 12.5},
         history={"epochs": [{"epoch": 1}]})
    return m, tmp_path / "m"


def weights_of(path):
    """The weights file a checkpoint's card names."""
    return store.checkpoint_files(path)[0]


def edit_card(path, **changes):
    """Rewrite fields of a saved card (nested config fields as config={...})."""
    c = path.with_suffix(".json")
    card = json.loads(c.read_text())
    for k, v in changes.items():
        if isinstance(v, dict):
            card[k].update(v)
        else:
            card[k] = v
    c.write_text(json.dumps(card))


@pytest.fixture(autouse=True)
def never_unpickle(monkeypatch):
    """Any unpickling during these tests is a failure."""
    def boom(*a, **k):
        raise AssertionError("something tried to unpickle")
    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(torch, "load", boom)


class TestRoundTrip:
    def test_same_model_back(self, saved):
        m, path = saved
        m2, card = load(path)
        z = torch.randn(4, 3)
        with torch.no_grad():
            assert torch.equal(m.decode(z), m2.decode(z))
        assert card["family"] == "vae" and card["config"]["latent_dim"] == 3
        assert card["metrics"]["test_neg_elbo"] == 12.5 and card["genlab_version"]
        assert not m2.training

    def test_any_file_name_works_and_only_two_files_are_written(self, saved):
        _, path = saved
        weights = weights_of(path)
        assert weights.name == f"m.{read_card(path)['weights_sha256'][:16]}.safetensors"
        load(str(path) + ".json")
        load(weights)
        assert sorted(p.name for p in path.parent.iterdir()) == sorted(["m.json", weights.name])

    def test_saving_again_replaces_the_weights_file(self, saved):
        m, path = saved
        old = weights_of(path)
        with torch.no_grad():
            m.decoder[0].weight.add_(1.0)
        save(m, path)
        assert not old.exists() and weights_of(path) != old
        assert sorted(p.name for p in path.parent.iterdir()) == sorted(["m.json", weights_of(path).name])
        assert torch.equal(load(path)[0].decoder[0].weight, m.decoder[0].weight)

    def test_a_checkpoint_of_the_earlier_layout_loads_and_is_replaced_whole(self, saved):
        """NAME.safetensors with a card that names no weights file (every checkpoint written before
        the one-rename layout, the shipped ones among them) loads; saving over it removes it."""
        m, path = saved
        legacy = legacy_layout(path)
        assert torch.equal(load(path)[0].decoder[0].weight, m.decoder[0].weight)
        assert [p.name for p in store.list_checkpoints(path.parent)] == ["m"]
        save(m, path)
        assert not legacy.exists() and weights_of(path).exists()
        load(path)

    def test_extra_tensors_come_back_alone_or_together(self, tmp_path):
        m = VAE(VAEConfig(image_shape=(1, 8, 8), hidden=(16,), latent_dim=3))
        a, b = torch.arange(6.0).view(2, 3), torch.ones(4, dtype=torch.uint8)
        save(m, tmp_path / "x", extra_tensors={"a": a, "b": b})
        assert torch.equal(store.load_extra(tmp_path / "x", "a"), a)
        both = store.load_extras(tmp_path / "x", "a", "b")
        assert torch.equal(both["a"], a) and torch.equal(both["b"], b)
        with pytest.raises(CheckpointError, match="no extra tensor"):
            store.load_extras(tmp_path / "x", "a", "c")
        load(tmp_path / "x")  # the extras do not disturb the weights

    def test_update_card_merges(self, saved):
        _, path = saved
        store.update_card(path, metrics={"iw_nll_k10": 11.0})
        card = read_card(path)
        assert card["metrics"] == {"test_neg_elbo": 12.5, "iw_nll_k10": 11.0}
        load(path)  # weights untouched, hash still matches

    def test_list_checkpoints(self, saved, tmp_path):
        (tmp_path / "orphan.json").write_text("{}")
        assert [p.name for p in store.list_checkpoints(tmp_path)] == ["m"]


def legacy_layout(path):
    """Turn a checkpoint into the earlier layout: NAME.safetensors, a card without weights_file."""
    legacy = path.with_name(path.name + ".safetensors")
    weights_of(path).rename(legacy)
    card = json.loads(path.with_suffix(".json").read_text())
    del card["weights_file"]
    path.with_suffix(".json").write_text(json.dumps(card))
    return legacy


# A writer that saves a checkpoint over an existing one and dies (os._exit) at one step of it.
WRITER = """
import os, sys, torch
from genlab import VAE, VAEConfig, store
def die(what):
    if what == sys.argv[2]:
        os._exit(17)
store._step = die
torch.manual_seed(1)
store.save(VAE(VAEConfig(image_shape=(1, 8, 8), hidden=(16,), latent_dim=3)), sys.argv[1])
"""
STEPS = ("weights written", "weights renamed", "card written", "card renamed", "old weights removed")


@pytest.mark.parametrize("layout", ["content-named", "earlier"])
@pytest.mark.parametrize("step", STEPS)
def test_a_writer_killed_at_any_step_leaves_the_old_checkpoint_or_the_new_one(tmp_path, step, layout):
    """Killed between any two steps of an overwrite, the checkpoint on disk is the old one
    (before the card's rename) or the new one (after it), whole: it loads, checksum and all."""
    import subprocess
    import sys
    torch.manual_seed(0)
    old = VAE(VAEConfig(image_shape=(1, 8, 8), hidden=(16,), latent_dim=3))
    save(old, tmp_path / "m")
    if layout == "earlier":
        legacy_layout(tmp_path / "m")
    torch.manual_seed(1)
    new = VAE(VAEConfig(image_shape=(1, 8, 8), hidden=(16,), latent_dim=3))
    r = subprocess.run([sys.executable, "-c", WRITER, str(tmp_path / "m"), step], capture_output=True, text=True,
                       timeout=120, cwd=Path(__file__).resolve().parent.parent)
    assert r.returncode == 17, r.stderr  # it died where it was told to
    got = load(tmp_path / "m")[0].decoder[0].weight
    want = old if STEPS.index(step) < STEPS.index("card renamed") else new
    assert torch.equal(got, want.decoder[0].weight)
    assert [p.name for p in store.list_checkpoints(tmp_path)] == ["m"]


class TestRejections:
    def test_missing_card(self, tmp_path):
        with pytest.raises(CheckpointError, match="card not found"):
            load(tmp_path / "absent")

    def test_missing_weights(self, saved):
        _, path = saved
        weights_of(path).unlink()
        with pytest.raises(CheckpointError, match="weights file not found"):
            load(path)

    def test_truncated_weights(self, saved):
        _, path = saved
        w = weights_of(path)
        w.write_bytes(w.read_bytes()[:-100])
        with pytest.raises(CheckpointError, match="truncated or was modified"):
            load(path)

    def test_truncated_card(self, saved):
        _, path = saved
        c = path.with_suffix(".json")
        c.write_text(c.read_text()[:50])
        with pytest.raises(CheckpointError, match="not valid JSON"):
            load(path)

    def test_a_card_may_name_only_its_own_weights_file(self, saved):
        _, path = saved
        for bad in ("../m.0123456789abcdef.safetensors", "other.0123456789abcdef.safetensors", "m.safetensors"):
            edit_card(path, weights_file=bad)
            with pytest.raises(CheckpointError, match="weights_file"):
                load(path)

    def test_unknown_family(self, saved):
        _, path = saved
        edit_card(path, family="teleporter")
        with pytest.raises(CheckpointError, match="unknown model family 'teleporter'"):
            load(path)

    def test_shape_mismatch(self, saved):
        _, path = saved
        edit_card(path, config={"latent_dim": 4})
        with pytest.raises(CheckpointError, match="config expects"):
            load(path)

    def test_unknown_config_field(self, saved):
        _, path = saved
        edit_card(path, config={"dropout": 0.5})
        with pytest.raises(CheckpointError, match="unknown fields"):
            load(path)

    def test_pickle_renamed_to_safetensors_is_never_unpickled(self, saved, monkeypatch):
        _, path = saved
        monkeypatch.undo()  # let the real pickle write the file...
        blob = pickle.dumps({"weights": [1, 2, 3]})
        weights_of(path).write_bytes(blob)
        monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))  # ...but never read it
        monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("unpickled"))
        with pytest.raises(CheckpointError, match="never unpickles"):
            load(path)

    def test_torch_save_zip_is_refused(self, saved, monkeypatch):
        _, path = saved
        monkeypatch.undo()
        torch.save({"w": torch.zeros(2)}, weights_of(path))
        with pytest.raises(CheckpointError, match="never unpickles"):
            load(path)

    def test_not_a_genlab_card(self, tmp_path):
        (tmp_path / "x.json").write_text(json.dumps({"hello": 1}))
        (tmp_path / "x.safetensors").write_bytes(b"")
        with pytest.raises(CheckpointError, match="not a genlab card"):
            load(tmp_path / "x")

    def test_absurd_layer_sizes_are_refused_before_anything_is_allocated(self, saved, monkeypatch):
        """A hostile card (hidden sizes of a billion) is checked on the meta device against the
        weights file's header: a CheckpointError, and no real tensor is ever built."""
        _, path = saved
        edit_card(path, config={"hidden": [10**9, 10**9]})
        devices = []
        real_build = store._models.build
        monkeypatch.setattr(store._models, "build",
                            lambda *a, **k: devices.append(torch.get_default_device().type) or real_build(*a, **k))
        with pytest.raises(CheckpointError, match=r"config expects \(1000000000, 64\)"):
            load(path)
        assert devices == ["meta"]  # built once, on the meta device, where nothing is allocated

    def test_a_header_whose_length_starts_with_0x80_is_not_taken_for_a_pickle(self, tmp_path):
        """The first byte of a safetensors file is the low byte of its header's length; 0x80 is a
        legal value (a pickle's magic byte too). Such a file must load."""
        m = VAE(VAEConfig(image_shape=(1, 8, 8), hidden=(4,), latent_dim=2))
        for k in range(1, 300):  # an extra tensor's name grows the header a byte at a time
            save(m, tmp_path / "h", extra_tensors={"n" * k: torch.zeros(1)})
            if weights_of(tmp_path / "h").read_bytes()[:1] == b"\x80":
                load(tmp_path / "h")
                return
        pytest.fail("no header length with a 0x80 low byte in this range: widen it")

    def test_cards_with_likelihoods_as_metric_keys_are_read_as_records(self, saved):
        _, path = saved
        edit_card(path, metrics={"test_neg_elbo": 100.0, "test_recon": 80.0, "test_kl": 20.0,
                                 "iw_nll_k50": 97.5, "iw_nll_k50_stderr": 0.4, "test_images": 10})
        card = json.loads(path.with_suffix(".json").read_text())
        del card["likelihoods"]
        path.with_suffix(".json").write_text(json.dumps(card))
        records = {r["method"]: r for r in read_card(path)["likelihoods"]}
        assert records["iw"]["value"] == 97.5 and records["iw"]["stderr"] == 0.4 and records["iw"]["settings"]["k"] == 50
        assert records["elbo"]["terms"] == {"recon": 80.0, "kl": 20.0}
        assert not any(k.startswith("iw_nll") for k in read_card(path)["metrics"])
