"""genlab dashboard: `streamlit run app.py`.

Navigation (from the views' registry, views/registry.py) and the shared sidebar (model picker,
device) live here; each view is a file in views/ that calls the genlab engine.
"""
import os

# Torch's threads per computation for a server many sessions share (genlab/device.py
# `server_threads`: GENLAB_THREADS, or half the cores), set before torch loads: OpenMP reads it
# once, for every thread, and threads a session starts later do not all follow a count set
# afterwards (bench/load.py read p95 0.35 s that way against 0.26-0.30 s with the variable).
_threads = os.environ.get("GENLAB_THREADS", "").strip()
os.environ.setdefault("OMP_NUM_THREADS", _threads if _threads.isdigit() and int(_threads) > 0
                      else str(max(1, (os.cpu_count() or 1) // 2)))

# Session threads share sys.modules and plotly peeks at pandas there: import it whole first.
import pandas  # noqa: E402,F401

import streamlit as st  # noqa: E402

import genlab  # noqa: E402
from views import common, lesson_bar, registry, warm  # noqa: E402

st.set_page_config(page_title="genlab", page_icon="🧬", layout="wide")

PAGES = [st.Page(v.file, title=v.title, icon=v.icon, default=v is registry.VIEWS[0]) for v in registry.VIEWS]

common.device()  # once per server: the device, and torch's threads per computation on a CPU
warm.start()  # once per server: open every view in the background so the class finds them drawn
nav = st.navigation(PAGES)
common.enter_view(nav.title)  # the view this run shows: its entry says which models fit it
st.markdown(common.PIXELATED_CSS, unsafe_allow_html=True)
lesson_bar.show(nav)  # the note and previous / next of a lesson being stepped through
with st.sidebar:
    common.model_picker()
    common.job_badge()
    common.chart_style_toggle()
    st.caption(f"Device: {genlab.describe_device(common.device())}")
nav.run()
