"""Sessions that start at the same instant on a fresh server must not see half-imported modules.

Streamlit runs every session's script on its own thread of one process. On a fresh server the
first Home run imports pandas (st.dataframe) while, on another thread, plotly's validators look
pandas up in sys.modules without importing it (_plotly_utils.optional_imports.get_module with
should_load=False) and get the module object before its body has run:
    AttributeError: partially initialized module 'pandas' has no attribute 'Series'
app.py imports these modules itself, so the first thread to need them runs the import and
every other waits for it. No browser: tests/stclient.py speaks Streamlit's websocket protocol.
"""
import pytest

from conftest import streamlit_server
from stclient import run_together

pytestmark = pytest.mark.slow

# Home imports pandas (st.dataframe) while Interpolation, VAE Manifold and Training build plotly
# figures. Home and Interpolation alone hit the window only sometimes on a 2-core machine; with
# every view (Compare aside: slow) starting at once, the unfixed app failed every round.
VIEWS = [("", ""), ("latent_explorer", ""), ("interpolation", ""), ("manifold", ""),
         ("training", ""), ("gan_live", "")]
ROUNDS = 3  # fresh server processes: the race is only open while pandas is first imported


def test_sessions_started_together_on_a_fresh_server_raise_nothing(ckpt_dir, tmp_path):
    for round_ in range(ROUNDS):
        log_path = tmp_path / f"streamlit-{round_}.log"
        # exception elements carry type and message only with full error details
        with streamlit_server(ckpt_dir, log_path, "--client.showErrorDetails", "full") as url:
            runs = run_together(url, VIEWS)
        log = log_path.read_text()
        problems = [f"{r.path or 'home'}: {e}" for r in runs for e in r.exceptions]
        assert not problems and "Traceback" not in log, (
            f"round {round_ + 1} of {ROUNDS}:\n" + "\n".join(problems)
            + "\n\nserver log:\n" + log[-4000:])
        for r in runs:
            assert r.status == "FINISHED_SUCCESSFULLY" and not r.page_not_found, r
            assert r.deltas > 0, r
