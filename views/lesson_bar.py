"""The bar above every view while a lesson is being stepped through (called from app.py), and
the sidebar box that saves the current view as a step of a draft lesson.

Session state: `_lesson` holds the lesson being stepped through and the index of its current
step; the bar reads it on every rerun of every page. When the page shown is not the step's view
(the student went elsewhere with the sidebar) the bar offers to go back to the step.
`_lesson_draft` holds the teacher's draft (title, summary, steps), edited on the Lessons page.
"""
from __future__ import annotations

import streamlit as st

from genlab import lessons
from views import common, registry

ACTIVE = "_lesson"
DRAFT = "_lesson_draft"
NOTE = "_lesson_note"
LESSONS_PAGE = "Lessons"

BAR_CSS = """<style>
.st-key-lesson_bar { background: rgba(28, 131, 225, 0.08); }
.st-key-lesson_where p { font-size: 1rem; opacity: 0.85; margin: 0; }
.st-key-lesson_note p, .st-key-lesson_note li { font-size: 1.35rem; line-height: 1.5; margin: 0.1rem 0 0.3rem 0; }
</style>"""


def views() -> dict:
    """The views a step may open, with the URL keys each reads (the Lessons page is not one)."""
    return registry.lesson_views()


def model_names() -> list[str]:
    return [m["name"] for m in common.list_models()]


def draft() -> dict:
    return st.session_state.setdefault(DRAFT, {"title": "", "summary": "", "steps": []})


# ----------------------------------------------------------------------------- stepping
def open_step(lesson: lessons.Lesson, k: int) -> None:
    """Make step k current and switch to its view with its state. The view reads the URL only
    for widgets it has not seen in this session, so the view's keys are dropped first; the model
    goes through `_select_model`, which the sidebar's picker takes on its next run."""
    k = max(0, min(len(lesson.steps) - 1, k))
    step = lesson.steps[k]
    st.session_state[ACTIVE] = {"lesson": lesson, "step": k}
    entry = registry.view(step.view)
    for key in (*entry.keys, *entry.extra_keys):
        st.session_state.pop(key, None)
    params = step.query()
    if "model" in params:
        st.session_state["_select_model"] = params["model"]
    elif st.session_state.get("model"):
        params["model"] = st.session_state["model"]
    st.switch_page(entry.file, query_params=params)


def leave() -> None:
    st.session_state.pop(ACTIVE, None)


def show(nav) -> None:
    """The lesson bar above the view (during a lesson) and the sidebar's save-a-step box."""
    teacher_box(nav)
    active = st.session_state.get(ACTIVE)
    if not active:
        return
    lesson, k = active["lesson"], active["step"]
    step, n = lesson.steps[k], len(lesson.steps)
    st.markdown(BAR_CSS, unsafe_allow_html=True)
    with st.container(border=True, key="lesson_bar"):
        where = f"{registry.view(LESSONS_PAGE).icon} Lesson: **{_plain(lesson.title)}** · "
        if nav.title == step.view:
            st.container(key="lesson_where").markdown(f"{where}step {k + 1} of {n} · {step.view}")
            with st.container(key="lesson_note"):
                st.markdown(step.note)  # the file's text as markdown, never as HTML
            c1, c2, c3, _ = st.columns([1, 1, 1, 3])
            if c1.button("← Previous", key="lesson_prev", disabled=k == 0, width="stretch"):
                open_step(lesson, k - 1)
            if k + 1 < n:
                if c2.button("Next →", key="lesson_next", type="primary", width="stretch"):
                    open_step(lesson, k + 1)
            else:
                c2.button("Finish", key="lesson_finish", type="primary", on_click=leave, width="stretch")
            c3.button("Leave the lesson", key="lesson_leave", on_click=leave, width="stretch")
        else:
            st.container(key="lesson_where").markdown(f"{where}you left step {k + 1} of {n} ({step.view})")
            c1, c2, _ = st.columns([1, 1, 4])
            if c1.button(f"Back to step {k + 1}", key="lesson_back", type="primary", width="stretch"):
                open_step(lesson, k)
            c2.button("Leave the lesson", key="lesson_leave", on_click=leave, width="stretch")


def _plain(text: str) -> str:
    """A title shown inside bold markdown: its own markdown characters escaped."""
    return "".join("\\" + c if c in "\\`*_[]<>#|~$:" else c for c in text)


# ----------------------------------------------------------------------------- the teacher's box
def _add_step(view: str) -> None:
    """Button callback: the current view and its URL state become the draft's next step."""
    note = st.session_state.get(NOTE, "").strip()
    if not note:
        st.session_state["_lesson_added"] = ("error", "Write a note for the students first.")
        return
    params = {k: st.query_params[k] for k in st.query_params}
    try:
        step = lessons.step_from_url(view, params, note, views(), model_names())
    except lessons.LessonError as e:
        st.session_state["_lesson_added"] = ("error", str(e))
        return
    d = draft()
    if len(d["steps"]) >= lessons.MAX_STEPS:
        st.session_state["_lesson_added"] = ("error", f"A lesson has at most {lessons.MAX_STEPS} steps.")
        return
    d["steps"].append(step)
    st.session_state[NOTE] = ""
    st.session_state["_lesson_added"] = ("success", f"Added as step {len(d['steps'])} of the draft.")


def teacher_box(nav) -> None:
    """Sidebar: save the current view (page + its URL state) with a note as a step of the draft."""
    steps = draft()["steps"]
    with st.sidebar.expander("Save this view as a lesson step", icon=":material/bookmark_add:"):
        if nav.title not in views():
            st.caption("Open a view, set it up, then come back here to add it to a lesson. "
                       f"The draft has {len(steps)} step{'s' if len(steps) != 1 else ''}.")
            return
        st.text_area("Note for the students", key=NOTE, height=110, max_chars=lessons.MAX_NOTE,
                     placeholder="What to look at, and what to try.")
        st.button(f"Add {nav.title} as step {len(steps) + 1}", key="_lesson_add", on_click=_add_step,
                  args=(nav.title,), width="stretch",
                  help="Saves this page with its model and settings as they are in the URL now.")
        kind, msg = st.session_state.pop("_lesson_added", (None, None))
        if kind == "error":
            st.error(msg)
        elif kind == "success":
            st.success(msg)
        if steps:
            st.caption(f"The draft has {len(steps)} step{'s' if len(steps) != 1 else ''}: name it, download it "
                       "or save it on the Lessons page.")
            st.page_link(registry.file(LESSONS_PAGE), label="Open the draft", icon=registry.view(LESSONS_PAGE).icon)
