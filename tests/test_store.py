"""Checkpoints: round trip, and every rejection loads nothing and says why."""
import json
import pickle

import pytest
import torch

from genlab import CheckpointError, VAE, VAEConfig, load, read_card, save, store


@pytest.fixture
def saved(tmp_path):
    m = VAE(VAEConfig(image_shape=(1, 8, 8), hidden=(16,), latent_dim=3))
    save(m, tmp_path / "m", dataset={"name": "digits8"}, metrics={"test_neg_elbo": 12.5},
         history={"epochs": [{"epoch": 1}]})
    return m, tmp_path / "m"


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

    def test_either_file_name_works_and_only_two_files_are_written(self, saved):
        _, path = saved
        load(str(path) + ".json")
        load(str(path) + ".safetensors")
        assert sorted(p.name for p in path.parent.iterdir()) == ["m.json", "m.safetensors"]

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


class TestRejections:
    def test_missing_card(self, tmp_path):
        with pytest.raises(CheckpointError, match="card not found"):
            load(tmp_path / "absent")

    def test_missing_weights(self, saved):
        _, path = saved
        path.with_suffix(".safetensors").unlink()
        with pytest.raises(CheckpointError, match="weights file not found"):
            load(path)

    def test_truncated_weights(self, saved):
        _, path = saved
        w = path.with_suffix(".safetensors")
        w.write_bytes(w.read_bytes()[:-100])
        with pytest.raises(CheckpointError, match="truncated or was modified"):
            load(path)

    def test_truncated_card(self, saved):
        _, path = saved
        c = path.with_suffix(".json")
        c.write_text(c.read_text()[:50])
        with pytest.raises(CheckpointError, match="not valid JSON"):
            load(path)

    def test_unknown_family(self, saved):
        _, path = saved
        edit_card(path, family="diffusion")
        with pytest.raises(CheckpointError, match="unknown model family 'diffusion'"):
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
        path.with_suffix(".safetensors").write_bytes(blob)
        monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))  # ...but never read it
        monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("unpickled"))
        with pytest.raises(CheckpointError, match="never unpickles"):
            load(path)

    def test_torch_save_zip_is_refused(self, saved, monkeypatch):
        _, path = saved
        monkeypatch.undo()
        torch.save({"w": torch.zeros(2)}, path.with_suffix(".safetensors"))
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
        real_build = store._base.build
        monkeypatch.setattr(store._base, "build",
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
            if (tmp_path / "h.safetensors").read_bytes()[:1] == b"\x80":
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
