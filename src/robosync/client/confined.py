"""File operations confined to the project folder: never through a symbolic link.

Anyone may leave a symlink inside a project folder (``cam0 -> /mnt/usb``), and
a project path comes from the server, which the client does not trust. So
every write, rename and delete under the project root opens the folders of
the path one component at a time, relative to the previous one's file
descriptor and with ``O_NOFOLLOW``: a component that is a symlink is refused
(:class:`SymlinkInPath`), and since each step holds the folder it checked, a
link swapped in meanwhile cannot redirect the operation (no check-then-use
race, unlike an ``lstat`` of each parent followed by a plain ``open``).

The final component is never followed either: a temp file is created with
``O_EXCL | O_NOFOLLOW`` and renamed over the target (a rename replaces a
symlink, it does not write through it), and ``unlink`` removes a link itself.
The project root itself may be a symlink (it was resolved when opened).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import secrets
import stat as stat_mod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from robosync.client.scan import TEMP_PREFIX
from robosync.errors import RobosyncError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# New files get 0666 minus the umask, like any other tool's.
_FILE_MODE = 0o666


class SymlinkInPath(RobosyncError):
    """A project path with a symbolic link among its folders: robosync never goes through it."""

    status = 400
    code = "symlink_in_path"

    def __init__(self, path: str, link: str) -> None:
        super().__init__(
            f"{path}: {link} is a symbolic link; robosync never writes or deletes through one "
            f"(it may point outside the project); make {link} a real folder to sync this path",
            {"path": path, "link": link},
        )


class NotAFolder(RobosyncError):
    """A project path with a file where one of its folders should be."""

    status = 400
    code = "not_a_folder"

    def __init__(self, path: str, blocker: str) -> None:
        super().__init__(
            f"{path}: {blocker} is a file, not a folder; move it away to sync this path",
            {"path": path, "blocker": blocker},
        )


def _split(path: str) -> tuple[list[str], str]:
    parts = path.split("/")
    return parts[:-1], parts[-1]


@contextlib.contextmanager
def open_folder(root: Path, path: str, *, create: bool) -> Iterator[int]:
    """A descriptor of the folder holding project path ``path``, opened link by link.

    With ``create``, missing folders are made. Raises :class:`SymlinkInPath`
    if a folder of the path is a symlink, :class:`NotAFolder` if it is a file,
    ``FileNotFoundError`` if it is missing (without ``create``).
    """
    folders, _ = _split(path)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, name in enumerate(folders):
            nxt = _open_child(fd, name, create, path, "/".join(folders[: i + 1]))
            os.close(fd)
            fd = nxt
        yield fd
    finally:
        os.close(fd)


def _open_child(parent: int, name: str, create: bool, path: str, where: str) -> int:
    """Open folder ``name`` (``where`` in project ``path``) in ``parent`` without following it."""
    for _ in range(2):
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise
            with contextlib.suppress(FileExistsError):  # made meanwhile: open it
                os.mkdir(name, 0o777, dir_fd=parent)
        except OSError as e:
            if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            if stat_mod.S_ISLNK(os.lstat(name, dir_fd=parent).st_mode):
                raise SymlinkInPath(path, where) from e
            raise NotAFolder(path, where) from e
    return os.open(name, _DIR_FLAGS, dir_fd=parent)


class OpenFolders:
    """Folders of a project kept open across several writes (a download task's files).

    Each is opened link by link as :func:`open_folder` does, the first time a path
    in it is written; the descriptor then holds that very folder, so a link swapped
    in later cannot redirect a write. Saves two system calls per file written.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._fds: dict[str, int] = {}

    def of(self, path: str) -> int:
        """The descriptor of the folder holding project path ``path`` (made if missing)."""
        folder = path.rpartition("/")[0]
        fd = self._fds.get(folder)
        if fd is None:
            with open_folder(self.root, path, create=True) as opened:
                fd = self._fds[folder] = os.dup(opened)
        return fd

    def close(self) -> None:
        """Close every folder kept open."""
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)

    def __enter__(self) -> OpenFolders:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_file(
    root: Path,
    path: str,
    fill: Callable[[int], None],
    *,
    durable: bool = True,
    sync_data: bool = True,
    folders: OpenFolders | None = None,
) -> os.stat_result:
    """Write project path ``path`` atomically: ``fill(fd)`` a temp file beside it, then rename.

    The temp file is flushed to disk before the rename (unless ``sync_data``
    is false: a caller writing many files flushes them all at once with
    :func:`sync_filesystem`, and must not trust them before). With ``durable``
    the folder is fsync'ed too (a caller writing many files may do that once
    at the end instead). ``folders`` keeps the folder open for the caller's next
    writes. Returns the stat of the written file.
    """
    _, name = _split(path)
    with (
        contextlib.nullcontext(folders.of(path))
        if folders is not None
        else open_folder(root, path, create=True)
    ) as folder:
        tmp, fd = _create_temp(folder)
        try:
            try:
                fill(fd)
                if sync_data:
                    flush_data(fd)
                # A rename keeps size, mtime and inode: this is the stat of the result.
                st = os.fstat(fd)
            finally:
                os.close(fd)
            try:
                os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
            except OSError as e:
                # An empty folder left where the version now has a file (its files
                # were deleted) gives way; one still holding files stays, and fails.
                if e.errno not in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
                    raise
                if not _removed_empty_folder(folder, name):
                    raise
                os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=folder)
            raise
        if durable:
            os.fsync(folder)
        return st


