"""Structure search for coupling flows on table data: the loaders against the published
checksums, masks, the batched population against single models and against genlab's Flow,
log-dets against autograd, the Gaussian against scipy, the search's rules, the live run, and
the view under AppTest."""
import math

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from conftest import ROOT, wait_for
from genlab import structure as S
from genlab.tabular import TABLES, load_table, verify


# ----------------------------------------------------------------------------- data
def test_bundled_tables_match_the_published_checksums():
    assert verify() == {k: True for k in verify()} and len(verify()) == 8


@pytest.mark.parametrize("name,train,test,d", [("magic", 17118, 1902, 10), ("sonar", 187, 21, 60),
                                               ("yeast", 1336, 148, 8), ("turbine", 22191, 14542, 10)])
def test_splits_and_shapes(name, train, test, d):
    t = load_table(name)
    assert t.train.shape == (train, d) and t.test.shape == (test, d) and len(t.columns) == d
    assert np.isfinite(t.train).all() and np.isfinite(t.test).all()
    assert load_table(name).train.tobytes() == t.train.tobytes()  # a fixed split


def test_raw_values_are_kept_and_the_turbine_drops_co():
    t = load_table("magic")
    first = [28.7967, 16.0021, 2.6449, 0.3918, 0.1982, 27.7004, 22.011, -8.2027, 40.092, 81.8828]
    rows = np.concatenate([t.train, t.test])
    assert np.isclose(rows, first).all(1).sum() == 1  # the file's first row, unscaled
    tb = load_table("turbine")
    assert "CO" not in tb.columns and tb.columns[-1] == "NOX"
    assert np.isclose(tb.train[0], [4.5878, 1018.7, 83.675, 3.5758, 23.979, 1086.2, 549.83, 134.67, 11.898,
                                    81.952]).all()  # gt_2011.csv's first row without CO


def test_unknown_or_missing_table_is_a_clear_error(tmp_path):
    from genlab.data import DataError
    with pytest.raises(ValueError, match="known: magic"):
        load_table("iris")
    with pytest.raises(DataError, match="git checkout -- data/tabular"):
        load_table("magic", root=tmp_path)


