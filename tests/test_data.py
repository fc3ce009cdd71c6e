"""Data: the IDX reader on hand-made files, its error messages, MNIST splits, toy sets."""
import gzip
import hashlib
import struct

import numpy as np
import pytest
import torch

from genlab import data
from genlab._compat import torchvision_available


def write_idx(path, arr: np.ndarray, code: int = 0x08, compress=False):
    header = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">i", s) for s in arr.shape)
    big = arr.astype(arr.dtype.newbyteorder(">"))
    blob = header + big.tobytes()
    (gzip.open if compress else open)(path, "wb").write(blob)
    return path


class TestIdxReader:
    def test_uint8_images_raw_and_gzip(self, tmp_path):
        arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
        for compress, name in ((False, "a-idx3-ubyte"), (True, "a-idx3-ubyte.gz")):
            t = data.read_idx(write_idx(tmp_path / name, arr, compress=compress))
            assert t.dtype == torch.uint8 and tuple(t.shape) == (2, 3, 4)
            assert np.array_equal(t.numpy(), arr)

    def test_big_endian_int32_and_float(self, tmp_path):
        ints = np.array([1, -2, 70000, 2**31 - 1], dtype=np.int32)
        t = data.read_idx(write_idx(tmp_path / "i", ints, code=0x0C))
        assert t.tolist() == ints.tolist()
        floats = np.array([[0.5, -1.25]], dtype=np.float32)
        assert data.read_idx(write_idx(tmp_path / "f", floats, code=0x0D)).tolist() == floats.tolist()

    def test_missing_file_names_it(self, tmp_path):
        with pytest.raises(data.DataError, match="nope-idx1-ubyte.*not found"):
            data.read_idx(tmp_path / "nope-idx1-ubyte")

    def test_truncated_file(self, tmp_path):
        p = write_idx(tmp_path / "t", np.zeros((4, 5), np.uint8))
        p.write_bytes(p.read_bytes()[:-3])
        with pytest.raises(data.DataError, match="truncated"):
            data.read_idx(p)

    def test_truncated_gzip(self, tmp_path):
        p = write_idx(tmp_path / "t.gz", np.zeros((40, 50), np.uint8), compress=True)
        p.write_bytes(p.read_bytes()[:20])
        with pytest.raises(data.DataError, match="t.gz"):
            data.read_idx(p)

    def test_wrong_magic(self, tmp_path):
        p = tmp_path / "w"
        p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
        with pytest.raises(data.DataError, match="not an IDX file"):
            data.read_idx(p)

    def test_missing_mnist_folder_says_what_to_do(self, tmp_path):
        data._mnist_raw.cache_clear()
        with pytest.raises(data.DataError, match="git checkout"):
            data.load_mnist("test", root=tmp_path, source="bundled")


class TestMnist:
    def test_bundled_files_are_the_published_ones(self):
        expected = {
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        }
        for name, sha in expected.items():
            raw = gzip.open(data.DATA_DIR / "mnist" / f"{name}.gz").read()
            assert hashlib.sha256(raw).hexdigest() == sha

    def test_splits_shapes_and_range(self):
        tr, va, te = (data.load_mnist(s, source="bundled") for s in ("train", "val", "test"))
        assert (len(tr), len(va), len(te)) == (55_000, 5_000, 10_000)
        assert tuple(tr.x.shape[1:]) == (1, 28, 28) and tr.x.dtype == torch.float32
        assert float(tr.x.min()) == 0.0 and float(tr.x.max()) == 1.0
        assert set(te.y.unique().tolist()) == set(range(10))
        assert te.y[:5].tolist() == [7, 2, 1, 0, 4]  # the well-known first test labels

    def test_dynamic_binarization_is_bernoulli(self):
        x = torch.full((200, 1, 8, 8), 0.3)
        b = data.binarize(x, torch.Generator().manual_seed(0))
        assert set(b.unique().tolist()) <= {0.0, 1.0}
        assert abs(b.mean().item() - 0.3) < 0.02

    def test_torchvision_failing_with_runtime_error_counts_as_absent(self, monkeypatch):
        import builtins
        from genlab import _compat
        real_import = builtins.__import__

        def fake_import(name, *a, **k):
            if name.startswith("torchvision"):
                raise RuntimeError("operator torchvision::nms does not exist")
            return real_import(name, *a, **k)

        monkeypatch.setattr(builtins, "__import__", fake_import)
        _compat._torchvision_importable.cache_clear()
        try:
            assert _compat.torchvision_available() is False
        finally:
            _compat._torchvision_importable.cache_clear()

    @pytest.mark.skipif(not torchvision_available(), reason="torchvision does not import here (CPU torch build)")
    def test_torchvision_path_matches_bundled_reader(self):
        a = data.load_mnist("test", source="bundled")
        b = data.load_mnist("test", source="torchvision")
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


class TestSmallSets:
    def test_toy_sets_are_seeded(self):
        for name in data.TOY_SETS:
            a, b = data.toy2d(name, 500, seed=3), data.toy2d(name, 500, seed=3)
            assert a.shape == (500, 2) and torch.equal(a, b)
            assert not torch.equal(a, data.toy2d(name, 500, seed=4))

    def test_ring8_points_sit_on_eight_modes(self):
        pts = data.toy2d("ring8", 4000, seed=0)
        angles = torch.arange(8) * (2 * torch.pi / 8)
        centers = 2 * torch.stack([angles.cos(), angles.sin()], 1)
        d = torch.cdist(pts, centers)
        assert (d.min(1).values < 0.1).all()
        counts = torch.bincount(d.argmin(1), minlength=8)
        assert counts.min() > 400  # all 8 modes, roughly balanced

    def test_digits8(self, digits):
        train, test = digits
        assert tuple(train.x.shape) == (1500, 1, 8, 8) and len(test) == 297
        assert 0.0 <= float(train.x.min()) and float(train.x.max()) <= 1.0

    def test_unknown_names_fail_clearly(self):
        with pytest.raises(ValueError, match="known"):
            data.toy2d("donut", 10)
        with pytest.raises(ValueError, match="split"):
            data.load_mnist("validation")
