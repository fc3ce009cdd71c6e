"""A lesson stepped through in a real Chromium: start it on the Lessons page, Next, Next,
Previous; each step shows its view's heading, its note above the view and a widget holding the
step's value. Uses the server and browser of test_browser.py, on a lessons folder of its own.
Set GENLAB_SHOTS=folder to keep the screenshots."""
import json
import re

import pytest

from test_browser import assert_no_errors, open_view, page, server, settle, shot  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TOUR = {"version": 1, "title": "A first look at VAEs", "summary": "Samples, the 2-d manifold and a path between digits.",
        "steps": [
            {"view": "Latent Explorer", "state": {"model": "vae-mnist-z20", "seed": 3, "temp": 0.5},
             "note": "Each tile decodes one code z drawn from the prior at **temperature 0.5**. "
                     "**Try:** move the temperature to 1.5. What happens to the variety of the digits?"},
            {"view": "VAE Manifold", "state": {"model": "vae-mnist-z2", "res": 12},
             "note": "A VAE with a **2-d** latent: the decoded grid beside the encoded test set. "
                     "Find where 4s turn into 9s on both sides."},
            {"view": "Interpolation", "state": {"model": "vae-mnist-z20", "method": "lerp", "steps": 7},
             "note": "A straight path (**lerp**) between two encoded test digits, in 7 steps. "
                     "Watch the norm of z dip in the middle."}]}


@pytest.fixture(scope="module", autouse=True)
def lessons_folder(tmp_path_factory):
    """The server (started after this, autouse fixtures come first) reads lessons from here."""
    folder = tmp_path_factory.mktemp("lessons")
    (folder / "tour.json").write_text(json.dumps(TOUR))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENLAB_LESSONS", str(folder))
        yield folder


def slider_value(pg, label):
    return pg.locator("[data-testid='stSlider']").filter(has_text=label).get_by_role("slider").input_value()


def at_step(pg, k, heading):
    """Wait for step k's view, then check its note sits above the view's heading."""
    pg.get_by_role("heading", name=heading, exact=True).first.wait_for(timeout=60_000)
    note = pg.locator(".st-key-lesson_note")
    note.get_by_text(TOUR["steps"][k - 1]["note"].split("**")[0].strip()).wait_for(timeout=30_000)
    settle(pg)
    bar = pg.locator(".st-key-lesson_bar")
    assert bar.get_by_text(f"step {k} of 3").count() == 1
    title = pg.get_by_role("heading", name=heading, exact=True).first
    assert bar.bounding_box()["y"] + bar.bounding_box()["height"] <= title.bounding_box()["y"]  # above the view
    assert_no_errors(pg)


def test_a_lesson_is_stepped_through_in_the_browser(server, page):  # noqa: F811 (fixtures)
    url, _ = server
    open_view(page, url, "lessons", "Lessons")
    card = page.locator(".st-key-lesson_tour")
    card.get_by_text("A first look at VAEs").wait_for(timeout=30_000)
    assert card.get_by_text("3 steps:").count() == 1
    shot(page, "lessons_list")
    card.get_by_role("button", name="Start").click()

    at_step(page, 1, "Latent Explorer")
    assert slider_value(page, "Temperature") == "0.5"
    page.wait_for_url(re.compile(r"[?&]temp=0\.5(&|$)"))
    assert page.get_by_role("button", name="← Previous").is_disabled()
    shot(page, "lesson_step1")

    page.get_by_role("button", name="Next →").click()
    at_step(page, 2, "VAE Manifold")
    assert slider_value(page, "Resolution") == "12"
    model = page.locator("[data-testid='stSidebar']").get_by_role("combobox", name="Model")
    assert model.input_value().startswith("vae-mnist-z2 ")  # the step's model is picked
    assert "model=vae-mnist-z2" in page.url
    shot(page, "lesson_step2")

    page.get_by_role("button", name="Next →").click()
    at_step(page, 3, "Interpolation")
    assert page.get_by_role("radio", name="lerp", exact=True).is_checked()
    assert slider_value(page, "Steps") == "7"
    assert page.get_by_role("button", name="Finish").count() == 1  # the last step
    shot(page, "lesson_step3")

    page.get_by_role("button", name="← Previous").click()
    at_step(page, 2, "VAE Manifold")
    assert slider_value(page, "Resolution") == "12"
    shot(page, "lesson_step2_again")

    page.get_by_role("button", name="Leave the lesson").click()
    page.locator(".st-key-lesson_bar").wait_for(state="detached", timeout=30_000)
    settle(page)
    assert page.get_by_role("heading", name="VAE Manifold", exact=True).count() == 1
    assert_no_errors(page)
