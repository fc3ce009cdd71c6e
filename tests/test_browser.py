"""The real thing: `streamlit run app.py` on a free port, every view in headless Chromium,
a slider moved with the keyboard, the picture changes, and no error box appears anywhere.

Chromium comes from the system (Debian's `chromium`; .ci/run installs it); Playwright only
drives it. Set GENLAB_SHOTS=folder to keep the screenshots.
"""
import os
import re
import shutil
from pathlib import Path

import pytest

from conftest import streamlit_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
VIEWS = [("", "genlab"), ("latent_explorer", "Latent Explorer"), ("interpolation", "Interpolation"),
         ("manifold", "VAE Manifold"), ("training", "Training")]


def chromium_path() -> str:
    path = os.environ.get("GENLAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        msg = "no chromium on PATH (Debian: apt-get install -y chromium; or set GENLAB_CHROMIUM)"
        if os.environ.get("CI"):
            pytest.fail(msg)  # in CI the browser test must run, never skip
        pytest.skip(msg)
    return path


def serve(ckpt_dir, tmp_path_factory):
    """A server on these checkpoints for a module's tests: yields (url, log path); no traceback
    may reach its log."""
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    with streamlit_server(ckpt_dir, log) as url:
        yield url, log
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def browse(height: int = 1000):
    """Chromium (the system's) driven by Playwright: yields one page 1400 px wide."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=ARGS)
        yield browser.new_page(viewport={"width": 1400, "height": height})
        browser.close()


@pytest.fixture(scope="module")
def server(ckpt_dir, tmp_path_factory):
    yield from serve(ckpt_dir, tmp_path_factory)


@pytest.fixture(scope="module")
def page(server):
    yield from browse()


def shot(pg, name):
    folder = os.environ.get("GENLAB_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def settle(pg, timeout=60):
    """Wait until the app has stopped running its script."""
    pg.wait_for_timeout(300)
    pg.wait_for_selector("[data-testid='stStatusWidget']", state="detached", timeout=timeout * 1000)


def assert_no_errors(pg):
    assert pg.locator("[data-testid='stException']").count() == 0
    assert pg.locator("[data-testid='stAlertContentError']").count() == 0


def open_view(pg, url, path, title):
    """Go to a view and wait until its script has finished running."""
    pg.goto(f"{url}/{path}")
    pg.get_by_role("heading", name=title).first.wait_for(timeout=60_000)
    settle(pg)


def chart_pictures(pg) -> int:
    """How many images on the page are charts drawn as SVG pictures (genlab/figsvg.py), all loaded."""
    return pg.evaluate("""() => [...document.querySelectorAll("img[src^='data:image/svg']")]
        .filter(i => i.complete && i.naturalWidth > 0 && atob(i.src.split(',')[1]).includes('genlab-chart')).length""")


# the page's pictures in order, without the charts drawn as SVG pictures
PICTURES = ("[...document.querySelectorAll(\"[data-testid='stImage'] img\")].filter(i => !(i.src.startsWith("
            "'data:image/svg') && atob(i.src.split(',')[1]).includes('genlab-chart')))")


def image_sources(pg):
    return pg.evaluate(f"() => {PICTURES}.map(e => e.src)")


@pytest.mark.parametrize("path,title", VIEWS)
def test_view_loads_without_errors(server, page, path, title):
    url, _ = server
    open_view(page, url, path, title)
    shot(page, f"{path or 'home'}_loaded")
    page.locator("[data-testid='stSidebar']").get_by_text("Model", exact=True).wait_for(timeout=30_000)
    assert_no_errors(page)
    if path != "training":
        page.wait_for_function("document.querySelectorAll(\"[data-testid='stImage'] img\").length > 0", timeout=30_000)
    shot(page, path or "home")


def test_moving_a_slider_changes_the_picture(server, page):
    url, _ = server
    open_view(page, url, "latent_explorer", "Latent Explorer")
    # every picture drawn, the directions' too (found once per model: the test codes' PCA)
    page.wait_for_function("document.querySelectorAll(\"[data-testid='stImage'] img\").length >= 5", timeout=90_000)
    settle(page)
    before = image_sources(page)
    thumb = page.locator("[data-testid='stSlider']").filter(has_text="Scale of the means").get_by_role("slider")
    thumb.focus()
    for _ in range(8):
        thumb.press("ArrowRight")
    page.wait_for_function(  # the pictures, not the charts (the explained variance is a chart picture)
        f"before => {{ const now = {PICTURES}.map(e => e.src);"
        " return now.length === before.length && now.some((s, i) => s !== before[i]); }",
        arg=before, timeout=30_000)
    page.wait_for_url(re.compile(r"[?&]sm=0\.8(&|$)"), timeout=30_000)  # all eight presses arrived
    settle(page)
    after = image_sources(page)
    assert after[2] != before[2]  # the mean/std scaling grid
    assert_no_errors(page)
    shot(page, "latent_explorer_moved")


def test_the_manifold_decodes_a_point_picked_by_number_or_by_a_click(server, page):
    url, _ = server
    # by default the charts are pictures: no Plotly on the page, every chart's image drawn
    open_view(page, url, "manifold?model=vae-mnist-z2", "VAE Manifold")
    settle(page)
    assert page.locator("[data-testid='stPlotlyChart']").count() == 0
    # the scatter, and the AE's and the VAE's (below the classifier's map, which takes a few seconds at first)
    page.wait_for_function("""() => [...document.querySelectorAll("img[src^='data:image/svg']")]
        .filter(i => i.complete && i.naturalWidth > 0 && atob(i.src.split(',')[1]).includes('genlab-chart')).length >= 3""",
                           timeout=120_000)
    assert chart_pictures(page) == 3
    box = page.locator("input[aria-label='Decode test image no.']")
    box.fill("7")
    box.press("Enter")
    page.get_by_text(re.compile(r"^Test image 7$")).first.wait_for(timeout=30_000)
    page.wait_for_url(re.compile(r"[?&]pt=7(&|$)"), timeout=30_000)
    assert_no_errors(page)
    shot(page, "manifold_picked")
    # with interactive charts (a link can ask for them), a click on a point decodes it
    open_view(page, url, "manifold?model=vae-mnist-z2&plotly=1", "VAE Manifold")
    page.wait_for_function("() => { const gd = document.querySelector(\"[data-testid='stPlotlyChart'] .js-plotly-plot\");"
                           " return gd && gd._fullLayout && gd._fullData && gd._fullData.length > 0; }", timeout=30_000)
    # screen position of the first point of the first trace, from plotly's own axis maps,
    # read once the chart has stopped resizing to its column
    locate = """() => {
        const gd = document.querySelector("[data-testid='stPlotlyChart'] .js-plotly-plot");
        const fl = gd._fullLayout, tr = gd._fullData[0];
        const r = gd.getBoundingClientRect();
        return [r.left + fl._size.l + fl.xaxis.l2p(tr.x[0]), r.top + fl._size.t + fl.yaxis.l2p(tr.y[0])];
    }"""
    x, y = page.evaluate(locate)
    for _ in range(20):
        page.wait_for_timeout(500)
        x2, y2 = page.evaluate(locate)
        if abs(x2 - x) < 0.5 and abs(y2 - y) < 0.5:
            break
        x, y = x2, y2
    page.mouse.move(x, y)  # scattergl picks the point under the pointer on hover
    page.wait_for_timeout(500)
    page.mouse.click(x, y)
    try:
        page.get_by_text(re.compile(r"^Test image \d+$")).first.wait_for(timeout=30_000)
    finally:
        shot(page, "manifold_clicked")
    settle(page)
    assert_no_errors(page)
    shot(page, "manifold_clicked")


def test_the_flow_section_traces_a_digit_and_answers_a_new_one(server, page):
    url, _ = server
    open_view(page, url, "flow?model=realnvp-mnist", "Flow")
    page.get_by_text("How likely are things that are not digits?").wait_for(timeout=60_000)
    page.wait_for_function("document.querySelectorAll(\"[data-testid='stImage'] img\").length >= 3", timeout=60_000)
    assert page.get_by_text(re.compile(r"of 784 pixels")).count() >= 1
    # bits/dim per epoch and the histogram, as pictures (no Plotly by default)
    page.wait_for_function("""() => [...document.querySelectorAll("img[src^='data:image/svg']")]
        .filter(i => atob(i.src.split(',')[1]).includes('genlab-chart')).length >= 2""", timeout=120_000)
    settle(page)
    assert chart_pictures(page) == 2 and page.locator("[data-testid='stPlotlyChart']").count() == 0
    shot(page, "flow")
    before = image_sources(page)
    box = page.locator("[data-testid='stNumberInput']").filter(has_text="Test image").locator("input")
    box.fill("5")
    box.press("Enter")
    page.wait_for_function(
        f"first => {{ const s = {PICTURES}[0]; return s && s.src !== first; }}",
        arg=before[0], timeout=30_000)
    settle(page)
    assert_no_errors(page)
    shot(page, "flow_digit5")


def test_an_rbm_chain_plays_frame_by_frame(server, page):
    url, _ = server
    open_view(page, url, "energy?model=rbm-mnist-h500", "Energy Models")
    page.get_by_text("Free energy of test digits, noise and the model's own samples").wait_for(timeout=60_000)
    page.wait_for_function("document.querySelectorAll(\"[data-testid='stImage'] img\").length >= 4", timeout=60_000)
    shot(page, "energy")
    before = image_sources(page)
    thumb = page.locator("[data-testid='stSlider']").filter(has_text="Frame").get_by_role("slider")
    thumb.focus()
    thumb.press("Home")  # back to the first frame: the starting noise
    page.wait_for_function(
        f"second => {{ const s = {PICTURES}[1]; return s && s.src !== second; }}", arg=before[1], timeout=30_000)
    settle(page)
    page.get_by_text("16 chains after 0 of 200 steps").wait_for(timeout=10_000)
    assert_no_errors(page)
    shot(page, "energy_first_frame")
    page.locator("[data-testid='stCheckbox']").filter(has_text="Play").locator("label").click()  # the Play toggle
    page.wait_for_function("[...document.querySelectorAll(\"[data-testid='stImage'] img\")]"
                           ".some(e => e.src.endsWith('.gif') && e.complete && e.naturalWidth > 0)", timeout=30_000)
    settle(page)
    assert_no_errors(page)
    shot(page, "energy_playing")


def test_gan_live_start_shows_the_grid_changing_then_pause_and_stop(server, page):
    url, _ = server
    open_view(page, url, "gan_live", "GAN Live")
    page.get_by_role("button", name="Start", exact=True).click()
    grid = "[data-testid='stImage'] img"
    page.wait_for_selector(grid, timeout=60_000)
    first = page.eval_on_selector(grid, "e => e.src")
    page.wait_for_function("([sel, first]) => { const e = document.querySelector(sel); return e && e.src !== first; }",
                           arg=[grid, first], timeout=60_000)  # the fixed-noise grid redraws while training
    page.get_by_role("button", name="Pause", exact=True).click()
    page.get_by_text(re.compile(r"^paused")).first.wait_for(timeout=30_000)
    settle(page)
    page.get_by_role("button", name="Step both", exact=True).click()
    settle(page)
    page.get_by_role("button", name="Stop", exact=True).click()
    controls = page.locator(".st-key-g_controls")
    controls.get_by_text(re.compile(r"^stopped")).first.wait_for(timeout=30_000)
    # Streamlit keeps the paused page's elements (faded) until the new run has drawn its own, so
    # wait for the finished page: one save box, no stale one beside it.
    page.wait_for_function("() => [...document.querySelectorAll('button')]"
                           ".filter(b => b.innerText.trim() === 'Save as checkpoint').length === 1", timeout=30_000)
    settle(page)
    assert page.get_by_role("button", name="Save as checkpoint", exact=True).count() == 1
    assert controls.get_by_role("button", name="Resume").count() == 0  # nothing stale from the paused state
    assert page.get_by_text("Change the game while paused").count() == 0
    assert_no_errors(page)
    shot(page, "gan_live")
    page.get_by_role("button", name="Reset", exact=True).click()
    try:
        page.get_by_role("button", name="Start", exact=True).wait_for(timeout=30_000)
    finally:
        shot(page, "gan_live_reset")


def test_compare_two_models_with_neighbours_and_a_new_seed(server, page):
    url, _ = server
    open_view(page, url, "compare?models=vae-mnist-z20,gan-mlp-mnist&samples=16&nn=pixels", "Compare models")
    page.wait_for_function("document.querySelectorAll(\"[data-testid='stImage'] img\").length >= 6", timeout=60_000)
    assert_no_errors(page)
    page.locator("[data-testid='stDataFrame']").first.wait_for(timeout=30_000)  # the metrics table
    shot(page, "compare")
    before = image_sources(page)
    page.locator("[data-testid='stNumberInputStepUp']").first.click()  # seed 0 -> 1
    page.wait_for_function(f"([first]) => {{ const e = {PICTURES}[0]; return e && e.src !== first; }}",
                           arg=[before[0]], timeout=60_000)
    settle(page)
    assert "seed=1" in page.url and "models=vae-mnist-z20%2Cgan-mlp-mnist" in page.url.replace(",", "%2C")
    assert_no_errors(page)


def test_structure_search_runs_from_a_link_and_shows_its_results(server, page):
    url, _ = server
    open_view(page, url, "structure?s_data=yeast&s_layers=3&s_budget=10&s_offspring=2", "Structure Search")
    assert page.locator("input[aria-label='Depth (layers)']").input_value() == "3"  # the link's settings
    page.get_by_role("button", name="Start", exact=True).click()
    page.get_by_text("search iteration", exact=False).first.wait_for(timeout=60_000)
    page.get_by_text("Test bits per dimension").wait_for(timeout=180_000)  # search, full training, results
    settle(page)
    # masks, offspring, final curves, data vs samples: pictures (no Plotly by default)
    assert page.locator("img[src^='data:image/svg']").count() >= 4 and page.locator(".js-plotly-plot").count() == 0
    assert page.get_by_text("Lowest on test:", exact=False).count() == 1  # the table itself is a canvas
    assert_no_errors(page)
    shot(page, "structure_search")
    page.get_by_role("button", name="New search", exact=True).click()
    page.get_by_role("button", name="Start", exact=True).wait_for(timeout=30_000)


def test_a_direction_slider_moves_the_codes_and_the_classifier_map_is_drawn(server, page):
    url, _ = server
    open_view(page, url, "latent_explorer?dir0=towards%203", "Latent Explorer")
    page.get_by_text("Meaningful directions").first.wait_for(timeout=90_000)
    page.wait_for_function(f"() => {PICTURES}.length >= 8", timeout=90_000)
    settle(page)
    before = image_sources(page)
    thumb = page.locator("input[aria-label='t1']")
    thumb.focus()
    for _ in range(5):
        thumb.press("ArrowRight")
    page.wait_for_url(re.compile(r"[?&]t0=0\.5(&|$)"), timeout=30_000)
    settle(page)
    after = image_sources(page)
    assert len(after) == len(before) and after[:5] == before[:5]  # only the directions' pictures changed
    assert after[6] != before[6]  # the moved codes
    assert_no_errors(page)
    shot(page, "latent_explorer_direction")
    open_view(page, url, "manifold?model=vae-mnist-z2&cmap=1", "VAE Manifold")
    page.get_by_text(re.compile("the 12 least sure decodes")).first.wait_for(timeout=120_000)
    settle(page)
    assert page.get_by_text("The classifier's map").count() == 1
    assert_no_errors(page)
    shot(page, "manifold_classifier_map")
