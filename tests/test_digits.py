"""Bring your own digit: MNIST-style centring checked against hand-computed frames, bad uploads
refused with clear messages or read correctly, scores that agree with the models' own maths, and
the Your Digit view (AppTest) with each model family, its controls and the Interpolation hand-off."""
import base64
import io
import math
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

from conftest import ROOT, charts, is_chart_picture
from genlab import digits as D

APP = str(ROOT / "app.py")


def png(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def grey_png(a: np.ndarray) -> bytes:
    return png(Image.fromarray(np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)))


def seven(size: int = 280, width: int = 22, ink: int = 255, paper: int = 0) -> Image.Image:
    """A '7' drawn like on the pad: a top bar and a slanted stroke."""
    img = Image.new("L", (size, size), paper)
    d = ImageDraw.Draw(img)
    s = size / 280
    d.line([(70 * s, 60 * s), (200 * s, 60 * s), (120 * s, 230 * s)], fill=ink, width=round(width * s), joint="curve")
    return img


def data_url(img: Image.Image) -> str:
    return D.DATA_URL + base64.b64encode(png(img)).decode()


# ----------------------------------------------------------------------------- centring by hand
def test_a_rectangle_is_centred_as_computed_by_hand():
    # a 40 x 20 block of ink (rows 10-49, columns 30-49) in a 100 x 100 picture: the box's longer
    # side 40 -> 20, so the block becomes 20 x 10 of full ink. Its centre of mass is (9.5, 4.5) in
    # its own pixel-centre coordinates; the shift is floor(14 - 9.5 + 0.5) = 5 rows and
    # floor(14 - 4.5 + 0.5) = 10 columns, so it fills rows 5-24 and columns 10-19.
    a = np.zeros((100, 100), np.float32)
    a[10:50, 30:50] = 1
    expected = np.zeros((28, 28), np.float32)
    expected[5:25, 10:20] = 1
    d = D.prepare(grey_png(a))
    assert d.image.shape == (1, 28, 28) and d.image.dtype == torch.float32
    np.testing.assert_allclose(d.image[0].numpy(), expected, atol=1e-6)
    assert d.box == (10, 30, 40, 20) and d.scaled == (20, 10) and d.offset == (5, 10)
    assert d.centre == pytest.approx((14.5, 14.5))  # halves round up
    # a small one (4 x 2) is enlarged to the same 20 x 10 block at the same place
    b = np.zeros((30, 30), np.float32)
    b[3:7, 20:22] = 1
    np.testing.assert_allclose(D.prepare(grey_png(b)).image[0].numpy(), expected, atol=1e-6)


def test_an_l_with_a_half_covered_column_is_centred_as_computed_by_hand():
    # An L in a 64 x 64 picture: a vertical bar 7 wide (rows 8-47, columns 12-18) and a foot
    # (rows 40-47, columns 12-35). Box: 40 rows x 24 columns -> 20 x 12, each output pixel the
    # mean of a 2 x 2 block. Output column 3 covers input columns 18 (ink) and 19 (none): 0.5.
    #   block rows 0-15: columns 0-2 = 1, column 3 = 0.5;  rows 16-19: columns 0-11 = 1.
    # Mass 16 * 3.5 + 4 * 12 = 104. Row centre (3.5 * (0 + ... + 15) + 12 * (16 + ... + 19)) / 104
    # = (420 + 840) / 104 = 12.115; column centre (16 * (0 + 1 + 2 + 0.5 * 3) + 4 * (0 + ... + 11)) / 104
    # = (72 + 264) / 104 = 3.231. Shift: floor(14 - 12.115 + 0.5) = 2, floor(14 - 3.231 + 0.5) = 11.
    a = np.zeros((64, 64), np.float32)
    a[8:48, 12:19] = 1
    a[40:48, 12:36] = 1
    expected = np.zeros((28, 28), np.float32)
    expected[2:18, 11:14] = 1
    expected[2:18, 14] = 0.5
    expected[18:22, 11:23] = 1
    d = D.prepare(grey_png(a))
    np.testing.assert_allclose(d.image[0].numpy(), expected, atol=1e-6)
    assert d.offset == (2, 11)
    assert d.centre == pytest.approx((2 + 1260 / 104, 11 + 336 / 104))


