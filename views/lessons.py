"""Lessons: ordered lists of views with their URL state and a note per step.

The list of lessons in the lessons folder (title, summary, steps) with a Start button each,
the files that were refused and why, and the teacher's draft: the steps saved from the sidebar,
a title, download as JSON, save into the lessons folder."""
import streamlit as st

from genlab import lessons
from views import lesson_bar

st.title("Lessons")
st.caption("A lesson walks through a few views, each with its model and settings and a note on what to look "
           "at and what to try. Start one: its first view opens with the note above it, and Previous / Next "
           "move between the steps.")

VIEWS = lesson_bar.views()
MODELS = lesson_bar.model_names()
FOLDER = lessons.lessons_dir()
draft = lesson_bar.draft()


def copy_to_draft(lesson: lessons.Lesson) -> None:
    draft.update(title=f"{lesson.title} (my copy)", summary=lesson.summary, steps=list(lesson.steps))
    st.session_state.update(_draft_title=draft["title"], _draft_summary=draft["summary"],
                            _draft_file=lessons.safe_file_name(f"{lesson.id}-copy"))


# ----------------------------------------------------------------------------- the list
good, refused = lessons.load_folder(FOLDER, VIEWS, MODELS)
if not good:
    st.info(f"No lessons in {FOLDER.name}/ yet. Build one below.")
for lesson in good:
    with st.container(border=True, key=f"lesson_{lesson.id}"):
        text, buttons = st.columns([5, 1])
        with text:
            st.subheader(lesson.title)
            if lesson.summary:
                st.markdown(lesson.summary)
            st.caption(f"**{len(lesson.steps)} steps:** " + " → ".join(s.view for s in lesson.steps)
                       + f"  ·  {lesson.id}.json")
        if buttons.button("Start", key=f"start_{lesson.id}", type="primary", icon=":material/play_arrow:",
                          width="stretch"):
            lesson_bar.open_step(lesson, 0)
        buttons.button("Edit a copy", key=f"copy_{lesson.id}", on_click=copy_to_draft, args=(lesson,),
                       width="stretch", help="Copies its steps into your draft below.")

if refused:
    st.subheader("Lesson files that were not loaded")
    for r in refused:
        st.warning(r.message, icon=":material/block:")

# ----------------------------------------------------------------------------- the draft
st.divider()
st.subheader("Your draft lesson")
steps: list = draft["steps"]
for key, field in (("_draft_title", "title"), ("_draft_summary", "summary")):
    if key not in st.session_state:  # widget state is dropped when this page is left; the draft keeps it
        st.session_state[key] = draft[field]
if not steps:
    st.info("Open any view, set it up, then use **Save this view as a lesson step** in the sidebar: the view, "
            "its model and its settings (what the URL holds) become the next step, with your note.")


def move(i: int, by: int) -> None:
    steps.insert(i + by, steps.pop(i))


def remove(i: int) -> None:
    steps.pop(i)


for i, step in enumerate(steps):
    with st.container(border=True):
        text, b1, b2 = st.columns([8, 1, 1])
        state = ", ".join(f"{k}={v}" for k, v in step.state.items()) or "the view's defaults"
        text.markdown(f"**{i + 1}. {step.view}** · `{state}`")
        text.caption(step.note)
        b1.button("↑", key=f"draft_up_{i}", disabled=i == 0, on_click=move, args=(i, -1), help="Move up")
        b2.button("✕", key=f"draft_rm_{i}", on_click=remove, args=(i,), help="Remove this step")

if steps:
    c1, c2 = st.columns([1, 2])
    draft["title"] = c1.text_input("Title", key="_draft_title", max_chars=lessons.MAX_TITLE)
    draft["summary"] = c2.text_input("Summary (one or two sentences for the list)", key="_draft_summary",
                                     max_chars=lessons.MAX_SUMMARY)
    text = lessons.draft_json(draft["title"], draft["summary"], steps)
    try:
        checked = lessons.parse_lesson(text, "The draft", VIEWS, MODELS)
        problem = None
    except lessons.LessonError as e:
        checked, problem = None, str(e)
    if problem:
        st.warning(problem)
    c1, c2, c3 = st.columns(3)
    if c1.button("Try it", key="draft_try", disabled=checked is None, icon=":material/play_arrow:", width="stretch",
                 help="Step through the draft as the students will."):
        lesson_bar.open_step(checked, 0)
    name = lessons.safe_file_name(draft["title"]) if draft["title"].strip() else "my-lesson"
    c2.download_button("Download as JSON", text, file_name=f"{name}.json", mime="application/json",
                       disabled=checked is None, key="draft_download", icon=":material/download:", width="stretch")
    c3.button("Clear the draft", key="draft_clear", on_click=lambda: steps.clear(), width="stretch")

    st.caption("The draft lives in this browser tab until you download it or save it: a reload starts a new one.")
    st.markdown(f"**Save into the lessons folder** ({FOLDER.name}/), so it appears in the list above:")

    def save() -> None:  # a callback: reads the widgets as they are at the click
        title, summary = st.session_state.get("_draft_title", ""), st.session_state.get("_draft_summary", "")
        file = st.session_state.get("_draft_file") or (title if title.strip() else "my-lesson")
        try:
            path = lessons.save_lesson(FOLDER, file, lessons.draft_json(title, summary, steps), VIEWS, MODELS,
                                       replace=st.session_state.get("_draft_replace", False))
        except (lessons.LessonError, OSError) as e:
            st.session_state["_draft_saved"] = ("error", f"Not saved: {e}")
        else:
            st.session_state["_draft_saved"] = ("success", f"Saved as {FOLDER.name}/{path.name}.")

    c1, c2, c3 = st.columns([2, 1, 1])
    c1.text_input("File name", key="_draft_file", placeholder=name, label_visibility="collapsed",
                  help="Letters, digits and dashes; .json is added.")
    c2.checkbox("Replace a file of that name", key="_draft_replace",
                help="The lessons shipped with genlab are never replaced.")
    c3.button("Save", key="draft_save", on_click=save, disabled=checked is None, icon=":material/save:",
              width="stretch")
kind, msg = st.session_state.pop("_draft_saved", (None, None))
if kind == "error":
    st.error(msg)
elif kind == "success":
    st.success(msg)
