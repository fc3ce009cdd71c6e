"""Your Digit in real Chromium: a digit drawn on the pad with mouse moves is read by the
classifier and encoded, Clear starts over, other models (a flow, a GAN) say what they can about
the same drawing, the digit becomes an Interpolation endpoint and is still on the pad when the
user comes back; a file that is not an image gets a clear message, and a picture of dark ink on
white paper is inverted and read. Set GENLAB_SHOTS=folder to keep the screenshots."""
import io
import re

import pytest
from PIL import Image, ImageDraw

from test_browser import assert_no_errors, chart_pictures, open_view, page, server, settle, shot  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PAD = "canvas.digit-pad"  # inside the component's shadow root; Playwright's CSS locators pierce it


def stroke(pg, points, steps=12):
    """One stroke through points given as fractions (x, y) of the pad, with the mouse."""
    box = pg.locator(PAD).bounding_box()
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    pg.mouse.move(*xy[0])
    pg.mouse.down()
    for x, y in xy[1:]:
        pg.mouse.move(x, y, steps=steps)
    pg.mouse.up()


def shot_at(pg, heading, name):
    """Scroll the page's main area to a heading and keep a screenshot of what is in view."""
    pg.get_by_role("heading", name=heading).first.scroll_into_view_if_needed()
    pg.wait_for_timeout(300)
    shot(pg, name)


def pick_model(pg, name):
    """Choose a model in the sidebar's picker (the drawing stays: it lives in the session)."""
    pg.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").click()
    pg.get_by_role("option", name=re.compile(rf"^{re.escape(name)}\b")).click()
    settle(pg)


INK = """c => { const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
               let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i]; return s / 255; }"""


def reads(pg, digit):
    """Wait until the classifier's reading of `digit` is on the page and the run has finished."""
    pg.get_by_text(re.compile(rf"^It reads a {digit}, with probability")).wait_for(timeout=60_000)
    settle(pg)


def test_draw_a_digit_and_see_its_label_and_code(server, page):
    url, _ = server
    open_view(page, url, "digit", "Your Digit")
    page.locator(PAD).wait_for(timeout=30_000)
    page.get_by_text("Draw a digit on the black square").wait_for(timeout=30_000)
    assert_no_errors(page)
    shot(page, "digit_empty")

    stroke(page, [(0.52, 0.15), (0.50, 0.50), (0.48, 0.85)])  # a "1"
    reads(page, 1)
    page.get_by_role("heading", name="Its code").wait_for(timeout=30_000)
    page.get_by_text(re.compile(r"20 dimensions, ‖μ‖ = \d")).wait_for(timeout=30_000)  # the VAE's code...
    page.wait_for_function("() => [...document.querySelectorAll(\"img[src^='data:image/svg']\")].length >= 3")
    assert chart_pictures(page) == 3  # ...its chart, the probabilities, the scores
    assert page.get_by_text("How typical is it for this model?").count() == 1
    assert page.locator("[data-testid='stImage'] img").count() == 4 + 3  # the pictures and the three charts
    assert_no_errors(page)
    shot(page, "digit_drawn_1")
    shot_at(page, "Its code", "digit_drawn_1_code")

    page.locator("button.pad-clear").click()
    page.get_by_text("Draw a digit on the black square").wait_for(timeout=30_000)
    settle(page)
    stroke(page, [(0.25, 0.22), (0.75, 0.22)])  # a "7": the bar...
    stroke(page, [(0.74, 0.23), (0.58, 0.55), (0.45, 0.85)])  # ...and the slanted stroke
    reads(page, 7)
    assert_no_errors(page)
    shot(page, "digit_drawn_7")

    pick_model(page, "realnvp-mnist")  # the same drawing through a flow: its z and bits/dim
    page.get_by_text(re.compile(r"Its z has 784 coordinates")).wait_for(timeout=120_000)
    reads(page, 7)
    assert page.get_by_text(re.compile(r"bits/dim")).count() >= 1
    assert_no_errors(page)
    shot_at(page, "How typical is it for this model?", "digit_flow")
    shot_at(page, "Its code", "digit_flow_code")
    pick_model(page, "gan-mlp-mnist")  # a GAN cannot encode: the page says so
    page.get_by_text(re.compile(r"gan-mlp-mnist has no encoder")).wait_for(timeout=60_000)
    reads(page, 7)
    assert_no_errors(page)
    shot_at(page, "Its code", "digit_gan")
    pick_model(page, "vae-mnist-z20")
    reads(page, 7)

    page.get_by_role("button", name="Use as endpoint A").click()
    page.get_by_text("Interpolation holds your digit as endpoint A.").wait_for(timeout=30_000)
    settle(page)
    page.get_by_role("link", name="Open Interpolation").click()
    page.get_by_role("heading", name="Interpolation").first.wait_for(timeout=60_000)
    settle(page)
    radio = page.locator("[data-testid='stRadio']").filter(has_text="Endpoint a")
    assert radio.get_by_role("radio", name="your digit").is_checked()
    page.get_by_text(re.compile(r"your digit → test image")).first.wait_for(timeout=30_000)
    page.get_by_text("Steps", exact=True).wait_for(timeout=30_000)
    assert_no_errors(page)
    shot(page, "digit_interpolation")

    link = page.locator("[data-testid='stSidebarNav'] a", has_text="Your Digit")
    if not link.is_visible():  # the sidebar shows the first ten views until "View N more" is pressed
        page.locator("[data-testid='stSidebarNav']").get_by_text(re.compile(r"View \d+ more")).click()
    link.click()  # back: the pad is new...
    page.get_by_role("heading", name="Your Digit").first.wait_for(timeout=60_000)
    reads(page, 7)
    for _ in range(50):  # ...and shows the kept drawing (painted when its image has loaded)
        if page.locator(PAD).evaluate(INK) > 500:
            break
        page.wait_for_timeout(100)
    assert page.locator(PAD).evaluate(INK) > 500
    assert_no_errors(page)


def test_a_bad_upload_gets_a_message_and_a_photo_of_paper_is_read(server, page):
    url, _ = server
    open_view(page, url, "digit", "Your Digit")
    page.locator("[data-testid='stRadio']").get_by_text("Upload a picture").click()
    uploader = page.locator("[data-testid='stFileUploader'] input[type='file']")
    uploader.wait_for(state="attached", timeout=30_000)
    settle(page)
    uploader.set_input_files(files=[{"name": "notes.txt", "mimeType": "text/plain",
                                     "buffer": b"shopping list: milk, eggs\n"}])
    page.get_by_text("This file is not an image that can be read").wait_for(timeout=30_000)
    settle(page)
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.get_by_text("What the classifier reads").count() == 0
    shot(page, "digit_upload_error")

    img = Image.new("L", (400, 300), 235)  # dark ink on light paper
    ImageDraw.Draw(img).line([(150, 70), (260, 70), (190, 240)], fill=30, width=18)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    uploader.set_input_files(files=[{"name": "seven.png", "mimeType": "image/png", "buffer": buf.getvalue()}])
    reads(page, 7)
    page.get_by_text(re.compile(r"inverted")).first.wait_for(timeout=30_000)
    assert_no_errors(page)
    shot(page, "digit_upload_ok")
