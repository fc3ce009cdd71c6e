"""Sample-quality metrics, checked against independent computations (scipy, closed forms, brute force)."""
import math

import numpy as np
import pytest
import scipy.linalg
import torch

from genlab import metrics


def _spd(d: int, seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def _closed_form(mu1, c1, mu2, c2) -> float:
    """The textbook formula, with scipy's general matrix square root of C1 C2."""
    covmean = scipy.linalg.sqrtm(c1 @ c2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(c1 + c2 - 2 * covmean))


def test_frechet_distance_matches_scipy_sqrtm():
    for seed, d in [(0, 3), (1, 8), (2, 20)]:
        rng = np.random.default_rng(seed)
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        c1, c2 = _spd(d, seed + 10), _spd(d, seed + 20)
        got = metrics.frechet_distance(*(torch.from_numpy(t) for t in (mu1, c1, mu2, c2)))
        assert got == pytest.approx(_closed_form(mu1, c1, mu2, c2), rel=1e-8, abs=1e-9)


def test_frechet_one_dimensional_closed_form():
    # two 1-d Gaussians: (m1 - m2)^2 + (s1 - s2)^2
    got = metrics.frechet_distance(torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([-2.0]), torch.tensor([[0.25]]))
    assert got == pytest.approx(9 + (2 - 0.5) ** 2)


def test_fid_of_a_set_with_itself_is_zero_and_fid_is_symmetric():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2000, 16, generator=g) @ torch.randn(16, 16, generator=g)
    b = torch.randn(1500, 16, generator=g) * 2 + 1
    assert metrics.fid(a, a) == pytest.approx(0.0, abs=1e-6)
    assert metrics.fid(a, b) == pytest.approx(metrics.fid(b, a), rel=1e-9)
    assert metrics.fid(a, b) > 1.0


def test_fid_of_gaussian_samples_matches_the_closed_form_of_their_distributions():
    d = 4
    rng = np.random.default_rng(3)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    c1, c2 = _spd(d, 4), _spd(d, 5)
    n = 200_000
    x1 = rng.multivariate_normal(mu1, c1, size=n)
    x2 = rng.multivariate_normal(mu2, c2, size=n)
    expected = _closed_form(mu1, c1, mu2, c2)
    assert metrics.fid(torch.from_numpy(x1), torch.from_numpy(x2)) == pytest.approx(expected, rel=0.02, abs=0.01)


def test_inception_score_of_even_confident_predictions_is_ten():
    probs = torch.eye(10).repeat(50, 1)  # 500 one-hot rows, 50 per class
    assert metrics.inception_score(probs) == pytest.approx(10.0, rel=1e-6)
    assert metrics.inception_score(torch.eye(10)[[3] * 100]) == pytest.approx(1.0, rel=1e-6)  # one class only
    assert metrics.inception_score(torch.full((100, 10), 0.1)) == pytest.approx(1.0, rel=1e-6)  # unsure


def test_inception_score_against_a_direct_numpy_sum():
    p = torch.softmax(torch.randn(300, 10, generator=torch.Generator().manual_seed(1)) * 3, 1).double()
    pn = p.numpy()
    marg = pn.mean(0)
    kl = np.array([sum(r[j] * math.log(r[j] / marg[j]) for j in range(10)) for r in pn])
    assert metrics.inception_score(p) == pytest.approx(math.exp(kl.mean()), rel=1e-9)


def test_label_histogram_and_entropy():
    h = metrics.label_histogram(torch.eye(10).repeat(7, 1))
    assert h["fractions"] == [0.1] * 10
    assert h["entropy"] == pytest.approx(math.log(10))
    h = metrics.label_histogram(torch.eye(10)[[2, 2, 2, 5]])
    assert h["fractions"][2] == 0.75 and h["fractions"][5] == 0.25
    assert h["entropy"] == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))


def _pr_brute(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    def radii(x):
        d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
        return np.sort(d, axis=1)[:, k]  # column 0 is the point itself

    def covered(q, ref, r):
        d = np.sqrt(((q[:, None, :] - ref[None, :, :]) ** 2).sum(-1))
        return (d <= r[None, :]).any(1).mean()

    return covered(fake, real, radii(real)), covered(real, fake, radii(fake))


def test_precision_recall_against_brute_force():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(300, 5))
    fake = rng.normal(size=(250, 5)) * 0.5 + 0.7  # narrower and shifted: precision and recall differ
    got = metrics.precision_recall(torch.from_numpy(real).float(), torch.from_numpy(fake).float(), k=3)
    p, r = _pr_brute(real, fake, 3)
    assert got["precision"] == pytest.approx(p, abs=1e-6)  # one sample moves it by 1/250
    assert got["recall"] == pytest.approx(r, abs=1e-6)
    assert got["precision"] > got["recall"]  # a narrow generator: realistic, not varied


