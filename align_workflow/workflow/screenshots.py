"""The ClinCheck acceptance screenshot: from the browser's data URL to clean JPEG bytes.

The provider portal captures the plan page with html2canvas and posts
`canvas.toDataURL()`: `data:image/png;base64,...` (or image/jpeg). Everything about it
is untrusted, so it is checked step by step, each failure with its own message:
the data URL's form, the size of the encoded text (before decoding), strict base64,
the image format (JPEG or PNG only, by content), the pixel count (read from the header,
before any pixels are decoded: a small file can declare a huge image), and a full
decode (a truncated file fails here). The image is then re-encoded as a fresh JPEG,
which keeps the pixels and drops everything else (EXIF, comments, text chunks); an
image that cannot be (wider or taller than JPEG's 65,500 pixels, or anything else the
encoder refuses) is refused with a message too.

`check_data_url` is the cheap part (the form of the data URL and its size, no
decoding), for the form and the engine's check before the case is claimed;
`decode_screenshot` does everything and runs only once the case is claimed, so that
twelve clicks on one case decode one image, not twelve.
"""

import base64
import binascii
import io
import re
import warnings
from dataclasses import dataclass

from django.conf import settings
from PIL import Image, UnidentifiedImageError

from .effects import EffectInputError

_DATA_URL = re.compile(
    r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,", re.ASCII
)
_FORMAT_OF_MIME = {"image/png": "PNG", "image/jpeg": "JPEG", "image/jpg": "JPEG"}


class ScreenshotError(EffectInputError):
    """The acceptance screenshot cannot be used; the message says why."""


@dataclass(frozen=True)
class Screenshot:
    jpeg: bytes
    width: int
    height: int
    source_format: str


def _megabytes(n):
    return f"{n / (1024 * 1024):.1f} MB"


def _sniff(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:2] == b"BM":
        return "BMP"
    return ""


# The largest width or height a JPEG can have (libjpeg's JPEG_MAX_DIMENSION).
JPEG_MAX_DIMENSION = 65500


def check_data_url(data_url) -> tuple[str, str]:
    """The cheap checks (no decoding): (format, base64 payload), or ScreenshotError."""
    max_bytes = settings.ALIGN_SCREENSHOT_MAX_BYTES
    if not isinstance(data_url, str) or not data_url.strip():
        raise ScreenshotError("The acceptance screenshot is missing.")
    match = _DATA_URL.match(data_url)
    if not match:
        raise ScreenshotError("The acceptance screenshot is not a data URL (expected data:image/png;base64,...).")
    mime = (match["mime"] or "").lower()
    if mime not in _FORMAT_OF_MIME:
        raise ScreenshotError(
            f"The acceptance screenshot is {mime or 'of no stated type'}; only JPEG or PNG images are accepted."
        )
    if not match["b64"]:
        raise ScreenshotError("The acceptance screenshot is not base64-encoded.")
    payload = data_url[match.end() :]
    if len(payload) > max_bytes:
        raise ScreenshotError(
            f"The acceptance screenshot is too large: {_megabytes(len(payload))} encoded "
            f"(the limit is {_megabytes(max_bytes)})."
        )
    return _FORMAT_OF_MIME[mime], payload


def decode_screenshot(data_url) -> Screenshot:
    """Validate the data URL and return the screenshot re-encoded as JPEG, or raise
    ScreenshotError saying what is wrong."""
    max_pixels = settings.ALIGN_SCREENSHOT_MAX_PIXELS
    stated, payload = check_data_url(data_url)
    mime = {"PNG": "image/png", "JPEG": "image/jpeg"}[stated]
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ScreenshotError(
            "The acceptance screenshot is not valid base64 (it may have been cut off or altered)."
        ) from None
    if not raw:
        raise ScreenshotError("The acceptance screenshot is empty.")

    actual = _sniff(raw)
    if actual not in ("JPEG", "PNG"):
        what = f"a {actual} image" if actual else "not an image this app can read"
        raise ScreenshotError(f"The acceptance screenshot is {what}; only JPEG or PNG images are accepted.")
    if actual != stated:
        raise ScreenshotError(f"The acceptance screenshot says it is {mime} but contains a {actual} image.")

    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; treat it as the error it is.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw), formats=[actual])
            width, height = image.size
            if width <= 0 or height <= 0:
                raise ScreenshotError("The acceptance screenshot has no pixels.")
            if width * height > max_pixels:
                raise ScreenshotError(
                    f"The acceptance screenshot is {width}×{height} pixels ({width * height:,}); the limit is "
                    f"{max_pixels:,} pixels, so it was not decoded (a small file claiming a huge image is a "
                    "decompression bomb)."
                )
            if width > JPEG_MAX_DIMENSION or height > JPEG_MAX_DIMENSION:
                raise ScreenshotError(
                    f"The acceptance screenshot is {width}×{height} pixels; a picture of the plan page is at most "
                    f"{JPEG_MAX_DIMENSION:,} pixels wide and high, so it was not stored."
                )
            image.load()
    except ScreenshotError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ScreenshotError(
            "The acceptance screenshot claims more pixels than this app will decode (a decompression bomb)."
        ) from None
    except UnidentifiedImageError:
        raise ScreenshotError(f"The acceptance screenshot is not a readable {actual} image.") from None
    except (OSError, SyntaxError, ValueError) as exc:
        if "truncated" in str(exc).lower():
            raise ScreenshotError(
                f"The acceptance screenshot is truncated: the {actual} data ends too early."
            ) from None
        raise ScreenshotError(f"The acceptance screenshot is a damaged {actual} image.") from None

    try:
        jpeg = _reencode(image)
    except (OSError, ValueError, SyntaxError, MemoryError) as exc:
        raise ScreenshotError(
            f"The acceptance screenshot ({width}×{height} pixels, {actual}) could not be re-encoded as JPEG "
            f"({type(exc).__name__}); it was not stored."
        ) from None
    return Screenshot(jpeg=jpeg, width=width, height=height, source_format=actual)


def _reencode(image) -> bytes:
    """A fresh JPEG of the pixels only: no EXIF, ICC profile, comments or text chunks."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        image = flat
    elif image.mode != "RGB":
        image = image.convert("RGB")
    # An RGB image is saved as it is (a copy would double the memory of a large one); the
    # caller has no further use for it.
    image.info = {}  # Pillow carries some of these (e.g. a JPEG comment) into the new file
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90, optimize=True)
    return out.getvalue()