def test_mnist_digits_come_back_unchanged():
    """An MNIST digit already is what the recipe produces: a box of 20 on its longer side, its
    centre of mass within half a pixel of (14, 14). Through a PNG and back, it stays itself."""
    from genlab.data import load_mnist
    x = load_mnist("test").x[:60, 0].numpy()
    for xi in x:
        out = D.prepare(grey_png(xi)).image[0].numpy()
        assert np.abs(out - xi).max() <= 1.5 / 255


def centre_of_mass(a: np.ndarray) -> tuple[float, float]:
    ys, xs = np.mgrid[:a.shape[0], :a.shape[1]]
    return float((a * ys).sum() / a.sum()), float((a * xs).sum() / a.sum())


def test_random_blobs_land_with_their_centre_of_mass_at_the_centre():
    rng = np.random.default_rng(0)
    for _ in range(12):
        h, w = rng.integers(40, 400, size=2)
        img = Image.new("L", (int(w), int(h)), 0)
        d = ImageDraw.Draw(img)
        pts = [(float(rng.uniform(0.1, 0.9) * w), float(rng.uniform(0.1, 0.9) * h)) for _ in range(rng.integers(2, 6))]
        d.line(pts, fill=255, width=int(rng.integers(2, 12)), joint="curve")
        for _ in range(rng.integers(0, 3)):
            cx, cy, r = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h, rng.uniform(2, 15)
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=int(rng.integers(100, 256)))
        out = D.prepare(png(img)).image[0].numpy()
        cy, cx = centre_of_mass(out)
        assert abs(cy - 14) <= 0.5 + 1e-6 and abs(cx - 14) <= 0.5 + 1e-6
        rows, cols = np.flatnonzero(out.max(1) > 0), np.flatnonzero(out.max(0) > 0)
        assert max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) == 20  # the longer side is 20 px
        assert out.min() >= 0 and out.max() <= 1


def test_a_lopsided_shape_keeps_all_its_ink_in_the_frame():
    # a long bar with a heavy blob at its end: its centre of mass lies near one end, so a shift
    # that put it at 14 would push the bar's other end out; the shift is clamped instead
    a = np.zeros((200, 200), np.float32)
    a[10:190, 95:97] = 1
    a[170:190, 60:140] = 1
    d = D.prepare(grey_png(a))
    out = d.image[0].numpy()
    assert np.flatnonzero(out.max(1) > 0).size == 20  # every scaled row is in the frame
    assert d.offset[0] == 0


def test_same_input_same_output():
    a = grey_png(np.asarray(seven(), np.float32) / 255)
    assert torch.equal(D.prepare(a).image, D.prepare(a).image)


# ----------------------------------------------------------------------------- reading uploads
def reference_seven() -> np.ndarray:
    return D.prepare(png(seven())).image[0].numpy()


def test_dark_ink_on_white_paper_is_inverted():
    d = D.prepare(png(seven(ink=0, paper=255)))
    assert d.inverted and any("inverted" in n for n in d.notes)
    np.testing.assert_allclose(d.image[0].numpy(), reference_seven(), atol=1e-6)
    assert not D.prepare(png(seven())).inverted


def test_grey_noisy_paper_reads_like_clean_paper():
    rng = np.random.default_rng(1)
    a = np.asarray(seven(ink=40, paper=200), np.float32) + rng.normal(0, 4, (280, 280))
    d = D.prepare(png(Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))))
    assert d.inverted
    out = d.image[0].numpy()
    assert np.abs(out - reference_seven()).mean() < 0.03