# ----------------------------------------------------------------------------- masks
def test_every_mask_has_m_conditioning_features_and_reshuffling_keeps_it():
    g = torch.Generator().manual_seed(0)
    for d in (2, 7, 8, 10, 60):
        m = S.random_masks(50, 6, d, g)
        assert (m.sum(-1) == d // 2).all()
        assert (S.parity_masks(3, 6, d).sum(-1) == d // 2).all()
        new, k = S.reshuffle(m, g)
        assert (new.sum(-1) == d // 2).all()
        changed_layers = (new != m).any(-1).sum(1)
        assert (changed_layers <= k).all() and ((k >= 1) & (k <= 6)).all()


def test_reshuffle_draws_k_from_a_capped_geometric():
    g = torch.Generator().manual_seed(1)
    _, k = S.reshuffle(torch.zeros(20000, 8, 10), g, p=0.5)
    freq = torch.bincount(k, minlength=9).float() / len(k)
    expected = [0.0] + [0.5 ** j for j in range(1, 8)] + [0.5 ** 7]  # P(k = j), the tail lumped at 8
    assert torch.allclose(freq, torch.tensor(expected), atol=0.015)


def test_parity_alternates_by_layer():
    m = S.parity_masks(1, 3, 6)[0]
    assert m[0].tolist() == [0, 1, 0, 1, 0, 1] and m[1].tolist() == [1, 0, 1, 0, 1, 0] and m[2].equal(m[0])


def test_cyclic_learning_rate_is_triangular():
    p = S.Protocol(base_lr=0.001, max_lr=0.011, half_cycle=10)
    assert [round(S.cyclic_lr(i, p), 6) for i in (0, 5, 10, 15, 20, 30)] == [0.001, 0.006, 0.011, 0.006, 0.001, 0.011]


# ----------------------------------------------------------------------------- the population
def pop_of(P=4, L=3, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(500, d, generator=g) * torch.linspace(1, 5, d) + torch.arange(d)
    pop = S.population(S.random_masks(P, L, d, g), x, g, S.Protocol())
    with torch.no_grad():  # away from the identity, so every term matters
        pop.c.normal_(0, 0.3, generator=g)
        pop.shift.add_(0.1 * torch.randn(pop.shift.shape, generator=g))
        pop.log_a.add_(0.1 * torch.randn(pop.log_a.shape, generator=g))
        pop.W.mul_(10)
    return pop, x, g


def test_population_members_equal_genlab_flows_and_single_models():
    pop, x, _ = pop_of()
    nll = pop.nll(x[:64])
    for i in range(pop.size):
        flow = pop.export(i).eval()  # an independent implementation: ActNorm + AffineCoupling modules
        assert torch.allclose(-flow.log_prob(x[:64]), nll[i], atol=1e-4)
        single = pop.take(torch.tensor([i]))
        assert torch.allclose(single.nll(x[:64])[0], nll[i], atol=1e-5)


def test_batched_training_equals_a_loop_over_single_models():
    pop, x, g = pop_of(P=3)
    singles = [pop.take(torch.tensor([i])) for i in range(3)]
    p = S.Protocol(clip=1.0)  # small enough that clipping acts
    opt = S.sgd(pop, p)
    opts = [S.sgd(s, p) for s in singles]
    for step in range(5):
        idx = torch.randint(0, len(x), (3, 32), generator=g)
        lb = S.sgd_step(pop, opt, x[idx], p)
        for i, (s, o) in enumerate(zip(singles, opts)):
            li = S.sgd_step(s, o, x[idx[i]][None], p)
            assert torch.allclose(li[0], lb[i], atol=1e-5)
    for i, s in enumerate(singles):
        for name in ("shift", "log_a", "W", "c"):
            assert torch.allclose(getattr(s, name)[0], getattr(pop, name)[i], atol=1e-5), name


def test_a_diverged_member_does_not_touch_the_others():
    pop, x, g = pop_of(P=3)
    with torch.no_grad():
        pop.W[1].fill_(float("nan"))
    ref = pop.take(torch.tensor([0, 2]))
    p = S.Protocol()
    opt, opt_ref = S.sgd(pop, p), S.sgd(ref, p)
    idx = torch.randint(0, len(x), (3, 32), generator=g)
    loss = S.sgd_step(pop, opt, x[idx], p)
    loss_ref = S.sgd_step(ref, opt_ref, x[idx[[0, 2]]], p)
    assert math.isinf(loss[1]) and torch.allclose(loss[[0, 2]], loss_ref)
    assert torch.allclose(pop.W[[0, 2]], ref.W, atol=1e-6)


def test_a_member_that_stops_being_finite_is_left_exactly_as_it_was():
    """Momentum must not carry a member on once its loss is not finite."""
    pop, x, g = pop_of(P=2)
    p = S.Protocol()
    opt = S.sgd(pop, p)
    idx = torch.randint(0, len(x), (2, 32), generator=g)
    S.sgd_step(pop, opt, x[idx], p)  # both move, and both now carry momentum
    with torch.no_grad():
        pop.c[1, 0] = float("nan")
    frozen = {n: getattr(pop, n)[1].clone() for n in ("shift", "log_a", "W")}
    for _ in range(3):
        loss = S.sgd_step(pop, opt, x[idx], p)
        assert math.isinf(loss[1]) and math.isfinite(loss[0])
    for n, v in frozen.items():
        assert torch.equal(getattr(pop, n)[1], v), n
    assert torch.isnan(pop.c[1, 0]).all() and torch.isfinite(pop.c[0]).all()


def test_log_det_matches_autograds_jacobian_on_table_rows():
    pop, x, _ = pop_of(P=2, L=4, d=5)
    for i in range(2):
        single = pop.take(torch.tensor([i])).double()
        for row in x[:3].double():
            jac = torch.autograd.functional.jacobian(lambda r: single(r.view(1, 1, -1))[0].view(-1), row)
            _, ld = single(row.view(1, 1, -1))
            assert torch.allclose(ld.view(()), torch.linalg.slogdet(jac)[1], atol=1e-8)


def test_inverse_and_samples():
    pop, x, g = pop_of()
    z, _ = pop(x[:20])
    assert torch.allclose(pop.inverse(z), x[:20].expand(4, -1, -1), atol=1e-4)
    s = pop.sample(7, g)
    assert s.shape == (4, 7, 6) and torch.isfinite(s).all()


def test_gaussian_baseline_matches_scipy():
    from scipy.stats import multivariate_normal
    t = load_table("yeast")
    got = S.gaussian_bpd(t.train, t.test)
    mvn = multivariate_normal(t.train.mean(0), np.cov(t.train, rowvar=False, ddof=0))
    for split, x in (("train", t.train), ("test", t.test)):
        assert got[split] == pytest.approx(-mvn.logpdf(x).mean() / (8 * math.log(2)), rel=1e-9)


# ----------------------------------------------------------------------------- the search
def test_search_accepts_only_improvements_and_the_best_never_gets_worse():
    t = load_table("yeast")
    x = t.tensors()[0]
    p = S.Protocol(search_iterations=12, offspring_iterations=5, offspring=3)
    s = S.Search(x, 3, 29, p, instances=4, seed=0)
    before = s.best_loss.clone()
    s.run()
    best = np.stack([r.best for r in s.records])
    assert s.done and best.shape == (12, 4) and (np.diff(best, axis=0) <= 0).all()
    assert (best[0] <= before.numpy()).all()
    for r in s.records:
        assert r.offspring.shape == (4, 3)
        won = r.offspring.min(1)
        assert np.array_equal(r.accepted, won <= np.concatenate([[before.numpy()], best])[r.iteration - 1])
    assert (s.best.masks.sum(-1) == 4).all()


def test_same_seed_same_search():
    x = load_table("yeast").tensors()[0]
    p = S.Protocol(search_iterations=3, offspring_iterations=5)
    a, b = S.Search(x, 2, 29, p, 2, seed=5), S.Search(x, 2, 29, p, 2, seed=5)
    a.run()
    b.run()
    assert torch.equal(a.best.masks, b.best.masks) and torch.equal(a.best_loss, b.best_loss)


def test_experiment_writes_a_report(tmp_path):
    from genlab.cli import main
    rc = main(["structure", "--data", "yeast", "--depths", "2", "--instances", "2", "--search-iterations", "2",
               "--iterations", "20", "--reference-seeds", "1", "--report", str(tmp_path / "ss")])
    assert rc == 0
    import json
    res = json.loads((tmp_path / "ss.json").read_text())["yeast"]
    for lay in S.LAYOUTS:
        assert len(res["depths"]["2"][lay]["test"]["values"]) == 2
    md = (tmp_path / "ss.md").read_text()
    assert "| 2 | opt |" in md and "full-covariance Gaussian" in md


def test_live_search_runs_to_the_end_and_ends_its_job():
    from genlab.jobs import JobManager
    live = S.LiveSearch(S.SearchSettings(data="yeast", layers=2, budget=4, offspring=2))
    live.chunk = 250  # the final phase in 5 updates
    job = JobManager().start(S.search_target(live))
    assert wait_for(lambda: job.snapshot().state == "done", 60), job.snapshot().message
    x = job.snapshot().extra
    assert x["phase"] == "done" and x["iteration"] == 4 and len(x["points"]) == 8
    assert x["history"]["step"] == [1, 2, 3, 4] and x["final_steps"][-1] == 1250
    assert set(x["results"]) == {"parity", "random", "opt"} and x["samples"].shape == (1000, 8)


def test_bad_live_settings_are_refused():
    with pytest.raises(ValueError, match="bad search settings"):
        S.LiveSearch(S.SearchSettings(data="nope"))
    with pytest.raises(ValueError):
        S.LiveSearch(S.SearchSettings(layers=0))


# ----------------------------------------------------------------------------- the view
@pytest.fixture
def page(ckpt_dir, monkeypatch):
    monkeypatch.setenv("GENLAB_CHECKPOINTS", str(ckpt_dir))

    def make(**params):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        for k, v in params.items():
            at.query_params[k] = v
        at.run()
        at.switch_page("views/structure.py").run()
        assert not at.exception, at.exception
        return at
    return make


def test_view_takes_its_settings_from_the_url_and_clamps_them(page):
    at = page(s_data="sonar", s_layers="99", s_budget="abc", s_offspring="3")
    assert at.selectbox(key="s_data").value == "sonar"
    assert at.number_input(key="s_layers").value == 12 and at.number_input(key="s_budget").value == 200
    assert at.number_input(key="s_offspring").value == 3
    at2 = page(s_data="bogus")
    assert at2.selectbox(key="s_data").value == "magic"


def test_view_searches_pauses_and_shows_results(page):
    at = page(s_data="yeast", s_layers="2", s_budget="6", s_offspring="2", plotly="1")  # Plotly: charts with ids
    at.button(key="s_start").click().run()
    assert not at.exception, at.exception
    job = at.session_state["search_job"]
    at.button(key="s_pause").click().run()
    assert job.snapshot().state == "paused"
    at.run()
    assert any(m.value.startswith("**paused**") for m in at.markdown)
    at.button(key="s_resume").click().run()
    assert wait_for(lambda: job.snapshot().state == "done", 120), job.snapshot().message
    at.run()
    assert not at.exception, at.exception
    keys = {c.proto.id for c in at.get("plotly_chart")}
    assert len(at.get("plotly_chart")) == 4  # masks, search, final curves, data against samples
    df = at.dataframe[0].value
    assert list(df["model"]) == ["parity masks", "random masks", "searched masks", "full-covariance Gaussian"]
    at.selectbox(key="s_fy").set_value(3).run()
    assert not at.exception
    at.button(key="s_reset").click().run()
    assert "search_job" not in at.session_state and at.button(key="s_start")
    assert keys