# Temp names: a random prefix per process and a counter, not a random token per
# file (one getrandom call fewer per file written); O_EXCL still refuses a clash.
_TEMP_STEM = TEMP_PREFIX + secrets.token_hex(6) + "-"
_temp_serial = itertools.count()


def _create_temp(folder: int) -> tuple[str, int]:
    """A new temp file in ``folder``, never an existing name: (name, descriptor)."""
    while True:
        tmp = f"{_TEMP_STEM}{next(_temp_serial):x}"
        try:
            fd = os.open(
                tmp,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                _FILE_MODE,
                dir_fd=folder,
            )
        except FileExistsError:  # left by a crashed run with the same prefix: next one
            continue
        return tmp, fd


def _removed_empty_folder(folder: int, name: str) -> bool:
    """Whether ``name`` in ``folder`` was an empty folder, now removed."""
    try:
        if not stat_mod.S_ISDIR(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode):
            return False
        os.rmdir(name, dir_fd=folder)
    except OSError:  # gone meanwhile, or not empty
        return False
    return True


def prune_empty_folders(root: Path, path: str) -> None:
    """Remove the folders of ``path`` left empty, deepest first; never through a link."""
    folders, _ = _split(path)
    while folders:
        try:
            with open_folder(root, "/".join(folders), create=False) as parent:
                os.rmdir(folders[-1], dir_fd=parent)
        except (OSError, SymlinkInPath, NotAFolder):  # not empty, gone, or a link: stop
            return
        folders.pop()


def remove_file(root: Path, path: str) -> bool:
    """Delete project path ``path``; ``False`` if it was not there. Never through a link."""
    _, name = _split(path)
    try:
        with open_folder(root, path, create=False) as folder:
            os.unlink(name, dir_fd=folder)
    except FileNotFoundError:
        return False
    return True


def rename_file(root: Path, source: str, target: str) -> None:
    """Move project path ``source`` to ``target`` (folders of ``target`` are made)."""
    _, src_name = _split(source)
    _, dst_name = _split(target)
    with (
        open_folder(root, source, create=False) as src,
        open_folder(root, target, create=True) as dst,
    ):
        os.rename(src_name, dst_name, src_dir_fd=src, dst_dir_fd=dst)


def stat_file(root: Path, path: str) -> os.stat_result | None:
    """The stat of regular file ``path``; ``None`` if missing, a link, or behind a link."""
    _, name = _split(path)
    try:
        with open_folder(root, path, create=False) as folder:
            st = os.stat(name, dir_fd=folder, follow_symlinks=False)
    except (FileNotFoundError, SymlinkInPath, NotAFolder):
        return None
    return st if stat_mod.S_ISREG(st.st_mode) else None


def open_file(root: Path, path: str) -> int:
    """A read-only descriptor of project path ``path``, refused if it is or sits behind a link."""
    _, name = _split(path)
    with open_folder(root, path, create=False) as folder:
        try:
            return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise SymlinkInPath(path, path) from e
            raise