def test_rgba_strokes_on_a_transparent_sheet_are_the_ink():
    stroke = seven()
    for colour in ((0, 0, 0), (255, 255, 255), (30, 60, 200)):  # whatever colour the pen
        sheet = Image.new("RGBA", stroke.size, (255, 255, 255, 0))
        sheet.paste(Image.new("RGBA", stroke.size, colour + (255,)), mask=stroke)
        d = D.prepare(png(sheet))
        assert any("transparent" in n for n in d.notes)
        np.testing.assert_allclose(d.image[0].numpy(), reference_seven(), atol=1e-6)
    # an opaque RGBA picture is read by its colours: its alpha is dropped
    opaque = Image.merge("RGBA", [stroke, stroke, stroke, Image.new("L", stroke.size, 255)])
    np.testing.assert_allclose(D.prepare(png(opaque)).image[0].numpy(), reference_seven(), atol=1e-6)
    la = Image.merge("LA", [Image.new("L", stroke.size, 0), stroke])
    np.testing.assert_allclose(D.prepare(png(la)).image[0].numpy(), reference_seven(), atol=1e-6)


def test_palette_16_bit_one_bit_gif_bmp_and_jpeg_are_converted():
    img = seven()
    ref = reference_seven()
    as16 = Image.fromarray((np.asarray(img, np.uint16) * 257))  # 16-bit grey, white = 65535
    assert as16.mode == "I;16"
    d = D.prepare(png(as16))
    assert any("16-bit" in n for n in d.notes)
    np.testing.assert_allclose(d.image[0].numpy(), ref, atol=1e-6)
    for data in (png(img.convert("P")), png(img, "GIF"), png(img, "BMP"), png(img.convert("RGB"))):
        np.testing.assert_allclose(D.prepare(data).image[0].numpy(), ref, atol=1e-6)
    binary = img.point(lambda v: 255 if v > 127 else 0).convert("1")
    np.testing.assert_allclose(D.prepare(png(binary)).image[0].numpy(),
                               D.prepare(png(binary.convert("L"))).image[0].numpy(), atol=1e-6)
    jpeg = D.prepare(png(img.convert("RGB"), "JPEG", quality=90)).image[0].numpy()
    assert np.abs(jpeg - ref).mean() < 0.05  # lossy, but the same digit


def crafted_png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height and whose data is cut short."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(b"\0" * 100))


@pytest.mark.parametrize("data,words", [
    (b"", "empty"),
    (b"just some text, not a picture\n" * 3, "not an image"),
    (b"%PDF-1.4\n" + b"0" * 500, "not an image"),
    (crafted_png_header(100_000, 100_000), "huge"),
    (crafted_png_header(5000, 5000), "5,000 × 5,000 pixels"),
])
def test_bad_uploads_are_refused_with_a_clear_message(data, words):
    with pytest.raises(D.DigitError, match=words):
        D.prepare(data)


def test_a_too_large_file_and_a_huge_picture_are_refused_before_decoding():
    with pytest.raises(D.DigitError, match=r"the limit is 5 MB"):
        D.prepare(b"\x89PNG" + b"\0" * (D.MAX_BYTES + 1))
    with pytest.raises(D.DigitError, match=r"limit"):
        D.prepare(png(seven()), max_bytes=1000)
    big = png(Image.new("1", (5000, 4000), 0))  # small file, 20 million pixels
    assert len(big) < D.MAX_BYTES
    with pytest.raises(D.DigitError, match=r"5,000 × 4,000 pixels"):
        D.prepare(big)


def test_blank_damaged_and_odd_pictures_give_messages():
    for blank in (Image.new("L", (60, 60), 0), Image.new("L", (60, 60), 255), Image.new("RGBA", (60, 60), (0, 0, 0, 0)),
                  Image.new("L", (60, 60), 128)):
        with pytest.raises(D.DigitError, match="blank"):
            D.prepare(png(blank))
    with pytest.raises(D.DigitError, match="damaged|cut short"):
        D.prepare(png(seven())[:300])
    # a picture larger than the working size is shrunk first and still read
    big = seven().resize((2200, 2200), Image.BILINEAR)
    d = D.prepare(png(big))
    assert any("shrunk" in n for n in d.notes)
    assert np.abs(d.image[0].numpy() - reference_seven()).mean() < 0.03


