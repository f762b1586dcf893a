"""ClinCheck preview images (the plan's PROVPREV asset) and the screenshot check.

A preview is a small PNG drawn from the plan id, the same bytes every time, so the
`sha256` and `size` in a `treatment_plan.submitted` event always match what
`GET /previews/{planId}.png` serves. Like a pre-signed URL, it needs no token.
"""

import hashlib
import io
from functools import lru_cache

from PIL import Image, ImageDraw

SCREENSHOT_FORMATS = ("PNG", "JPEG")


@lru_cache(maxsize=256)
def preview_png(plan_id):
    digest = hashlib.sha256(plan_id.encode()).digest()
    image = Image.new("RGB", (240, 160), (200 + digest[0] % 56, 220 + digest[1] % 36, 240))
    draw = ImageDraw.Draw(image)
    draw.rectangle((8, 8, 231, 151), outline=(40, 80, 140), width=2)
    draw.text((20, 30), "ClinCheck preview", fill=(20, 40, 80))
    draw.text((20, 60), plan_id, fill=(20, 40, 80))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def describe_preview(public_url, plan_id):
    data = preview_png(plan_id)
    return {
        "kind": "PROVPREV",
        "url": f"{public_url}/previews/{plan_id}.png",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }


def is_readable_image(data):
    """True for bytes that decode as a PNG or JPEG image (what an acceptance screenshot must be)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in SCREENSHOT_FORMATS:
                return False
            image.load()
    except Exception:  # noqa: BLE001 - Pillow raises many kinds of errors for broken files
        return False
    return True