def test_precision_recall_extremes():
    x = torch.randn(400, 4, generator=torch.Generator().manual_seed(0))
    same = metrics.precision_recall(x, x.clone())
    assert same == {"precision": 1.0, "recall": 1.0}
    far = metrics.precision_recall(x, x + 100)
    assert far == {"precision": 0.0, "recall": 0.0}


def test_nearest_neighbour_of_a_training_image_is_itself():
    g = torch.Generator().manual_seed(0)
    train = torch.rand(3000, 1, 28, 28, generator=g) * (torch.rand(3000, 1, 28, 28, generator=g) > 0.7)
    feats = torch.randn(3000, 32, generator=g)
    nn = metrics.NearestNeighbours(train, feats)
    pick = torch.tensor([0, 17, 1234, 2999])
    idx, dist = nn.pixel(train[pick])
    assert idx.tolist() == pick.tolist()
    assert dist.max() < 1e-2
    idx, dist = nn.feature(feats[pick])
    assert idx.tolist() == pick.tolist()


def test_nearest_neighbour_matches_brute_force_on_new_queries():
    g = torch.Generator().manual_seed(1)
    train = torch.rand(2000, 1, 12, 12, generator=g)
    # near-duplicates: the ranking must still pick the exact nearest
    train[1000:1100] = train[:100] + 0.001 * torch.rand(100, 1, 12, 12, generator=g)
    queries = torch.cat([torch.rand(40, 1, 12, 12, generator=g), train[:24] + 0.0005]).clamp(0, 1)
    nn = metrics.NearestNeighbours(train)
    idx, dist = nn.pixel(queries)
    d = torch.cdist(queries.flatten(1).double(), train.flatten(1).double())
    best = d.min(1).values
    assert torch.allclose(dist.double(), best, atol=1e-4)
    assert torch.allclose(d[torch.arange(len(queries)), idx], best, atol=1e-9)


@pytest.mark.parametrize("rank,candidates", [(2, 3), (8, 16), (500, 4)])
def test_bounded_pixel_search_is_exact_whatever_its_pruning(rank, candidates):
    # a poor subspace and few candidates send most queries down the second, wider pass
    g = torch.Generator().manual_seed(2)
    train = torch.rand(1500, 1, 10, 10, generator=g) * (torch.rand(1500, 1, 10, 10, generator=g) > 0.5)
    train[700:750] = train[:50] + 0.001 * torch.rand(50, 1, 10, 10, generator=g)  # near-duplicates
    queries = torch.cat([torch.rand(30, 1, 10, 10, generator=g), 3 * torch.rand(10, 1, 10, 10, generator=g),
                         train[:20] + 0.0004])
    nn = metrics.NearestNeighbours(train, rank=rank, candidates=candidates)
    idx, dist = nn.pixel(queries)
    d = torch.cdist(queries.flatten(1).double(), train.flatten(1).double())
    best = d.min(1).values
    assert torch.allclose(d[torch.arange(len(queries)), idx], best, atol=1e-9)
    assert torch.allclose(dist.double(), best, atol=1e-4)


def test_the_pixel_search_bound_never_exceeds_the_true_distance():
    g = torch.Generator().manual_seed(3)
    w = torch.randn(4, 64, generator=g)  # data near a 4-d subspace, as images are near a low-d one
    train = torch.randn(800, 4, generator=g) @ w + 0.1 * torch.rand(800, 64, generator=g)
    queries = torch.randn(50, 4, generator=g) @ w + 0.1 * torch.rand(50, 64, generator=g)
    nn = metrics.NearestNeighbours(train, rank=6)
    aq = nn._lift(queries)
    bound = torch.cdist(aq.double(), nn.lifted.double()).pow(2)
    true = torch.cdist(queries.double(), train.double()).pow(2)
    assert (bound <= true + 1e-5).all()
    assert (bound >= 0.9 * true).float().mean() > 0.9  # and, with the right subspace, it is tight


