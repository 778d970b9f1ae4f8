"""Thumbnail rendering with both candidate libraries: formats, 16-bit, bombs, garbage."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from robosync.server.thumbs import RENDERERS, NotAnImage, placeholder

LIBRARIES = sorted(RENDERERS)


def _write(tmp_path: Path, name: str, im: Image.Image, **save: object) -> Path:
    path = tmp_path / name
    im.save(path, **save)
    return path


def _rgb(size: tuple[int, int] = (900, 600)) -> Image.Image:
    gradient = Image.linear_gradient("L").resize(size)
    return Image.merge("RGB", (gradient, gradient.rotate(90), Image.new("L", size, 90)))


def _grey16(size: tuple[int, int] = (600, 900)) -> Image.Image:
    """A 16-bit greyscale gradient over the whole 0..65535 range."""
    return (Image.linear_gradient("L").resize(size).convert("I").point(lambda v: v * 257)).convert(
        "I;16"
    )


@pytest.fixture
def samples(tmp_path: Path) -> dict[str, Path]:
    """One small image per format we design for."""
    return {
        "jpeg": _write(tmp_path, "a.jpg", _rgb(), quality=90),
        "png": _write(tmp_path, "a.png", _rgb()),
        "png16": _write(tmp_path, "g.png", _grey16()),
        "tiff": _write(tmp_path, "a.tif", _rgb()),
        "webp": _write(tmp_path, "a.webp", _rgb()),
    }


@pytest.mark.parametrize("library", LIBRARIES)
def test_every_format_becomes_a_webp_within_256_px_keeping_the_aspect(
    library: str, samples: dict[str, Path]
) -> None:
    for kind, path in samples.items():
        data = RENDERERS[library](path, 256)
        with Image.open(io.BytesIO(data)) as thumb:
            assert thumb.format == "WEBP", kind
            assert max(thumb.size) == 256, (kind, thumb.size)
            with Image.open(path) as original:
                ratio = original.width / original.height
            assert abs(thumb.width / thumb.height - ratio) < 0.02, kind


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_16_bit_png_keeps_its_tones(library: str, samples: dict[str, Path]) -> None:
    with Image.open(io.BytesIO(RENDERERS[library](samples["png16"], 256))) as thumb:
        grey = thumb.convert("L")
        low, high = grey.getextrema()
    assert low < 30 and high > 220, "16-bit values were clipped or truncated"


def _png_claiming(tmp_path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims ``width`` x ``height`` (a decompression bomb's shape)."""
    raw = io.BytesIO()
    Image.new("L", (8, 8)).save(raw, "PNG")
    data = bytearray(raw.getvalue())
    ihdr = 8 + 8  # signature, then length and type of the IHDR chunk
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    path = tmp_path / "bomb.png"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("library", LIBRARIES)
def test_an_image_over_the_pixel_cap_is_refused_before_decoding(
    library: str, tmp_path: Path
) -> None:
    with pytest.raises(NotAnImage, match="pixels"):
        RENDERERS[library](_png_claiming(tmp_path, 40_000, 40_000), 256)


@pytest.mark.parametrize("library", LIBRARIES)
def test_bytes_that_are_not_an_image_raise_not_an_image(library: str, tmp_path: Path) -> None:
    path = tmp_path / "fake.jpg"
    path.write_bytes(b"\xff\xd8 this is not a jpeg" * 10)
    with pytest.raises(NotAnImage):
        RENDERERS[library](path, 256)


def test_placeholder_names_the_type_and_escapes_it() -> None:
    assert b">PDF<" in placeholder("report.pdf")
    assert b"<script" not in placeholder("x.<script>")
    assert b">FILE<" in placeholder("README")
