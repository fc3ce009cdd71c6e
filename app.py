"""genlab dashboard: `streamlit run app.py`.

Navigation (from the views' registry, views/registry.py) and the shared sidebar (model picker,
device) live here; each view is a file in views/ that calls the genlab engine.
"""
import runpy
from pathlib import Path

# Torch's threads per computation for a server many sessions share, set before torch loads (OpenMP
# reads OMP_NUM_THREADS once): genlab/serving_env.py, run on its own since `import genlab` loads torch.
runpy.run_path(str(Path(__file__).with_name("genlab") / "serving_env.py"))["set_thread_env"]()

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
    common.sampler_steps_control()  # a denoising model's steps: here, so the value survives page switches
    common.job_badge()
    common.chart_style_toggle()
    st.caption(f"Device: {genlab.describe_device(common.device())}")
nav.run()