def test_drawing_urls_are_checked():
    d = D.prepare_drawing(data_url(seven()))
    np.testing.assert_allclose(d.image[0].numpy(), reference_seven(), atol=1e-6)
    with pytest.raises(D.DigitError, match="empty"):
        D.prepare_drawing(data_url(Image.new("RGBA", (280, 280), (0, 0, 0, 255))))
    with pytest.raises(D.DigitError, match="PNG"):
        D.prepare_drawing("data:text/html;base64,PGgxPg==")
    with pytest.raises(D.DigitError, match="damaged"):
        D.prepare_drawing(D.DATA_URL + "!!not base64!!")


# ----------------------------------------------------------------------------- scores
def test_percentile_by_hand():
    ref = [1.0, 2.0, 3.0, 4.0]
    assert D.percentile(0.5, ref) == 0.0
    assert D.percentile(2.5, ref) == 50.0
    assert D.percentile(3.0, ref) == 62.5  # 2 below, 1 tie counted half: 2.5 / 4
    assert D.percentile(9.0, ref) == 100.0
    assert math.isnan(D.percentile(1.0, []))


@pytest.fixture(scope="module")
def loaded(ckpt_dir):
    import genlab
    out = {}
    for name in ("vae-mnist-z20", "ae-mnist-z2", "realnvp-mnist", "rbm-mnist-h500", "ebm-mnist", "gan-mlp-mnist"):
        m, card = genlab.load(ckpt_dir / name, "cpu")
        out[name] = (m.eval().requires_grad_(False), card)
    return out


def test_scores_follow_each_models_own_maths(loaded):
    from genlab.data import load_mnist
    from genlab.metrics import binarized_test_set
    x = load_mnist("test", limit=20).x
    keys = {n: [s.key for s in D.score_kinds(m, log_z=1.5)] for n, (m, _) in loaded.items()}
    assert keys == {"vae-mnist-z20": ["neg_elbo", "iw_nll", "recon_dist"], "ae-mnist-z2": ["recon_dist"],
                    "realnvp-mnist": ["nll"], "rbm-mnist-h500": ["free_energy", "nll", "recon_dist"],
                    "ebm-mnist": ["free_energy"], "gan-mlp-mnist": []}
    vae = loaded["vae-mnist-z20"][0]
    s = D.scores(vae, x, k=32)
    assert torch.equal(s["neg_elbo"], D.scores(vae, x, k=32)["neg_elbo"])  # seeded: the same numbers again
    assert (s["iw_nll"] <= s["neg_elbo"] + 1e-9).all()  # Jensen: -log mean w <= -mean log w
    with torch.no_grad():
        xh = vae.decode(vae.encode(x))
    torch.testing.assert_close(s["recon_dist"], (x - xh).flatten(1).norm(dim=1).double())
    flow = loaded["realnvp-mnist"][0]
    with torch.no_grad():
        nll = -flow.log_prob(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(D.scores(flow, x)["nll"], nll.double())
    rbm = loaded["rbm-mnist-h500"][0]
    s = D.scores(rbm, x, log_z=1.5)
    v = binarized_test_set(x).flatten(1)  # F(v) = -b.v - sum_j softplus(c_j + v.W_j), by hand
    fe = -(v @ rbm.b) - torch.nn.functional.softplus(v @ rbm.W + rbm.c).sum(1)
    torch.testing.assert_close(s["free_energy"], fe.double())
    torch.testing.assert_close(s["nll"], fe.double() + 1.5)
    ebm = loaded["ebm-mnist"][0]
    with torch.no_grad():
        torch.testing.assert_close(D.scores(ebm, x)["free_energy"], ebm.energy(x).double())
    assert D.scores(loaded["gan-mlp-mnist"][0], x) == {}


def test_codes_have_a_spread_only_where_the_encoder_has_one(loaded):
    x = D.prepare(png(seven())).image[None]
    mu, std = D.code(loaded["vae-mnist-z20"][0], x)
    assert mu.shape == std.shape == (1, 20) and (std > 0).all()
    mu, std = D.code(loaded["ae-mnist-z2"][0], x)
    assert mu.shape == (1, 2) and std is None
    z, std = D.code(loaded["realnvp-mnist"][0], x)
    assert z.shape == (1, 784) and std is None


# ----------------------------------------------------------------------------- the view (AppTest)
def pictures(at) -> list:
    """The page's images that are not charts (charts are SVG pictures by default)."""
    return [e for e in at.get("image") if not is_chart_picture(e)]


@pytest.fixture
def app(ckpt_dir, monkeypatch):
    monkeypatch.setenv("GENLAB_CHECKPOINTS", str(ckpt_dir))

    def make(page="views/digit.py", drawing=None, **params):
        at = AppTest.from_file(APP, default_timeout=180)
        for k, v in params.items():
            at.query_params[k] = v
        if drawing is not None:
            at.session_state["yd_drawing"] = drawing  # stands in for strokes on the pad
        at.run()
        at.switch_page(page).run()
        assert not at.exception, at.exception
        return at
    return make


def texts(at) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "error", "subheader") for e in at.get(kind)]
    return " ".join(str(p) for p in parts)


