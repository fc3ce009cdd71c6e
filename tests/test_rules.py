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


# ----------------------------------------------------------------------------- rules on parsed code
import ast  # noqa: E402

# The Structure Search (Gonsior et al. 2021) is an experiment on coupling flows: its engine module
# and its view build flows by design. Every other file names no family.
FAMILY_EXPERIMENTS = {"genlab/structure.py", "views/structure.py"}
# string constants that equal a family's name without naming the family: the eval report's
# "classifier" section names the measuring stick that scored the samples
NOT_FAMILY_NAMES = {("genlab/evaluation.py", "classifier"), ("views/common.py", "classifier")}


def _sources(*folders):
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text(), str(path))


def plugin_modules() -> set[str]:
    """Families' modules that live outside genlab (installed plugins): not this repository's code."""
    from genlab.models import families, family
    return {m for m in (family(f).model_cls.__module__ for f in families()) if not m.startswith("genlab.")}


def _family_words():
    """Family and preset names, the classes each family module defines, and the family modules."""
    from genlab.models import base, families, family
    modules = {family(f).model_cls.__module__ for f in families()} - plugin_modules()
    classes = {}
    for mod in modules:
        tree = ast.parse((ROOT / (mod.replace(".", "/") + ".py")).read_text())
        classes.update({n.name: mod for n in tree.body if isinstance(n, ast.ClassDef)})
    names = set(families()) | set(base.presets())
    return names, classes, modules


def _docstrings(tree) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def family_mentions(rel: str, tree, names, classes, modules) -> list[str]:
    """Where a file names a family: a family's or preset's name as a string, a family module's
    class, or an import of a family module."""
    own = rel[:-3].replace("/", ".")
    found, docs = [], _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names \
                and id(node) not in docs and (rel, node.value) not in NOT_FAMILY_NAMES:
            found.append(f"{rel}:{node.lineno} the string {node.value!r}")
        elif isinstance(node, (ast.Name, ast.Attribute)):
            word = node.id if isinstance(node, ast.Name) else node.attr
            if word in classes and classes[word] != own:
                found.append(f"{rel}:{node.lineno} {word}")
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            targets = [f"{mod}.{a.name}" for a in node.names] + [mod]
            if any(t.split(".")[-1] in {m.split(".")[-1] for m in modules} and t.split(".")[-2:-1] == ["models"]
                   for t in targets if "." in t) or any(a.name in classes for a in node.names):
                if own not in modules:
                    found.append(f"{rel}:{node.lineno} imports from {mod or '.'}")
    return found


def test_no_family_is_named_outside_its_own_file():
    """A family is one file: the engine, the command line and the views name none, so a new
    family needs no edit anywhere else (an ast walk, not a text search)."""
    names, classes, modules = _family_words()
    found = []
    for rel, tree in [*_sources("genlab", "views"), ("app.py", ast.parse((ROOT / "app.py").read_text()))]:
        if rel[:-3].replace("/", ".") in modules or rel in FAMILY_EXPERIMENTS:
            continue
        found += family_mentions(rel, tree, names, classes, modules)
    assert not found, "\n".join(found)


def test_the_family_check_finds_what_it_should():
    names, classes, modules = _family_words()
    bad = ast.parse('from genlab.models.vae import VAE\nx = family("rbm")\ny = GANConfig()\n'
                    'def f():\n    "rbm in a docstring is fine"\n')
    found = family_mentions("views/x.py", bad, names, classes, modules)
    assert found == ["views/x.py:1 imports from genlab.models.vae", "views/x.py:2 the string 'rbm'",
                     "views/x.py:3 GANConfig"]  # and not the docstring


def _imports(tree) -> set[str]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            mod = ("." * node.level) + (node.module or "")
            out |= {mod} | {f"{mod}.{a.name}" if node.module else f"{mod}{a.name}" for a in node.names}
    return out


SERVING = ("threading", "concurrent", "multiprocessing", "weakref", "streamlit", "..serving", "..parallel",
           "..jobs", "genlab.serving", "genlab.parallel", "genlab.jobs")


def test_models_are_plain_math():
    """Model files import no threads, serving or streamlit code and compile nothing: the server's
    speed-ups are applied from outside (genlab/serving.py)."""
    found = []
    for rel, tree in _sources("genlab/models"):
        for name in _imports(tree):
            if any(name == s or name.startswith(s + ".") for s in SERVING):
                found.append(f"{rel}: imports {name}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "jit":
                found.append(f"{rel}:{node.lineno} torch.jit")
    assert not found, "\n".join(found)


def test_genlab_never_imports_streamlit_parsed():
    for rel, tree in _sources("genlab"):
        assert not any(n == "streamlit" or n.startswith("streamlit.") for n in _imports(tree)), rel
