"""Structure Search: which features should a coupling layer condition on when the data has no
locality? Watch Algorithm 1 of Gonsior, Mücke and Morik (2021) search the masks of a coupling
flow on a table, then see the structure it found trained beside parity and random masks and
a Gaussian."""
import numpy as np
import streamlit as st

from genlab import export, store, structure, viz
from genlab.jobs import JobRefused
from genlab.pagestate import parse_choice, parse_int
from genlab.tabular import TABLES
from views import common, registry

st.title("Structure Search")
st.caption("A coupling layer keeps some features as they are and uses them to scale and shift the rest. On "
           "images the choice is obvious (neighbouring pixels); on a table it is not. The search starts from "
           "random masks; each iteration redraws the masks of a few layers of the best flow so far, trains the "
           "offspring for 50 SGD steps and keeps it if its loss is no worse. Then the best structure is trained "
           "from scratch beside parity and random masks.")
common.show_notice()

K = registry.keys("Structure Search")  # the URL keys this view reads, with their ranges
DEFAULTS = {"s_layers": 4, "s_budget": 200, "s_offspring": 1, "s_seed": 0}
common.url_default("s_data", lambda v: parse_choice(v, list(TABLES), "magic"))
for key, default in DEFAULTS.items():
    common.url_default(key, lambda v, spec=K[key], default=default: parse_int(v, spec.lo, spec.hi, default))

live: structure.LiveSearch | None = st.session_state.get("search_live")
job = st.session_state.get("search_job")
active = job is not None and job.active

# ----------------------------------------------------------------------------- start
if live is None:
    c1, c2, c3, c4, c5 = st.columns([3, 1, 1, 1, 1])
    c1.selectbox("Data set", list(TABLES), key="s_data", format_func=lambda n: TABLES[n]["label"])
    c2.number_input("Depth (layers)", K["s_layers"].lo, K["s_layers"].hi, key="s_layers",
                    help="Coupling layers, each after a learned per-feature scale and shift.")
    c3.number_input("Budget (iterations)", K["s_budget"].lo, K["s_budget"].hi, key="s_budget",
                    help="Search iterations; each trains its offspring for 50 SGD steps. The paper uses 200.")
    c4.number_input("Offspring per iteration", K["s_offspring"].lo, K["s_offspring"].hi, key="s_offspring",
                    help="λ offspring trained at once as one batched model; the best of them may replace the "
                         "parent. 1 is the paper's algorithm.")
    c5.number_input("Seed", K["s_seed"].lo, K["s_seed"].hi, key="s_seed")
    common.url_write("s_data", "s_layers", "s_budget", "s_offspring", "s_seed")
    t = TABLES[st.session_state["s_data"]]
    st.caption(f"{t['label']}: raw features, batch {t['batch_size']}; the paper's flow (one tanh layer per "
               "conditioner), SGD with momentum and a cyclic learning rate. Losses are bits per dimension of the raw "
               "features: lower is better, and negative values are possible (a density above 1).")
    if st.button("Start", type="primary", key="s_start"):
        s = structure.SearchSettings(data=st.session_state["s_data"], layers=int(st.session_state["s_layers"]),
                                     budget=int(st.session_state["s_budget"]),
                                     offspring=int(st.session_state["s_offspring"]), seed=int(st.session_state["s_seed"]))
        try:
            with st.spinner("Loading the table and training the first random structure…"):
                live = structure.LiveSearch(s, common.device())
            job = common.job_manager().start(structure.search_target(live), label=f"structure search on {s.data}")
        except (ValueError, JobRefused) as e:
            st.error(f"Did not start: {e}")
            st.stop()
        st.session_state.update(search_live=live, search_job=job)
        st.rerun()
    st.stop()


# ----------------------------------------------------------------------------- running
def _pause() -> None:
    job.pause()
    job.wait_parked(2.0)


def controls():
    s = job.snapshot()
    x = s.extra
    paused = s.state == "paused"
    phase = {"search": "searching", "final": "training the three layouts in full", "done": "finished"}
    st.markdown(f"**{s.state}**" + (f" · {phase.get(x.get('phase', 'search'))}" if s.active else ""))
    c = st.columns([1, 1, 1, 5])
    if paused:
        c[0].button("Resume", key="s_resume", on_click=job.resume)
    else:
        c[0].button("Pause", key="s_pause", on_click=_pause, disabled=s.state != "running")
    if c[1].button("Stop", key="s_stop", disabled=not s.active):
        job.stop()
        job.join(5)
        st.session_state["search_was_active"] = False
        st.rerun()
    if c[2].button("New search", key="s_reset", help="Stop and discard this run to set up another."):
        job.stop()
        job.join(5)
        for k in ("search_live", "search_job"):
            st.session_state.pop(k, None)
        st.rerun()