def subheaders(at) -> list[str]:
    return [s.value for s in at.subheader]


def test_the_view_asks_for_a_digit_then_shows_what_the_model_makes_of_a_drawing(app):
    at = app()
    assert at.radio(key="yd_src").value == "draw"
    assert any("Draw a digit on the black square" in i.value for i in at.info)
    assert "What the classifier reads" not in subheaders(at)
    at.session_state["yd_drawing"] = data_url(seven())
    at.run()
    assert not at.exception and not at.error
    assert subheaders(at) == ["What the classifier reads", "How typical is it for this model?", "Its code",
                              "Use it in Interpolation"]
    assert len(pictures(at)) == 4  # as read, as the model sees it, reconstruction, nearest training digit
    assert "It reads a **" in texts(at)
    assert "Ink box" in texts(at) and "(14, 14)" in texts(at)


def test_switching_between_drawing_and_uploading(app):
    at = app(drawing=data_url(seven()))
    assert "What the classifier reads" in subheaders(at)
    at.radio(key="yd_src").set_value("upload").run()
    assert at.file_uploader(key="yd_file")  # the uploader replaces the pad...
    assert "What the classifier reads" not in subheaders(at)  # ...and the drawing is not used
    assert any("Upload a picture of one handwritten digit" in i.value for i in at.info)
    at.file_uploader(key="yd_file").set_value(("seven.png", png(seven(ink=0, paper=255)), "image/png")).run()
    assert not at.exception and not at.error
    assert "What the classifier reads" in subheaders(at)
    assert "inverted" in texts(at)
    at.file_uploader(key="yd_file").set_value(("notes.txt", b"not a picture at all", "text/plain")).run()
    assert not at.exception
    assert [e.value for e in at.error] == ["This file is not an image that can be read (PNG, JPEG, GIF, BMP, WEBP). "
                                           "Upload a picture of one digit."]
    assert "What the classifier reads" not in subheaders(at)
    at.file_uploader(key="yd_file").set_value(("huge.png", png(Image.new("1", (5000, 4000), 0)), "image/png")).run()
    assert "5,000 × 4,000 pixels" in at.error[0].value and not at.exception
    at.file_uploader(key="yd_file").set_value(("blank.png", png(Image.new("L", (50, 50), 255)), "image/png")).run()
    assert "blank" in at.error[0].value and not at.exception
    at.radio(key="yd_src").set_value("draw").run()  # back to the pad: the drawing is still there
    assert "What the classifier reads" in subheaders(at) and not at.error


def test_an_empty_canvas_says_so(app):
    at = app(drawing=data_url(Image.new("RGBA", (280, 280), (0, 0, 0, 255))))
    assert [e.value for e in at.error] == ["The canvas is empty: draw a digit on it."]
    assert not at.exception


