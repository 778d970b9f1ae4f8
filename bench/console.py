"""Web console benchmarks against a real embedded ``robosync-server``, printed as tables.

1. Thumbnails of 20 MB and 100 MB images (JPEG, 16-bit PNG, TIFF), made by
   the server with each candidate library (pyvips, Pillow): seconds per
   thumbnail cold (the thumbnail is deleted from the store before each
   request) and cached, and the server's peak RSS (VmHWM) after making them.
2. A project of 10,000 images in one folder: time to first byte of its grid
   page, and time until the first page is fully rendered in Chromium (every
   thumbnail decoded), with thumbnails cold and cached.

Every number is min / median / max over ``--repeat`` runs. Run::

    python bench/console.py [--repeat 5] [--files 10000] [--skip-thumbs] [--skip-grid]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.server import ServerProcess  # noqa: E402
from tests.web.people import ConsoleSession, Person, new_person  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
MB = 1_000_000


def make_images(folder: Path) -> dict[str, Path]:
    """Noise images (incompressible, so the file sizes are what they say) made with libvips."""
    import pyvips

    folder.mkdir(parents=True, exist_ok=True)

    def noise(w: int, h: int) -> pyvips.Image:
        bands = [pyvips.Image.gaussnoise(w, h, mean=128, sigma=64) for _ in range(3)]
        return bands[0].bandjoin(bands[1:]).cast("uchar").copy(interpretation="srgb")

    images = {
        # Noise at Q=95 costs ~2.26 bytes per pixel.
        "jpeg-20MB.jpg": lambda p: noise(3430, 2580).jpegsave(p, Q=95),
        "jpeg-100MB.jpg": lambda p: noise(7680, 5760).jpegsave(p, Q=95),
        "png16-20MB.png": lambda p: (
            (noise(1830, 1830).cast("ushort") * 256)
            .cast("ushort")
            .copy(interpretation="rgb16")
            .pngsave(p, compression=1)
        ),
        "tiff-100MB.tif": lambda p: noise(5800, 5800).tiffsave(p),
    }
    paths = {}
    for name, make in images.items():
        path = folder / name
        if not path.exists():
            make(str(path))
        paths[name] = path
    return paths


def stats(values: list[float]) -> str:
    """``min / median / max`` of seconds, in ms."""
    ms = [v * 1000 for v in values]
    return f"{min(ms):8.0f} / {statistics.median(ms):8.0f} / {max(ms):8.0f}"


def start(data_dir: Path, library: str) -> ServerProcess:
    """An embedded server on ``data_dir`` whose thumbnails come from ``library``."""
    env = {"ROBOSYNC_THUMBNAIL_LIBRARY": library, "ROBOSYNC_RATE_LIMIT": ""}
    return ServerProcess(data_dir, env).start()


def thumb_urls(session: ConsoleSession, project: int, prefix: str) -> dict[str, str]:
    """Thumbnail URL of each file of the first page of a folder, by file name."""
    html = session.http.get(f"/p/{project}", params={"prefix": prefix}).text
    return dict(
        (m.group(2), m.group(1))
        for m in re.finditer(
            r'src="(/p/\d+/thumb/[0-9a-f]{64}\?name=[^"]+)".*?>\s*<span class="name">([^<]+)<',
            html,
            re.S,
        )
    )


def drop_thumbnails(server: ServerProcess) -> None:
    """Delete every stored thumbnail (the local store keeps them under blobs/thumbs/)."""
    shutil.rmtree(server.data_dir / "blobs" / "thumbs", ignore_errors=True)


def bench_thumbnails(work: Path, repeat: int) -> None:
    """Table 1: seconds per thumbnail per image and library, and peak server RSS."""
    images = make_images(work / "images")
    data_dir = work / "thumbs-server"
    rows = []
    for library in ("pyvips", "pillow"):
        server = start(data_dir, library)
        try:
            base_kib = server.vm_kib("VmRSS")
            person = _person(
                server, work, "thumbs", {f"img/{n}": p.read_bytes() for n, p in images.items()}
            )
            session = ConsoleSession(server.url, person.name)
            project = session.project_id("thumbs")
            urls = thumb_urls(session, project, "img/")
            for name in images:
                cold, cached = [], []
                for _ in range(repeat):
                    drop_thumbnails(server)
                    cold.append(_timed_get(session.http, urls[name]))
                    cached.append(_timed_get(session.http, urls[name]))
                size = images[name].stat().st_size / MB
                rows.append((library, f"{name} ({size:.0f} MB)", stats(cold), stats(cached)))
            peak = server.vm_kib("VmHWM")
            rows.append(
                (
                    library,
                    "server RSS: at start / peak",
                    f"{base_kib / 1024:.0f} MiB",
                    f"{peak / 1024:.0f} MiB",
                )
            )
            session.close()
        finally:
            server.stop()
            drop_thumbnails(server)
    print(f"\nThumbnails (256 px WebP), ms per thumbnail, min / median / max of {repeat}")
    print("| library | image | cold | cached |\n| --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def _timed_get(http: httpx.Client, url: str) -> float:
    t = time.perf_counter()
    r = http.get(url)
    elapsed = time.perf_counter() - t
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/webp", r.headers["content-type"]
    return elapsed


def _person(server: ServerProcess, work: Path, project: str, files: dict[str, bytes]) -> Person:
    person = new_person(server, Path(tempfile.mkdtemp(dir=work)), project)
    person.push(files)
    return person


def small_jpegs(count: int) -> dict[str, bytes]:
    """``count`` distinct small JPEGs (camera-like names) in folder ``cam/``."""
    from tests.web.people import jpeg

    return {f"cam/frame-{i:06d}.jpg": jpeg(i, (320, 240)) for i in range(count)}


def bench_grid(work: Path, files: int, repeat: int, library: str) -> None:
    """Table 2: first page of a big project's grid, TTFB and rendered in Chromium."""
    from playwright.sync_api import sync_playwright

    server = start(work / "grid-server", library)
    try:
        person = _person(server, work, "big", small_jpegs(files))
        session = ConsoleSession(server.url, person.name)
        project = session.project_id("big")
        url = f"{server.url}/p/{project}?prefix=cam/"
        ttfb = []
        for _ in range(repeat):
            t = time.perf_counter()
            with session.http.stream("GET", url) as r:
                next(r.iter_raw())
                ttfb.append(time.perf_counter() - t)
                assert r.status_code == 200
        cookie = session.http.cookies.get("robosync_session")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            cold, warm = [], []
            for run in range(repeat * 2):
                if run % 2 == 0:
                    drop_thumbnails(server)
                context = browser.new_context(viewport={"width": 1400, "height": 4000})
                context.add_cookies(
                    [{"name": "robosync_session", "value": cookie, "url": server.url}]
                )
                page = context.new_page()
                t = time.perf_counter()
                page.goto(url)
                page.wait_for_function(
                    "() => document.images.length >= 60 && "
                    "[...document.images].every(i => i.complete && i.naturalWidth > 0)",
                    timeout=120_000,
                )
                (cold if run % 2 == 0 else warm).append(time.perf_counter() - t)
                context.close()
            browser.close()
        session.close()
    finally:
        server.stop()
    print(
        f"\nGrid of a {files}-image folder, first page (60 thumbnails), ms, "
        f"min / median / max of {repeat}"
    )
    print("| measure | ms |\n| --- | --- |")
    print(f"| time to first byte of the page | {stats(ttfb)} |")
    print(f"| rendered in Chromium, thumbnails cold | {stats(cold)} |")
    print(f"| rendered in Chromium, thumbnails cached | {stats(warm)} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--skip-thumbs", action="store_true")
    parser.add_argument("--skip-grid", action="store_true")
    parser.add_argument(
        "--grid-library", default="pillow", help="thumbnail library of the grid's server"
    )
    parser.add_argument(
        "--work", type=Path, help="folder for images and servers (default: a temp dir)"
    )
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="robosync-bench-console-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work folder: {work}")
    if not args.skip_thumbs:
        bench_thumbnails(work, args.repeat)
    if not args.skip_grid:
        bench_grid(work, args.files, args.repeat, args.grid_library)


if __name__ == "__main__":
    main()