def test_nearest_neighbour_refuses_features_it_was_not_given():
    nn = metrics.NearestNeighbours(torch.rand(10, 1, 4, 4))
    with pytest.raises(ValueError):
        nn.feature(torch.rand(2, 3))


# ----------------------------------------------------------------------------- the shipped classifier
@pytest.fixture(scope="module")
def reference():
    from conftest import ROOT
    from genlab import evaluation
    return evaluation.load_reference(ROOT / "checkpoints")


def test_shipped_classifier_reaches_99_percent_on_the_test_set(reference):
    from genlab.models.classifier import accuracy
    acc = accuracy(reference.classifier, reference.test.x, reference.test.y)  # recomputed, not read from the card
    assert acc >= 0.99
    assert reference.card["metrics"]["test_accuracy"] == pytest.approx(acc, abs=1e-4)


def test_stored_features_are_the_classifiers(reference):
    f, p = reference.embed(reference.train.x[:300])
    assert torch.allclose(f, reference.train_features[:300], rtol=2e-3, atol=2e-3)
    f, p = reference.embed(reference.test.x[:300])
    assert torch.allclose(p, reference.test_probs[:300], atol=1e-4)


def test_nearest_training_image_of_a_training_image_is_itself(reference):
    pick = torch.tensor([0, 5, 777, 54_999])
    idx, dist = reference.nn.pixel(reference.train.x[pick])
    assert idx.tolist() == pick.tolist() and dist.max() < 1e-2
    f, _ = reference.embed(reference.train.x[pick])
    idx, _ = reference.nn.feature(f)
    assert idx.tolist() == pick.tolist()


def test_quality_of_real_digits_beats_noise(reference):
    from genlab import evaluation
    g = torch.Generator().manual_seed(0)
    real = reference.train.x[torch.randperm(len(reference.train), generator=g)[:2000]]
    q_real = evaluation.quality(reference, real)
    q_noise = evaluation.quality(reference, torch.rand(2000, 1, 28, 28, generator=g))
    assert q_real["fid"] < 10 and q_noise["fid"] > 20 * q_real["fid"], (q_real, q_noise)  # FID is biased up at n = 2000
    assert q_real["label_entropy"] > 2.25 and q_real["inception_score"] > 9
    assert q_real["precision"] > 0.8 and q_noise["precision"] < 0.05


def test_eval_all_writes_reports_and_the_readme_table(ckpt_dir, tmp_path):
    from genlab import cli, evaluation
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- eval:begin -->\nold table\n<!-- eval:end -->\noutro\n")
    assert cli.main(["eval", "--all", str(ckpt_dir), "--n", "500", "--report", str(tmp_path / "r"),
                     "--readme", str(readme)]) == 0
    import json
    rep = json.loads((tmp_path / "r.json").read_text())
    assert set(rep["calibration"]) == {"MNIST training set", "uniform noise"}
    assert "mnist-classifier" not in rep["models"]
    assert {"vae-mnist-z20", "gan-mlp-mnist"} <= set(rep["models"])
    assert rep["models"]["vae-mnist-z20"]["quality"]["n"] == 500
    md = (tmp_path / "r.md").read_text()
    assert "| vae-mnist-z20 |" in md and "calibration" in md
    text = readme.read_text()
    assert "old table" not in text and "| gan-mlp-mnist |" in text
    assert text.startswith("intro\n") and text.endswith("<!-- eval:end -->\noutro\n")
    with pytest.raises(ValueError):
        evaluation.replace_between("no markers", "x")
    # --only re-measures the named checkpoints and keeps every other row as it was
    before = json.loads((tmp_path / "r.json").read_text())
    assert cli.main(["eval", "--all", str(ckpt_dir), "--n", "500", "--report", str(tmp_path / "r"),
                     "--only", "ebm-mnist"]) == 0
    after = json.loads((tmp_path / "r.json").read_text())
    assert after["models"]["vae-mnist-z20"] == before["models"]["vae-mnist-z20"]
    assert after["models"]["ebm-mnist"]["quality"]["n"] == 500 and after["calibration"] == before["calibration"]
    assert cli.main(["eval", "--all", str(ckpt_dir), "--n", "400", "--report", str(tmp_path / "r"),
                     "--only", "ebm-mnist"]) == 2  # another n: refused, the report untouched
    assert json.loads((tmp_path / "r.json").read_text()) == after
