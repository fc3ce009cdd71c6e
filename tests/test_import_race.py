"""Sessions that start at the same instant on a fresh server must not see half-imported modules.

Streamlit runs every session's script on its own thread of one process. On a fresh server the
first Home run imports pandas (st.dataframe) while, on another thread, plotly's validators look
pandas up in sys.modules without importing it (_plotly_utils.optional_imports.get_module with
should_load=False) and get the module object before its body has run:
    AttributeError: partially initialized module 'pandas' has no attribute 'Series'
app.py imports these modules itself, so the first thread to need them runs the import and
every other waits for it. No browser: tests/stclient.py speaks Streamlit's websocket protocol.
"""
import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import ROOT
from stclient import run_together

pytestmark = pytest.mark.slow

# Home imports pandas (st.dataframe) while Interpolation, VAE Manifold and Training build plotly
# figures. Home and Interpolation alone hit the window only sometimes on a 2-core machine; with
# every view (Compare aside: slow) starting at once, the unfixed app failed every round.
VIEWS = [("", ""), ("latent_explorer", ""), ("interpolation", ""), ("manifold", ""),
         ("training", ""), ("gan_live", "")]
ROUNDS = 3  # fresh server processes: the race is only open while pandas is first imported


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def fresh_server(ckpt_dir, log_path):
    """`streamlit run app.py` in a new process on a free port; yields its url once healthy."""
    port = free_port()
    env = dict(os.environ, GENLAB_CHECKPOINTS=str(ckpt_dir))
    with open(log_path, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true",
             "--client.showErrorDetails", "full"],  # exception elements carry type and message
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_sessions_started_together_on_a_fresh_server_raise_nothing(ckpt_dir, tmp_path):
    for round_ in range(ROUNDS):
        log_path = tmp_path / f"streamlit-{round_}.log"
        with fresh_server(ckpt_dir, log_path) as url:
            runs = run_together(url, VIEWS)
        log = log_path.read_text()
        problems = [f"{r.path or 'home'}: {e}" for r in runs for e in r.exceptions]
        assert not problems and "Traceback" not in log, (
            f"round {round_ + 1} of {ROUNDS}:\n" + "\n".join(problems)
            + "\n\nserver log:\n" + log[-4000:])
        for r in runs:
            assert r.status == "FINISHED_SUCCESSFULLY" and not r.page_not_found, r
            assert r.deltas > 0, r
