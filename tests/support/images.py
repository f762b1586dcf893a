"""Images for the acceptance-screenshot tests, built in memory."""

import base64
import io
import struct
import zlib

from PIL import Image


def image_bytes(fmt="PNG", size=(64, 48), mode="RGB", color=(20, 120, 200), **save):
    image = Image.new(mode, size, color if mode != "RGBA" else (*color, 128))
    out = io.BytesIO()
    image.save(out, format=fmt, **save)
    return out.getvalue()


def data_url(raw: bytes, mime="image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


def png_url(**kw):
    return data_url(image_bytes("PNG", **kw), "image/png")


def jpeg_with_exif():
    exif = Image.Exif()
    exif[0x010F] = "ClinicCam"  # Make
    exif[0x0131] = "html2canvas-test"  # Software
    exif[0x8298] = "Patient Jane Doe"  # Copyright: something that must not survive
    return image_bytes("JPEG", exif=exif.tobytes(), comment=b"patient Jane Doe")


def png_bomb(width=30000, height=30000):
    """A valid PNG header claiming width x height pixels, with a tiny (wrong) body."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