def live_view():
    s = job.snapshot()
    x = s.extra
    if s.state == "error":
        st.error(s.message)
    if "masks" not in x:
        st.caption("starting…")
        return
    st.progress(min(1.0, x["iteration"] / max(1, x["budget"])),
                text=f"search iteration {x['iteration']} of {x['budget']}")
    if x["phase"] != "search":
        done = x["final_steps"][-1] if x["final_steps"] else 0
        st.progress(min(1.0, done / x["final_total"]), text=f"full training: SGD iteration {done} of {x['final_total']}")
    cols = x["columns"]
    left, right = st.columns([2, 3])
    with left:
        common.chart(viz.mask_heatmap(x["masks"], cols, title="Best masks so far"), key="s_masks", name="best-masks", px=360)
    with right:
        h = x["history"]
        common.chart(viz.search_figure(x["points"], h.get("step", []), h.get("best", [])), key="s_search",
                     name="search-losses", px=540)
    if len(x["final_steps"]):
        st.subheader("Full training from a fresh start")
        chart = viz.final_curve_chart(x["final_steps"], x["final_curve"])
        common.chart(chart.plotly(), key="s_final", name="full-training")
    if x["results"]:
        results_view(x)
    if st.session_state.get("search_was_active") and not s.active:
        st.session_state["search_was_active"] = False
        st.rerun()  # finished by itself: stop the timer
    st.session_state["search_was_active"] = s.active


def results_view(x: dict) -> None:
    r, g = x["results"], x["gaussian"]
    names = {"parity": "parity masks", "random": "random masks", "opt": "searched masks"}
    rows = [{"model": names[k], "train bits/dim": round(v["train"], 3), "test bits/dim": round(v["test"], 3)}
            for k, v in r.items()]
    rows.append({"model": "full-covariance Gaussian", "train bits/dim": round(g["train"], 3),
                 "test bits/dim": round(g["test"], 3)})
    finite = [row for row in rows if np.isfinite(row["test bits/dim"])]  # a diverged flow reads nan or inf
    best = min(finite, key=lambda row: row["test bits/dim"]) if finite else {"model": "none (all diverged)"}
    c1, c2 = st.columns([2, 3])
    with c1:
        st.subheader("Test bits per dimension")
        st.dataframe(rows, hide_index=True, width="stretch")
        st.caption(f"Lowest on test: {best['model']}. One instance and one seed: docs/structure-search-summary.md gives "
                   "20 instances per depth, with their spread.")
        search = st.session_state["search_live"]
        if search.final is not None:
            data_name, depth = search.settings.data, search.settings.layers
            zip_name = f"flow-{data_name}-searched-L{depth}"
            common.download(f"The searched flow as a checkpoint ({zip_name}.zip)",
                            lambda: export.run_zip(zip_name, lambda p: store.save(
                                search.final.export(structure.LAYOUTS.index("opt")), p,
                                dataset={"name": data_name, "split": "train"},
                                metrics={"test_bits_per_dim": r["opt"]["test"], "train_bits_per_dim": r["opt"]["train"]})),
                            f"{zip_name}.zip", "application/zip",
                            help="A genlab Flow (explicit masks, tanh conditioners) with the searched masks, "
                                 "trained from scratch here; `python -m genlab sample` reads it.")
    with c2:
        st.subheader("Test data against samples of the searched flow")
        cols = list(x["columns"])
        a, b = st.columns(2)
        i = a.selectbox("x feature", range(len(cols)), index=0, format_func=lambda k: cols[k], key="s_fx")
        j = b.selectbox("y feature", range(len(cols)), index=min(1, len(cols) - 1), format_func=lambda k: cols[k],
                        key="s_fy")
        live_obj: structure.LiveSearch = st.session_state["search_live"]
        test = live_obj.table.test[:1000]
        common.chart(viz.pairs_figure(np.asarray(test), x["samples"], i, j, cols), key="s_pairs", name="test-rows-and-samples",
                     px=540)


with st.container(key="s_controls"):
    st.fragment(controls)()
st.fragment(run_every=1.0 if active else None)(live_view)()
