"""Lessons: the file format is validated (each way a file can be wrong is refused with its
name and the problem), the shipped lessons validate against the real checkpoints and views,
the registry of URL keys matches what the views read, and under AppTest a lesson is started,
stepped through with its state reaching the widgets, left, and a view is saved as a step."""
import ast
import json
import operator
import re

import pytest

from conftest import ROOT, app_test
from genlab import lessons, list_checkpoints, read_card
from genlab.models import describe_card
from genlab.lessons import LessonError
from views import registry

MODELS = {"vae-mnist-z20", "vae-mnist-z2", "ae-mnist-z2", "gan-mlp-mnist"}


@pytest.fixture(scope="module")
def views():
    return registry.lesson_views()


def good_lesson() -> dict:
    return {"version": 1, "title": "A short tour", "summary": "Two steps.",
            "steps": [{"view": "Latent Explorer", "state": {"model": "vae-mnist-z20", "seed": 4, "temp": 0.5},
                       "note": "Look at the **left** grid."},
                      {"view": "Compare", "state": {"models": "vae-mnist-z20,gan-mlp-mnist", "samples": 16},
                       "note": "Same seed, two models."}]}


# ----------------------------------------------------------------------------- the format
def test_a_good_lesson_loads_with_typed_values(views):
    data = good_lesson()
    data["steps"][0]["state"].update(n="6", sm="-1.5")  # strings, as a URL carries them
    lesson = lessons.parse_lesson(json.dumps(data), "tour.json", views, MODELS)
    assert lesson.id == "tour" and lesson.title == "A short tour" and len(lesson.steps) == 2
    assert lesson.steps[0].state == {"model": "vae-mnist-z20", "seed": 4, "temp": 0.5, "n": 6, "sm": -1.5}
    assert lesson.steps[0].query() == {"model": "vae-mnist-z20", "seed": "4", "temp": "0.5", "n": "6", "sm": "-1.5"}
    assert lesson.steps[1].state["samples"] == 16
    # the file text written for a draft reads back to the same lesson
    again = lessons.parse_lesson(lessons.dumps(lesson.to_dict()), "tour.json", views, MODELS)
    assert again == lesson


def _set(path, value):
    def change(d):
        *head, last = path
        for k in head:
            d = d[k]
        if value is KeyError:
            del d[last]
        else:
            d[last] = value
    return change


