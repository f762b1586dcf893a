"""Small images for tests: JPEG data URLs like the ones html2canvas produces."""

import base64
import io

from PIL import Image, ImageDraw


def jpeg_data_url(width=320, height=200):
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([10, 10, width - 10, 40], fill=(31, 95, 168))
    draw.text((20, 60), "Patient information and comments", fill="black")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