def start_writeback(fd: int) -> None:
    """Have the kernel start writing the file's dirty pages to disk now, without waiting.

    (Linux starts writeback on ``POSIX_FADV_DONTNEED`` and then drops only pages already
    clean.) A download calls it on each file it wrote, so the disk works while the next
    files stream in and the batch's :func:`sync_filesystem` finds little left to flush;
    git's batch mode does the same with ``sync_file_range``. Durability still comes
    from that flush alone.
    """
    if hasattr(os, "posix_fadvise"):
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def sync_filesystem(root: Path) -> None:
    """Flush every dirty page of the file system holding ``root`` to disk, in one call.

    One ``syncfs`` after a batch of files is written lets the disk merge the
    writes that one ``fdatasync`` per file would force out one at a time (as
    git's ``core.fsyncMethod=batch``). Where ``syncfs`` is missing, ``sync``.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        syncfs = libc.syncfs
    except (OSError, AttributeError):
        os.sync()
        return
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs of {root}: {os.strerror(err)}")
    finally:
        os.close(fd)


def pending_writes(ours: int = 0) -> int | None:
    """Bytes this machine holds waiting to be written to disk, less ``ours`` (never below
    0): Linux's ``Dirty`` and ``Writeback`` (``/proc/meminfo``, every file system at
    once, so it never understates one). ``None`` where the count cannot be read."""
    try:
        with open("/proc/meminfo", "rb") as f:
            text = f.read()
    except OSError:
        return None
    return _meminfo_pending(text, ours)


def _meminfo_pending(text: bytes, ours: int) -> int | None:
    pending = 0
    found = 0
    for line in text.splitlines():
        name, _, rest = line.partition(b":")
        if name in (b"Dirty", b"Writeback"):
            fields = rest.split()
            if len(fields) != 2 or fields[1] != b"kB" or not fields[0].isdigit():
                return None
            pending += int(fields[0]) * 1024
            found += 1
    return max(0, pending - ours) if found == 2 else None


def sync_files(root: Path, paths: list[str], workers: int) -> list[str]:
    """Flush these project files' bytes to disk, one ``fdatasync`` each, ``workers`` at once.

    Unlike :func:`sync_filesystem` this waits for these files alone, not for every dirty
    page of the file system: an object store on the same disk that has just taken
    gigabytes, or a camera writing beside the project, made one ``syncfs`` wait a second
    for their bytes (docs/PERFORMANCE.md). Meant for large files, written past the page
    cache (:mod:`robosync.client.directio`) or with their writeback begun by
    :func:`start_writeback` as they were written, so each call mostly waits for the
    journal, whose commits concurrent calls share.

    A path that is gone since it was written, or now sits behind a link, holds nothing
    of ours to flush and is passed over (as ``syncfs`` would; the next scan sees what is
    there); a failed flush raises. Returns the paths flushed.
    """

    def sync_one(path: str) -> bool:
        try:
            fd = open_file(root, path)
        except (FileNotFoundError, NotAFolder, SymlinkInPath):
            return False
        try:
            flush_data(fd)
        finally:
            os.close(fd)
        return True

    if workers <= 1 or len(paths) <= 1:
        done = [sync_one(path) for path in paths]
    else:
        from concurrent.futures import ThreadPoolExecutor  # not loaded by commands that write none

        with ThreadPoolExecutor(
            min(workers, len(paths)), thread_name_prefix="robosync-sync"
        ) as pool:
            done = list(pool.map(sync_one, paths))
    return [path for path, flushed in zip(paths, done, strict=True) if flushed]


def flush_data(fd: int) -> None:
    """Flush an open file's bytes and size to disk (not its timestamps)."""
    # fdatasync: the bytes and the size, not the timestamps, which a crash may lose.
    if hasattr(os, "fdatasync"):
        os.fdatasync(fd)
    else:
        os.fsync(fd)


def filler(source: bytes | bytearray | memoryview | IO[bytes]) -> Callable[[int], None]:
    """A ``fill`` for :func:`write_file` that writes ``source`` (bytes, or a binary file's rest)."""

    def fill(fd: int) -> None:
        with os.fdopen(os.dup(fd), "wb") as f:
            if isinstance(source, bytes | bytearray | memoryview):
                f.write(source)
            else:
                for chunk in iter(lambda: source.read(1024 * 1024), b""):
                    f.write(chunk)

    return fill
