"""The acceptance screenshot: every way a data URL can be wrong has its own message; a
good one comes out as a fresh JPEG without metadata."""

import base64
import io

import pytest
from PIL import Image

from align_workflow.workflow.screenshots import ScreenshotError, decode_screenshot
from tests.support.images import data_url, image_bytes, jpeg_with_exif, png_bomb, png_url


def refused(value):
    with pytest.raises(ScreenshotError) as exc:
        decode_screenshot(value)
    return str(exc.value)


def test_a_png_is_reencoded_as_jpeg():
    shot = decode_screenshot(png_url(size=(120, 80)))
    assert (shot.width, shot.height, shot.source_format) == (120, 80, "PNG")
    image = Image.open(io.BytesIO(shot.jpeg))
    assert image.format == "JPEG" and image.size == (120, 80)
    r, g, b = image.getpixel((60, 40))
    assert abs(r - 20) < 8 and abs(g - 120) < 8 and abs(b - 200) < 8


def test_a_transparent_png_is_flattened_on_white():
    shot = decode_screenshot(png_url(mode="RGBA", color=(0, 0, 0)))
    r, g, b = Image.open(io.BytesIO(shot.jpeg)).getpixel((1, 1))
    assert 110 < r < 145  # half-transparent black on white is mid grey


def test_a_jpeg_loses_its_exif_and_comments():
    raw = jpeg_with_exif()
    original = Image.open(io.BytesIO(raw))
    assert original.getexif() and original.info.get("comment")  # the fixture really carries them
    shot = decode_screenshot(data_url(raw, "image/jpeg"))
    clean = Image.open(io.BytesIO(shot.jpeg))
    assert not clean.getexif()
    assert "exif" not in clean.info and "comment" not in clean.info
    assert b"Jane" not in shot.jpeg and b"ClinicCam" not in shot.jpeg


def test_bad_base64():
    assert "not valid base64" in refused("data:image/png;base64,iVBORw0KGgo*AAAA")


def test_base64_with_junk_in_it_is_not_silently_repaired():
    good = base64.b64encode(image_bytes()).decode()
    assert "not valid base64" in refused("data:image/png;base64," + good[:20] + "\n" + good[20:])


def test_gif():
    raw = image_bytes("GIF")
    assert "a GIF image; only JPEG or PNG" in refused(data_url(raw, "image/png"))


def test_gif_declared_as_gif():
    assert "image/gif; only JPEG or PNG" in refused(data_url(image_bytes("GIF"), "image/gif"))


def test_oversize(settings):
    settings.ALIGN_SCREENSHOT_MAX_BYTES = 1000
    assert "too large" in refused(data_url(image_bytes(size=(400, 400), color=(1, 2, 3)) + b"\0" * 2000))


def test_decompression_bomb():
    # A few hundred bytes claiming 900 million pixels: Pillow's own guard stops it at open.
    assert "decompression bomb" in refused(data_url(png_bomb(30000, 30000)))


def test_decompression_bomb_below_pillows_limit_is_stopped_by_ours():
    # 36 million pixels: under Pillow's default limit, over this app's (25 million).
    message = refused(data_url(png_bomb(6000, 6000)))
    assert "6000×6000 pixels" in message and "decompression bomb" in message


def test_pixel_limit_is_a_setting(settings):
    settings.ALIGN_SCREENSHOT_MAX_PIXELS = 100
    assert "the limit is 100 pixels" in refused(png_url(size=(20, 20)))


def test_truncated_jpeg():
    raw = image_bytes("JPEG", size=(200, 200))
    assert "truncated" in refused(data_url(raw[: len(raw) // 2], "image/jpeg"))


def test_type_and_content_must_agree():
    assert "says it is image/png but contains a JPEG" in refused(data_url(image_bytes("JPEG"), "image/png"))


def test_not_an_image():
    assert "not an image" in refused(data_url(b"hello, not an image at all", "image/png"))


@pytest.mark.parametrize(
    "value,message",
    [
        (None, "missing"),
        ("", "missing"),
        ("https://example.com/shot.png", "not a data URL"),
        ("data:image/png,rawtext", "not base64-encoded"),
        ("data:image/png;base64,", "empty"),
    ],
)
def test_malformed_data_urls(value, message):
    assert message in refused(value)


def test_each_failure_has_its_own_message(settings):
    raw = image_bytes("JPEG", size=(200, 200))
    messages = {
        refused("data:image/png;base64,@@@@"),
        refused(data_url(image_bytes("GIF"), "image/png")),
        refused(data_url(png_bomb())),
        refused(data_url(raw[:300], "image/jpeg")),
    }
    settings.ALIGN_SCREENSHOT_MAX_BYTES = 10
    messages.add(refused(png_url()))
    assert len(messages) == 5


def test_wider_than_a_jpeg_can_be_is_refused_not_a_crash():
    """65535×1 passes the pixel limit; the JPEG encoder then raised OSError."""
    with pytest.raises(ScreenshotError, match="65535×1 pixels"):
        decode_screenshot(png_url(size=(65535, 1)))


def test_any_encoder_failure_is_refused_with_a_message(monkeypatch):
    from PIL import Image

    def broken_save(self, *args, **kwargs):
        raise OSError("encoder error -2 when writing image file")

    value = png_url(size=(40, 30))
    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(ScreenshotError, match=r"could not be re-encoded as JPEG \(OSError\)"):
        decode_screenshot(value)
