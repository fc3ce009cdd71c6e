"""Rules of the road that a reader cannot see at a glance."""
import subprocess
import sys

from conftest import ROOT


def test_genlab_never_imports_streamlit():
    code = ("import sys, genlab, genlab.cli, genlab.jobs, genlab.pagestate, genlab.viz; "
            "print('streamlit' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"
    for path in (ROOT / "genlab").rglob("*.py"):
        assert "import streamlit" not in path.read_text(), path


def test_no_legacy_pages_folder_next_to_app():
    # Streamlit treats a folder named pages/ beside the entry script as its legacy multipage
    # layout and then runs page files directly, skipping app.py (no sidebar, no navigation).
    assert not (ROOT / "pages").exists()


def test_no_absolute_paths_of_a_dev_machine():
    for path in list((ROOT / "genlab").rglob("*.py")) + list((ROOT / "views").glob("*.py")) + [ROOT / "app.py"]:
        text = path.read_text()
        assert "/work/" not in text and "/tmp/" not in text, path


def test_streamlit_does_not_collect_garbage_after_every_run():
    # a full gc.collect(2) after each fragment run held the GIL ~175 ms and delayed every click's answer
    import tomllib
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["runner"]["postScriptGC"] is False


def test_views_read_capabilities_not_family_names():
    """Views ask a model what it can do (model.capabilities, the family descriptor); they never
    guess from its class, its family's name or its config fields."""
    import re
    banned = [r"getattr\([^)]*data_kind", r"model\.data_kind", r"hasattr\(model", r"getattr\(model", r"family\s*==", r"\[.family.\]\s*==",
              r"\.config\.(autoencoder|likelihood|arch)", r"isinstance\(model"]
    for path in list((ROOT / "views").glob("*.py")) + [ROOT / "app.py"]:
        text = path.read_text()
        for pattern in banned:
            assert not re.search(pattern, text), f"{path.name}: {pattern}"