@pytest.mark.parametrize("model,expect,lacks", [
    ("vae-mnist-z20", ["−ELBO", "importance-weighted NLL, k=64", "distance to its reconstruction", "‖μ‖ ="],
     ["has no encoder"]),
    ("ae-mnist-z2", ["distance to its reconstruction", "no posterior spread"], ["−ELBO", "has no encoder"]),
    ("realnvp-mnist", ["exact NLL", "bits/dim", "coordinates (as many as pixels)"],
     ["has no encoder", "reconstruction"]),
    ("rbm-mnist-h500", ["free energy F(v)", "NLL = F(v) + log Z", "has no encoder"], ["‖μ‖"]),
    ("ebm-mnist", ["energy E(x)", "has no encoder"], ["reconstruction", "‖μ‖"]),
    ("gan-mlp-mnist", ["has no encoder", "reports no likelihood, energy or reconstruction"],
     ["percentile", "‖μ‖"]),
])
def test_each_family_shows_what_it_can_say_about_the_digit(app, model, expect, lacks):
    at = app(drawing=data_url(seven()), model=model)
    assert not at.exception and not at.error
    shown = texts(at) + " " + " ".join(str(row) for df in at.dataframe for row in df.value.to_dict("records"))
    for words in expect:
        assert words in shown, (model, words)
    for words in lacks:
        assert words not in shown, (model, words)
    assert "It reads a **" in shown  # the classifier reads every family's digit
    n_charts = len(charts(at))
    assert n_charts == 1 + (model != "gan-mlp-mnist") + (model in ("vae-mnist-z20", "ae-mnist-z2", "realnvp-mnist"))
    if model != "gan-mlp-mnist":
        df = at.dataframe[0].value
        assert 0 <= float(df["percentile"].iloc[0]) <= 100


def test_endpoint_buttons_hand_the_digit_to_interpolation(app):
    at = app(drawing=data_url(seven()))
    at.button(key="yd_use_a").click().run()
    held = at.session_state["your_digit_a"]
    assert isinstance(held, torch.Tensor) and held.shape == (1, 28, 28) and held.device.type == "cpu"
    assert "your_digit_b" not in at.session_state
    assert "endpoint A" in texts(at)
    assert any("interpolation" in p.proto.page for p in at.get("page_link"))  # the way there
    at.switch_page("views/interpolation.py").run()
    assert not at.exception
    a, b = at.radio(key="a_src"), at.radio(key="b_src")
    assert "your digit" in a.options and a.value == "your digit"
    assert "your digit" not in b.options  # B holds none: no such choice, a caption and a link instead
    assert "Use as endpoint B" in texts(at) and at.get("page_link")
    captions = [e.proto.imgs[0].caption for e in pictures(at)]
    assert len(captions) == 2 and all(c.split(": ", 1)[1].startswith("your digit → test image") for c in captions)
    before = [e.proto.imgs[0].url for e in pictures(at)]
    at.switch_page("views/digit.py").run()
    at.button(key="yd_use_b").click().run()
    at.switch_page("views/interpolation.py").run()
    assert "your digit" in at.radio(key="b_src").options
    at.radio(key="b_src").set_value("your digit").run()
    assert not at.exception
    assert all("your digit → your digit" in e.proto.imgs[0].caption for e in pictures(at))
    assert [e.proto.imgs[0].url for e in pictures(at)] != before


def test_a_link_asking_for_your_digit_without_one_falls_back_to_a_test_image(app):
    at = app("views/interpolation.py", a_src="your digit", b_src="your digit")
    assert at.radio(key="a_src").value == "test image" and at.radio(key="b_src").value == "test image"
    assert "your digit" not in at.radio(key="a_src").options
    assert len(pictures(at)) == 2 and not at.exception


def test_a_model_that_cannot_encode_offers_no_digit_endpoint(app):
    at = app(drawing=data_url(seven()), model="gan-mlp-mnist")
    at.button(key="yd_use_a").click().run()
    assert "models that can encode" in texts(at)
    at.switch_page("views/interpolation.py").run()
    assert not at.exception
    assert at.radio(key="a_src").options == ["seed"]
    assert "gan-mlp-mnist cannot" in texts(at)
