"""Landing files: everything t2reg writes appears whole, or not at all.

One mechanism for every file: write into a temp file on the same file system,
flush and fsync it, rename it over the destination, fsync the directory so the
rename itself survives a crash, and remove the temp file if anything fails on
the way. A destination that exists and is not a regular file (a FIFO, a device
node, a directory) is refused rather than replaced.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from t2reg.errors import InvalidInputError, StorageError, shown


def contained(root: str | os.PathLike[str], *parts: str) -> Path:
    """``root / parts...``, resolved, refused unless it lies strictly inside ``root`` (resolved too).

    Every path t2reg builds from a name (a model folder, a spectra folder) goes
    through here before anything is written or removed there, so a name such as
    ``..`` or ``a/../../x`` can never reach outside its root, symlinks included.
    """
    base = Path(root).resolve()
    path = base.joinpath(*parts).resolve()
    if path == base or base not in path.parents:
        shown = "/".join(parts)
        raise InvalidInputError(f"{shown!r} would lie outside {base}; refusing to use it as a folder name")
    return path


def check_destination(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path, refused when something other than a regular file is already there, or when it ends
    in '/': that names a folder, and a file is never written under the folder's own name."""
    text = os.fspath(path)
    if not text:
        raise InvalidInputError("the output path is empty")
    if ends_with_separator(text):
        raise InvalidInputError(f"{shown(text)} ends in '/', which names a folder; give the file's own name")
    path = Path(path)
    if path.exists() and not path.is_file():
        raise InvalidInputError(f"{path} exists and is not a regular file; refusing to replace it")
    if not path.parent.is_dir():
        raise InvalidInputError(f"{path.parent} is not a directory; cannot write {path.name} there")
    return path


@contextmanager
def landing(path: str | os.PathLike[str], temp_dir: str | os.PathLike[str] | None = None) -> Iterator[BinaryIO]:
    """A binary file handle whose contents replace ``path`` atomically when the block ends.

    ``temp_dir`` (default: ``path``'s folder) must be on the same file system.
    """
    path = check_destination(path)
    folder = Path(temp_dir) if temp_dir is not None else path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def land_bytes(path: str | os.PathLike[str], data: bytes, temp_dir: str | os.PathLike[str] | None = None) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with landing(path, temp_dir) as fh:
        fh.write(data)
    return Path(path)


def land_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return land_bytes(path, text.encode("utf-8"))


def check_folder_destination(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path, refused unless it is absent or an empty folder (not a symlink to one: the folder
    would replace the link, not be written through it). Commands that write a folder check this first, before
    the expensive work; :func:`landing_dir` checks it again."""
    path = Path(path)
    if path.is_symlink():
        raise InvalidInputError(f"{path} is a symlink; give the folder it points to, or a new path")
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise InvalidInputError(f"{path} exists and is not an empty folder; refusing to replace it")
    return path


@contextmanager
def landing_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A staging folder renamed to ``path`` when the block ends (``path`` must be absent or empty).

    Used for whole model folders (a converted GGUF, an export): a reader never
    sees half of one. Only the staging folder this call created is ever removed.
    """
    path = check_folder_destination(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InvalidInputError(f"{path.parent} is not a folder; cannot write {path.name} there") from None
    except OSError as exc:
        raise StorageError(f"cannot create {path.parent}: {exc.strerror or exc}") from None
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield staging
        if path.exists():
            path.rmdir()  # empty, checked above
        staging.rename(path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fsync_dir(path.parent)


def ends_with_separator(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` ends in '/' (a folder, by the one rule for ``--out``: a command writing a folder
    creates it, one writing a file refuses it). ``Path`` drops the slash, so look before converting."""
    text = os.fspath(path)
    return text.endswith(os.sep) or (os.altsep is not None and text.endswith(os.altsep))


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
