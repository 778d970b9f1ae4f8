"""Writing a downloaded file past the page cache (``O_DIRECT``), where the file system allows.

A large download written the usual way is copied into the page cache, written
back from there, and flushed before the file counts as durable. Written with
``O_DIRECT`` its bytes go from the thread's buffer to the disk (the kernel's copy
into freshly allocated cache pages was the largest single cost of a 2,000 x 1 MB
clone, docs/PERFORMANCE.md), and the flush that follows finds only the file's
last, short block and its metadata left to write.

``O_DIRECT`` wants the buffer, the file offset and the length aligned to the
device's block size: :func:`aligned_buffer` gives page-aligned memory, whole
blocks are written direct, and a shorter rest (only ever at the end of a file)
goes through the page cache. A file system without ``O_DIRECT`` (tmpfs on older
kernels, ext4 with ``data=journal``), or a write it refuses as misaligned, falls
back to the page cache: the bytes are the same, only the path differs.
"""

from __future__ import annotations

import errno
import mmap
import os

# Whole blocks of this many bytes are written direct: a multiple of every common
# logical block size (512 and 4096) and the page size mmap aligns to.
ALIGN = 4096


def aligned_buffer(size: int) -> memoryview:
    """A writable buffer of ``size`` bytes starting on a page boundary (anonymous memory)."""
    return memoryview(mmap.mmap(-1, size))


def try_direct(fd: int) -> bool:
    """Switch ``fd`` to direct writes if its file system allows: whether it did."""
    return _set_direct(fd, True)


def write_direct(fd: int, data: memoryview) -> bool:
    """Write all of ``data`` at the current offset of a descriptor :func:`try_direct` switched.

    Whole :data:`ALIGN` blocks go direct; a shorter rest, or whatever the file
    system refuses as misaligned, through the page cache, and the descriptor is
    switched back. Returns whether it still writes direct.
    """
    view = data
    whole = len(view) - len(view) % ALIGN
    try:
        while whole > 0:
            n = os.write(fd, view[:whole])
            view = view[n:]
            whole -= n
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
    if not view:
        return True
    _set_direct(fd, False)
    while view:
        view = view[os.write(fd, view) :]
    return False


def _set_direct(fd: int, on: bool) -> bool:
    direct = getattr(os, "O_DIRECT", 0)
    if not direct:
        return False
    import fcntl

    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | direct if on else flags & ~direct)
    except OSError:
        return False
    return True