STATE = ("steps", 0, "state")
REFUSALS = {
    "unknown view": (_set(("steps", 0, "view"), "Latent Explorr"), "step 1: view 'Latent Explorr' is not a view here"),
    "Lessons is no step": (_set(("steps", 0, "view"), "Lessons"), "'Lessons' is not a view here"),
    "unknown key": (_set((*STATE, "temperature"), 1.0), "Latent Explorer does not read the URL key 'temperature'"),
    "key of another view": (_set((*STATE, "fi"), 3), "does not read the URL key 'fi'"),
    "a list": (_set((*STATE, "seed"), [1, 2]), "'seed' must be a single value, not a list"),
    "an object": (_set((*STATE, "seed"), {"v": 1}), "'seed' must be a single value, not an object"),
    "null": (_set((*STATE, "seed"), None), "'seed' must be a single value, not null"),
    "true for a number": (_set((*STATE, "seed"), True), "'seed': must be a number, not true/false"),
    "not parseable": (_set((*STATE, "temp"), "warm"), "'temp': 'warm' is not a number"),
    "not finite": (_set((*STATE, "temp"), float("nan")), "'temp': nan is not a finite number"),
    "huge number": (_set((*STATE, "seed"), 10**400), "'seed': is too large"),
    "not whole": (_set((*STATE, "n"), 2.5), "'n': 2.5 is not a whole number"),
    "out of range": (_set((*STATE, "n"), 99), "'n': 99 is outside 2 to 16"),
    "not a choice": (_set((*STATE, "nn"), "ssim"), "'nn': 'ssim' is not one of 'off', 'pixels', 'classifier features'"),
    "number for a choice": (_set((*STATE, "nn"), 1), "'nn': must be text, not int"),
    "unknown model": (_set((*STATE, "model"), "vae-mnist-z99"), "'model': there is no model 'vae-mnist-z99' among the checkpoints"),
    "one model to compare": (_set(("steps", 1, "state", "models"), "vae-mnist-z20"), "step 2 (Compare): 'models': needs 2 to 4"),
    "not a listed size": (_set(("steps", 1, "state", "samples"), 20), "'samples': 20 is not one of 16, 36, 64"),
    "state not an object": (_set(STATE, ["seed", 1]), "'state' must be an object"),
    "no note": (_set(("steps", 0, "note"), KeyError), "step 1 (Latent Explorer): has no 'note'"),
    "empty note": (_set(("steps", 0, "note"), "  "), "'note' is empty"),
    "long note": (_set(("steps", 0, "note"), "x" * 2000), "'note' is 2,000 characters long"),
    "unknown step field": (_set(("steps", 0, "notes"), "hi"), "step 1: unknown field 'notes'"),
    "step not an object": (_set(("steps", 0), "Latent Explorer"), "step 1: must be an object"),
    "unknown field": (_set(("author",), "me"), "unknown field 'author'"),
    "no version": (_set(("version",), KeyError), "'version' must be 1, not None"),
    "version 2": (_set(("version",), 2), "'version' must be 1, not 2"),
    "no title": (_set(("title",), KeyError), "has no 'title'"),
    "title a number": (_set(("title",), 3), "'title' must be text, not int"),
    "no steps": (_set(("steps",), []), "'steps' must be a list of at least one step"),
    "too many steps": (lambda d: d["steps"].extend([d["steps"][0]] * 30), "has 32 steps; a lesson may have at most 30"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_bad_lesson_is_refused_with_its_file_name_and_the_problem(views, case):
    change, message = REFUSALS[case]
    data = good_lesson()
    change(data)
    with pytest.raises(LessonError) as e:
        lessons.parse_lesson(json.dumps(data), "bad.json", views, MODELS)
    assert str(e.value).startswith("bad.json: "), str(e.value)
    assert message in str(e.value), str(e.value)
    assert isinstance(e.value, ValueError)


def test_any_value_anywhere_is_taken_or_refused_never_crashes(views):
    odd = [None, True, 0, -1, 1.5, 1e308, float("inf"), "", "x", "0", [], {}, [1], {"a": 1}, "vae-mnist-z20"]
    places = [("version",), ("title",), ("summary",), ("steps",), ("steps", 0), ("steps", 0, "view"),
              ("steps", 0, "note"), STATE, *[(*STATE, k) for k in ("model", "seed", "temp", "n", "nn", "d3")],
              ("steps", 1, "state", "models"), ("steps", 1, "state", "samples")]
    for place in places:
        for value in odd:
            data = good_lesson()
            _set(place, value)(data)
            try:
                lessons.parse_lesson(json.dumps(data), "odd.json", views, MODELS)
            except LessonError as e:
                assert str(e).startswith("odd.json: ")


@pytest.mark.parametrize("text,message", [
    ('{"version": 1, "title": "x",', "is not valid JSON"),
    ("[1, 2]", "must hold one JSON object, not a list"),
    ("", "is not valid JSON"),
    (b"\xff\xfe{}", "is not valid JSON"),
    ("[" * 30_000, "is not valid JSON (nested too deeply)"),
    ('{"version": ' + "9" * 5000 + "}", "is not valid JSON"),
    (json.dumps({**good_lesson(), "summary": "x" * (70 * 1024)}), "a lesson file may be at most 64 KB"),
], ids=["cut off", "a list", "empty", "not utf-8", "nested too deeply", "too many digits", "too big"])
def test_a_file_that_is_not_a_lesson_is_refused(views, text, message):
    with pytest.raises(LessonError, match=re.escape(message)) as e:
        lessons.parse_lesson(text, "odd.json", views, MODELS)
    assert str(e.value).startswith("odd.json: ")


def test_a_folder_lists_the_good_lessons_and_refuses_the_bad_ones(views, tmp_path):
    (tmp_path / "good.json").write_text(json.dumps(good_lesson()))
    (tmp_path / "broken.json").write_text('{"version": 1, "title": ')
    (tmp_path / "binary.json").write_bytes(bytes(range(256)))
    (tmp_path / "huge.json").write_bytes(b" " * (lessons.MAX_BYTES + 1))
    (tmp_path / "folder.json").mkdir()
    (tmp_path / "notes.txt").write_text("not a lesson")
    bad = good_lesson()
    bad["steps"][1]["view"] = "Nowhere"
    (tmp_path / "nowhere.json").write_text(json.dumps(bad))
    good, refused = lessons.load_folder(tmp_path, views, MODELS)
    assert [g.id for g in good] == ["good"]
    why = {r.file: r.message for r in refused}
    assert sorted(why) == ["binary.json", "broken.json", "folder.json", "huge.json", "nowhere.json"]
    assert all(m.startswith(f) for f, m in why.items())
    assert "is not valid JSON" in why["broken.json"] and "at most 64 KB" in why["huge.json"]
    assert "step 2: view 'Nowhere' is not a view here" in why["nowhere.json"]
    assert lessons.load_folder(tmp_path / "missing", views, MODELS) == ([], [])


def test_the_shipped_lessons_validate_against_the_real_checkpoints_and_views(views):
    names = {p.name for p in list_checkpoints(ROOT / "checkpoints")
             if describe_card(read_card(p))["generative"]}  # as the model picker lists them
    assert "mnist-classifier" not in names and "dcgan-mnist" in names
    good, refused = lessons.load_folder(ROOT / "lessons", views, names)
    assert not refused, refused
    assert sorted(g.id for g in good) == sorted(lessons.SHIPPED)
    for lesson in good:
        assert 5 <= len(lesson.steps) <= 8, lesson.id
        assert lesson.summary
        for step in lesson.steps:
            assert step.state.get("model") in names, (lesson.id, step)  # every step says which model it shows
            assert len(step.note) <= 500, (lesson.id, step.view)  # short enough to read above a view
    # the files are written as a draft is written (each state on one line)
    for path in (ROOT / "lessons").glob("*.json"):
        assert lessons.dumps(json.loads(path.read_text())) == path.read_text(), path.name


# ----------------------------------------------------------------------------- drafts
def test_a_step_from_the_url_keeps_the_views_keys_with_typed_values(views):
    params = {"model": "vae-mnist-z20", "temp": "0.7", "seed": "12", "fi": "3", "n": "oops", "utm": "x"}
    step = lessons.step_from_url("Latent Explorer", params, " Look. ", views, MODELS)
    assert step == lessons.Step("Latent Explorer", "Look.", {"model": "vae-mnist-z20", "seed": 12, "temp": 0.7})
    with pytest.raises(LessonError, match="'note' is empty"):
        lessons.step_from_url("Latent Explorer", params, "", views, MODELS)


def test_saving_a_draft_uses_a_safe_name_and_never_replaces_silently(views, tmp_path):
    text = lessons.dumps(good_lesson())
    assert lessons.safe_file_name("  My VAE lesson!.json") == "my-vae-lesson"
    assert lessons.safe_file_name("../../etc/passwd") == "etc-passwd"
    with pytest.raises(LessonError, match="letters or digits"):
        lessons.safe_file_name("../..")
    path = lessons.save_lesson(tmp_path, "My tour", text, views, MODELS)
    assert path == tmp_path / "my-tour.json" and path.read_text() == text
    with pytest.raises(LessonError, match="exists already"):
        lessons.save_lesson(tmp_path, "my-tour", text.replace("A short tour", "Other"), views, MODELS)
    assert "A short tour" in path.read_text()
    lessons.save_lesson(tmp_path, "my-tour", text.replace("A short tour", "Other"), views, MODELS, replace=True)
    assert "Other" in path.read_text()
    for shipped in lessons.SHIPPED:
        with pytest.raises(LessonError, match="shipped with genlab and is never replaced"):
            lessons.save_lesson(tmp_path, shipped.upper(), text, views, MODELS, replace=True)
    with pytest.raises(LessonError, match="bad-one.json: .*is not a view here"):
        lessons.save_lesson(tmp_path, "bad one", text.replace("Compare", "Nowhere"), views, MODELS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my-tour.json"]  # nothing else written, no temp file left


# ----------------------------------------------------------------------------- registry vs views
OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Pow: operator.pow}


def _const(node, env):
    """The value of a constant expression (numbers, strings, arithmetic, names bound in env)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in env:
        return env[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_const(node.operand, env)
    if isinstance(node, ast.BinOp) and type(node.op) in OPS:
        return OPS[type(node.op)](_const(node.left, env), _const(node.right, env))
    raise ValueError(ast.unparse(node))


class ViewScan:
    """The URL keys a view file reads, as (regex, parser call or None, env) triples."""

    def __init__(self, path):
        self.path = path
        self.tree = ast.parse(path.read_text())
        self.assigns, self.params = {}, {}
        functions = {f.name: f for f in ast.walk(self.tree) if isinstance(f, ast.FunctionDef)}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        self.assigns.setdefault(t.id, []).append(node.value)
            # the constant arguments every call passes to a parameter: endpoint("a", ...) -> tag in {"a", "b"}
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in functions:
                for param, arg in zip(functions[node.func.id].args.args, node.args):
                    if isinstance(arg, ast.Constant):
                        self.params.setdefault(param.arg, set()).add(arg.value)

    def fail(self, node, what):
        raise AssertionError(f"{self.path.name}:{node.lineno}: cannot resolve the URL key {ast.unparse(node)!r} "
                             f"({what}); teach this scan how to read it")

    def elements(self, node):
        """The key expressions a name or literal list stands for."""
        if isinstance(node, (ast.List, ast.Tuple)):
            return list(node.elts)
        if isinstance(node, ast.ListComp):
            return [(node.elt, self.comprehension(node))]
        if isinstance(node, ast.Name) and node.id in self.assigns:
            return [e for v in self.assigns[node.id] for e in self.elements(v)]
        self.fail(node, "not a list")

    def comprehension(self, node):
        """{name: values} of a list comprehension over range(N) or range(min(..., N))."""
        gen = node.generators[0]
        if len(node.generators) != 1 or not isinstance(gen.target, ast.Name) or getattr(gen.iter.func, "id", "") != "range":
            return {}
        arg = gen.iter.args[-1]
        if isinstance(arg, ast.Name) and len(self.assigns.get(arg.id, [])) == 1:
            arg = self.assigns[arg.id][0]
        if isinstance(arg, ast.Call) and getattr(arg.func, "id", "") == "min":
            arg = next((a for a in arg.args if isinstance(a, ast.Constant)), arg)
        try:
            return {gen.target.id: set(range(_const(arg, {})))}
        except ValueError:
            return {}

    def keys(self, node, bind=None):
        """[(regex, env)] for a key expression; f-strings expand over the values their names take."""
        bind = {**self.params, **(bind or {})}
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [(re.escape(node.value), {})]
        if isinstance(node, ast.JoinedStr):
            names = [v.value.id if isinstance(v.value, ast.Name) else None
                     for v in node.values if isinstance(v, ast.FormattedValue)]
            if names and all(n in bind for n in names):
                out = [""]
                for v in node.values:
                    values = [v.value] if isinstance(v, ast.Constant) else sorted(bind[v.value.id])
                    out = [o + str(x) for o in out for x in values]
                return [(re.escape(k), {}) for k in out]
            parts = [re.escape(v.value) if isinstance(v, ast.Constant) else "(.+)" for v in node.values]
            return [("".join(parts), {})]
        if isinstance(node, ast.Name):
            out = []
            for loop in ast.walk(self.tree):
                if not isinstance(loop, ast.For):
                    continue
                target = loop.target
                if isinstance(target, ast.Name) and target.id == node.id:
                    out += [k for e in self.elements(loop.iter) for k in self.keys(*(e if isinstance(e, tuple) else (e,)))]
                elif (isinstance(target, ast.Tuple) and isinstance(target.elts[0], ast.Name)
                      and target.elts[0].id == node.id and isinstance(loop.iter, ast.Call)
                      and getattr(loop.iter.func, "attr", "") == "items"):
                    table = self.assigns.get(loop.iter.func.value.id, [None])[0]
                    if not isinstance(table, ast.Dict):
                        self.fail(node, "loop over a dict that is not a literal")
                    for k, v in zip(table.keys, table.values):
                        names = [e.id for e in ast.walk(target.elts[1]) if isinstance(e, ast.Name)]
                        values = ast.literal_eval(v) if len(target.elts) > 1 else ()
                        values = values if isinstance(values, tuple) else (values,)
                        out.append((re.escape(k.value), dict(zip(names, values))))
            if not out:
                self.fail(node, "no loop binds it")
            return out
        self.fail(node, "not a string, an f-string or a loop variable")

    def choices(self, node):
        """The options of a parse_choice, or None when they are computed."""
        if isinstance(node, (ast.List, ast.Tuple)):
            try:
                return {ast.literal_eval(e) for e in node.elts}
            except ValueError:
                return None
        if isinstance(node, ast.IfExp):
            a, b = self.choices(node.body), self.choices(node.orelse)
            return None if a is None or b is None else a | b
        if isinstance(node, ast.Subscript):
            return self.choices(node.value)
        if isinstance(node, ast.Name) and node.id in self.assigns:
            sets = [self.choices(v) for v in self.assigns[node.id]]
            return None if None in sets else set().union(*sets)
        return None

    def reads(self):
        """Every URL read: url_default(key, parser) calls and st.query_params[key] / .get(key) / `in`."""
        out = []
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "url_default":
                parser = node.args[1]
                env_defaults = {}
                call = None
                if isinstance(parser, ast.Lambda):
                    call = next((c for c in ast.walk(parser.body) if isinstance(c, ast.Call)
                                 and getattr(c.func, "id", "") in ("parse_int", "parse_float", "parse_choice")), None)
                    names = [a.arg for a in parser.args.args]
                    env_defaults = dict(zip(names[len(names) - len(parser.args.defaults):], parser.args.defaults))
                for regex, env in self.keys(node.args[0]):
                    env = {**env}
                    for name, default in env_defaults.items():
                        try:
                            env[name] = _const(default, env)
                        except ValueError:
                            pass
                    out.append((regex, call, env))
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "label_picker":  # (model, key, ...)
                out += [(regex, None, env) for regex, env in self.keys(node.args[1])]
            qp = None
            if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _is_qp(node.value):
                qp = node.slice
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "get" and _is_qp(node.func.value):
                qp = node.args[0]
            elif isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.In) and _is_qp(node.comparators[0]):
                qp = node.left
            if qp is not None:
                out += [(regex, None, env) for regex, env in self.keys(qp)]
        return out


def _is_qp(node) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "query_params"


def test_every_view_that_reads_the_url_is_a_step_a_lesson_may_open():
    listed = {ROOT / v.file for v in registry.VIEWS if v.lesson}
    for path in (ROOT / "views").glob("*.py"):  # a view that reads the URL must be a page the registry knows
        if path not in listed and path.name not in ("common.py", "lesson_bar.py", "registry.py"):
            assert "url_default" not in path.read_text() and "query_params" not in path.read_text(), path.name


@pytest.mark.parametrize("title", [v.title for v in registry.VIEWS if v.lesson])
def test_the_registry_matches_the_url_keys_each_view_reads(title):
    scan = ViewScan(ROOT / registry.file(title))
    reads = scan.reads()
    known = registry.keys(title)
    for regex, _, _ in reads:
        assert any(re.fullmatch(regex, k) for k in known), f"{title} reads {regex!r}: add it to views/registry.py"
    for key in known:
        assert any(re.fullmatch(regex, key) for regex, _, _ in reads), f"{title} no longer reads {key!r}"
    for regex, call, env in reads:  # ranges and choices, wherever the view still writes them as constants
        if call is None:
            continue
        for key in [k for k in known if re.fullmatch(regex, k)]:
            spec, kind = known[key], call.func.id
            if kind == "parse_choice":
                options = scan.choices(call.args[1])
                if options is not None:
                    assert set(spec.options) == options, (title, key)
                continue
            assert isinstance(spec, lessons.Int if kind == "parse_int" else lessons.Float), (title, key, kind)
            for bound, arg in (("lo", call.args[1]), ("hi", call.args[2])):
                try:
                    value = _const(arg, env)
                except ValueError:
                    continue  # a bound computed from the model or the data: the registry is wider
                assert getattr(spec, bound) == value, f"{title}: {key}'s {bound} is {value} in the view"


def test_the_energy_views_step_and_noise_choices_match():
    """Written once in the registry; while the view keeps literal copies, they must be equal."""
    tree = ast.parse((ROOT / "views" / "energy.py").read_text())
    consts = {t.id: n.value for n in tree.body if isinstance(n, ast.Assign)
              for t in n.targets if isinstance(t, ast.Name) and t.id in ("STEP_SIZES", "NOISES")}
    spec = registry.keys("Energy Models")
    for name, key in (("STEP_SIZES", "eps"), ("NOISES", "sigma")):
        if isinstance(consts.get(name), (ast.List, ast.Tuple)):
            assert tuple(ast.literal_eval(consts[name])) == spec[key].values, name
        else:
            assert "registry" in ast.unparse(consts[name]), name  # read from the registry


# ----------------------------------------------------------------------------- AppTest
TOUR = {"version": 1, "title": "A tour for the tests", "summary": "Three views, three states.",
        "steps": [{"view": "Latent Explorer", "state": {"model": "vae-mnist-z20", "seed": 4, "temp": 0.5},
                   "note": "Step one: look at the temperature."},
                  {"view": "VAE Manifold", "state": {"model": "vae-mnist-z2", "res": 12},
                   "note": "Step two: the 2-d manifold."},
                  {"view": "Interpolation", "state": {"model": "vae-mnist-z20", "method": "lerp", "steps": 7},
                   "note": "Step three: a straight path."}]}


@pytest.fixture
def lesson_folder(tmp_path):
    folder = tmp_path / "lessons"
    folder.mkdir()
    (folder / "tour.json").write_text(json.dumps(TOUR))
    (folder / "broken.json").write_text(json.dumps({**TOUR, "steps": [{**TOUR["steps"][0], "view": "Nowhere"}]}))
    return folder


@pytest.fixture
def app(ckpt_dir, lesson_folder, monkeypatch):
    monkeypatch.setenv("GENLAB_CHECKPOINTS", str(ckpt_dir))
    monkeypatch.setenv("GENLAB_LESSONS", str(lesson_folder))
    return lambda page=None, **params: app_test(page, switch=goto, **params)


def goto(at, page):
    """Open a page as the sidebar does. AppTest keeps the page given to switch_page for every
    later run, which would undo the app's own st.switch_page; forget it once it has run."""
    at.switch_page(page).run()
    assert hasattr(at, "_page_hash")
    at._page_hash = ""
    return at


def click(at, key):
    at.button(key=key).click().run()
    assert not at.exception, at.exception
    return at


def title(at):
    return at.title[0].value


def texts(at):
    """The main area's markdown, in order."""
    return [m.value for m in at.main.markdown]


def bar(at):
    """The lesson bar's container above the view, or None."""
    try:
        return at.main.get_by_key("lesson_bar")
    except KeyError:
        return None


def bar_text(at) -> str:
    b = bar(at)
    return "\n".join(m.value for m in b.markdown) if b is not None else ""


def above_the_view(at) -> bool:
    """The bar comes before the view's title in the main area."""
    nodes = list(at.main)
    pos = lambda node: next(i for i, n in enumerate(nodes) if n is node)  # noqa: E731
    return pos(bar(at)) < pos(at.title[0])


def slider(at, label):
    return next(s for s in at.slider if s.label.startswith(label))


def test_the_lessons_view_lists_lessons_and_the_refused_files(app):
    at = app("views/lessons.py")
    assert title(at) == "Lessons"
    assert [s.value for s in at.main.subheader][0] == "A tour for the tests"
    assert "Three views, three states." in texts(at)
    assert any("3 steps:" in c.value and "Latent Explorer → VAE Manifold → Interpolation" in c.value for c in at.caption)
    assert [w.value for w in at.warning] == [
        "broken.json: step 1: view 'Nowhere' is not a view here (views: " + ", ".join(
            v.title for v in registry.VIEWS if v.lesson) + ")"]
    assert at.button(key="start_tour") and not at.error
    click(at, "copy_tour")  # a teacher starts a draft from a lesson
    assert [s.view for s in at.session_state["_lesson_draft"]["steps"]] == [s["view"] for s in TOUR["steps"]]
    assert at.text_input(key="_draft_title").value == "A tour for the tests (my copy)"
    assert at.text_input(key="_draft_file").value == "tour-copy" and not at.button(key="draft_save").disabled


def test_a_lesson_steps_through_its_views_with_their_state(app):
    at = app("views/lessons.py")
    click(at, "start_tour")
    # step 1: its view, its state in the widgets, the note above the view's own title
    assert title(at) == "Latent Explorer"
    assert slider(at, "Temperature").value == 0.5 and at.number_input(key="seed").value == 4
    assert "Step one: look at the temperature." in bar_text(at) and "step 1 of 3" in bar_text(at)
    assert above_the_view(at)
    assert at.button(key="lesson_prev").disabled and at.sidebar.selectbox[0].value == "vae-mnist-z20"
    # the student moves a slider; Next still opens step 2 with step 2's state and model
    slider(at, "Temperature").set_value(1.2).run()
    click(at, "lesson_next")
    assert title(at) == "VAE Manifold"
    assert at.sidebar.selectbox[0].value == "vae-mnist-z2" and at.query_params["model"] == "vae-mnist-z2"
    assert slider(at, "Resolution").value == 12
    assert "Step two: the 2-d manifold." in bar_text(at) and "step 2 of 3" in bar_text(at) and above_the_view(at)
    # Previous: back to step 1, its state again (not what the student had set)
    click(at, "lesson_prev")
    assert title(at) == "Latent Explorer" and at.sidebar.selectbox[0].value == "vae-mnist-z20"
    assert slider(at, "Temperature").value == 0.5
    click(at, "lesson_next")
    click(at, "lesson_next")
    assert title(at) == "Interpolation" and at.radio(key="method").value == "lerp"
    assert slider(at, "Steps").value == 7
    assert "Step three: a straight path." in bar_text(at) and "lesson_next" not in [b.key for b in at.button]
    click(at, "lesson_finish")  # the last step ends the lesson, on the view
    assert title(at) == "Interpolation" and bar(at) is None


def test_leaving_the_lesson_keeps_the_view(app):
    at = app("views/lessons.py")
    click(at, "start_tour")
    click(at, "lesson_leave")
    assert title(at) == "Latent Explorer"
    assert bar(at) is None and "Step one: look at the temperature." not in texts(at)
    assert slider(at, "Temperature").value == 0.5  # the step's picture stays for the student to play with


def test_a_student_who_wanders_off_can_go_back_to_the_step(app):
    at = app("views/lessons.py")
    click(at, "start_tour")
    click(at, "lesson_next")
    goto(at, "views/home.py")  # the sidebar's navigation
    assert title(at) == "genlab"
    assert "you left step 2 of 3" in bar_text(at) and "Step two" not in bar_text(at) and above_the_view(at)
    click(at, "lesson_back")
    assert title(at) == "VAE Manifold" and slider(at, "Resolution").value == 12
    assert "Step two: the 2-d manifold." in bar_text(at)


def test_a_teacher_saves_views_as_steps_and_saves_the_draft(app, lesson_folder):
    at = app("views/latent_explorer.py", model="vae-mnist-z2", temp="0.7")
    box = at.sidebar.expander[0]
    assert box.label == "Save this view as a lesson step"
    click(at, "_lesson_add")  # no note yet
    assert any("Write a note" in e.value for e in at.sidebar.error)
    at.text_area(key="_lesson_note").input("Watch the temperature.")
    click(at, "_lesson_add")
    assert any("Added as step 1" in s.value for s in at.sidebar.success)
    assert at.text_area(key="_lesson_note").value == ""
    draft = at.session_state["_lesson_draft"]["steps"]
    assert draft == [lessons.Step("Latent Explorer", "Watch the temperature.",
                                  {**draft[0].state, "model": "vae-mnist-z2", "temp": 0.7})]
    assert draft[0].state["seed"] == 0 and set(draft[0].state) <= set(registry.keys("Latent Explorer")) | {"model"}
    goto(at, "views/flow.py")
    at.text_area(key="_lesson_note").input("Now the flow.")
    click(at, "_lesson_add")
    assert at.session_state["_lesson_draft"]["steps"][1].view == "Flow"
    # the Lessons page shows the draft; it needs a title before it can be saved
    goto(at, "views/lessons.py")
    assert any("1. Latent Explorer" in m for m in texts(at)) and any("2. Flow" in m for m in texts(at))
    assert any("has no 'title'" in w.value or "'title' is empty" in w.value for w in at.warning)
    assert at.button(key="draft_save").disabled
    at.text_input(key="_draft_title").input("My first lesson").run()
    assert at.get("download_button") and not at.button(key="draft_save").disabled
    at.text_input(key="_draft_file").input("01 VAE")  # a shipped name (01-vae): refused, even with replace
    at.checkbox(key="_draft_replace").check()
    click(at, "draft_save")
    assert any("never replaced" in e.value for e in at.error)
    at.checkbox(key="_draft_replace").uncheck()
    at.text_input(key="_draft_file").input("My First Lesson!")
    click(at, "draft_save")
    assert any("Saved as lessons/my-first-lesson.json" in s.value for s in at.success)
    saved = json.loads((lesson_folder / "my-first-lesson.json").read_text())
    assert saved["title"] == "My first lesson" and [s["view"] for s in saved["steps"]] == ["Latent Explorer", "Flow"]
    assert "My first lesson" in [s.value for s in at.main.subheader]  # listed with the others
    click(at, "draft_save")  # the same name again: not silently replaced
    assert any("exists already" in e.value for e in at.error)
    # the draft can be tried as a lesson at once
    click(at, "draft_try")
    assert title(at) == "Latent Explorer" and slider(at, "Temperature").value == 0.7
    assert "Watch the temperature." in bar_text(at)


def test_the_save_box_is_on_every_view_but_not_the_lessons_page(app):
    at = app("views/lessons.py")
    assert at.sidebar.expander[0].label == "Save this view as a lesson step"
    assert "_lesson_add" not in [b.key for b in at.button]
    at = app()
    assert "_lesson_add" in [b.key for b in at.button]
