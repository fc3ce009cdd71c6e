"""The Diffusion view in Chromium, on a small conditional diffusion model trained here in a few
seconds: the reverse process scrubbed with the keyboard, a guided sample of a chosen digit with
the classifier's reading, and diffusion and flow matching trained live on 2-d points (Start,
Pause, Step, Stop). GENLAB_SHOTS=folder keeps the screenshots."""
import re

import pytest

from conftest import tiny_diffusion
from test_browser import assert_no_errors, browse, image_sources, open_view, serve, settle, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("checkpoints")
    tiny_diffusion(d)
    yield from serve(d, tmp_path_factory)


@pytest.fixture(scope="module")
def page(server):
    yield from browse(height=1600)


def test_the_reverse_process_is_scrubbed_and_a_chosen_digit_is_guided(server, page):
    url, _ = server
    open_view(page, url, "diffusion?model=ddpm-test&rsteps=10&glabel=7&gw=3", "Diffusion")
    page.get_by_text(re.compile(r"^step 10 of 10")).first.wait_for(timeout=120_000)
    page.get_by_text(re.compile(r"the classifier reads a 7 in \d+%")).first.wait_for(timeout=120_000)
    settle(page)
    before = image_sources(page)
    thumb = page.locator("input[aria-label='Step']")
    thumb.focus()
    for _ in range(3):
        thumb.press("ArrowLeft")
    page.get_by_text(re.compile(r"^step 7 of 10")).first.wait_for(timeout=60_000)
    settle(page)
    after = image_sources(page)
    assert len(after) == len(before) and after != before  # the film's frame changed, nothing else was lost
    assert_no_errors(page)
    shot(page, "diffusion_reverse_step7_guided_7")


def test_diffusion_and_flow_matching_train_live_side_by_side(server, page):
    url, _ = server
    open_view(page, url, "diffusion?model=ddpm-test&lset=moons", "Diffusion")
    page.get_by_role("button", name="Start", exact=True).click()
    svg_panels = ("() => [...document.querySelectorAll(\"img[src^='data:image/svg']\")]"
                  ".filter(i => atob(i.src.split(',')[1]).includes('flow matching')).length")
    page.wait_for_function(f"{svg_panels} >= 1", timeout=120_000)
    page.get_by_text(re.compile(r"running · step \d+")).first.wait_for(timeout=60_000)
    page.get_by_role("button", name="Pause", exact=True).click()
    page.get_by_text(re.compile(r"paused · step \d+")).first.wait_for(timeout=60_000)
    shown = page.get_by_text(re.compile(r"paused · step \d+")).first.inner_text()
    steps = int(re.search(r"step (\d+)", shown).group(1))
    page.get_by_role("button", name="Step", exact=True).click()
    page.get_by_text(re.compile(rf"paused · step {steps + 1}\b")).first.wait_for(timeout=60_000)
    assert_no_errors(page)
    shot(page, "diffusion_live_2d_paused")
    page.get_by_role("button", name="Stop", exact=True).click()
    page.get_by_role("button", name="Start", exact=True).wait_for(timeout=60_000)
    assert_no_errors(page)
