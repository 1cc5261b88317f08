"""All-or-nothing output directories for ``caa tables`` and ``caa figures``.

A command that writes many files must not leave half of them behind when it fails
(disk full, a malformed run met half-way): a reader would take the mix of new and old
files for one result. :func:`staged_output` builds the whole output in a temporary
directory beside the target (``<out>.tmp-XXXX``) and only then swaps it into place: the
old directory is renamed aside, the new one renamed onto its name, the old one deleted.
POSIX has no portable atomic exchange of two directories, so for an instant between
the two renames ``<out>`` does not exist; it never holds a mix.

The rule of ownership: a command owns the entries of its output directory that match
its own names (``owns``), including stale ones from an earlier invocation, which
disappear. Every other plain file (e.g. the significance tables ``caa significance``
writes beside Tables I-III) is carried over unchanged, by hard link. A foreign
sub-directory makes the command refuse before it computes anything: a mistyped
``--out`` must not swap away a directory the study does not own. Two commands that
share a directory name each other's entries (``shares``): those are carried over
too, sub-directories included (as trees of hard links), e.g. the per-run tables of
``caa tables`` when ``caa significance`` writes beside them.

Any OSError while staging or swapping becomes one :class:`~caalib.errors.CaaError`
naming the output directory and the file, and leaves the previous output as it was.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from ..errors import CaaError

#: mkstemp names of caalib.atomic: ``.<name>.<8 random chars><suffix>``.
_ATOMIC_TEMP = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}(\.[^.]*)?$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _shown(path: str | os.PathLike[str] | None, stage: Path | None, out: Path) -> str:
    """The path a failure concerns, as the user will know it (inside ``out``)."""
    if path is None:
        return str(out)
    p = Path(os.fsdecode(path))
    if stage is not None:
        with contextlib.suppress(ValueError):
            rel = p.relative_to(stage)
            m = _ATOMIC_TEMP.match(rel.name)
            return str(out / rel.parent / (m.group("name") if m else rel.name))
    return str(p)


def _error(out: Path, exc: OSError, stage: Path | None) -> CaaError:
    reason = exc.strerror or str(exc) or type(exc).__name__
    return CaaError(f"{out}: output not written ({reason}: "
                    f"{_shown(exc.filename, stage, out)}); the previous contents are unchanged")


def _guard(out: Path, reads: Sequence[str | os.PathLike[str]]) -> None:
    real = out.resolve()
    for src in reads:
        src = Path(src).resolve()
        if real == src or real in src.parents:
            raise CaaError(f"{out}: the output directory would replace {src}, which the "
                           "command reads; choose another output directory")


def _link(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    try:
        os.link(src, dst)
    except OSError:  # a file system without hard links
        shutil.copy2(src, dst)


def _carry(src: Path, dst: Path) -> None:
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
    elif src.is_dir():
        shutil.copytree(src, dst, symlinks=True, copy_function=_link)
    else:
        _link(src, dst)


def _swap(stage: Path, out: Path) -> None:
    if not os.path.lexists(out):
        os.rename(stage, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f"{out.name}.old-", dir=out.parent))
    try:
        os.rename(out, old)  # onto the empty placeholder
    except OSError:
        with contextlib.suppress(OSError):
            old.rmdir()
        raise
    try:
        os.rename(stage, out)
    except OSError:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged_output(out_dir: str | os.PathLike[str], owns: Callable[[str], bool], *,
                  reads: Sequence[str | os.PathLike[str]] = (),
                  what: str = "the command",
                  shares: Callable[[str], bool] | None = None) -> Iterator[Path]:
    """Yield an empty staging directory; on success it replaces ``out_dir`` whole.

    ``owns(name)`` says which top-level entries of ``out_dir`` belong to the command
    (replaced or removed); other plain files are carried over, and so are the entries,
    directories included, of a command sharing the directory (``shares(name)``).
    ``reads`` are the directories the command reads, which ``out_dir`` must neither be
    nor contain. On any exception the staging directory is deleted and ``out_dir`` is
    untouched; an OSError comes back as a one-line CaaError.
    """
    out = Path(out_dir)
    if out.is_symlink():  # swap beside the directory the link points to
        out = Path(os.path.realpath(out))
    if os.path.lexists(out) and not out.is_dir():
        raise CaaError(f"{out}: exists and is not a directory")
    _guard(out, reads)
    foreign = sorted(p for p in out.iterdir() if not owns(p.name)) if out.is_dir() else []
    dirs = [p.name for p in foreign if p.is_dir() and not p.is_symlink()
            and not (shares is not None and shares(p.name))]
    if dirs:
        raise CaaError(f"{out}: holds director{'y' if len(dirs) == 1 else 'ies'} "
                       f"{', '.join(dirs)} that {what} did not write; choose another output "
                       "directory (it replaces the whole directory)")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f"{out.name}.tmp-", dir=out.parent))
    except OSError as exc:
        raise _error(out, exc, None) from None
    try:
        yield stage
        for entry in foreign:
            if not os.path.lexists(stage / entry.name):
                _carry(entry, stage / entry.name)
        os.chmod(stage, 0o777 & ~_umask())  # mkdtemp makes 0700; give the usual mode
        _swap(stage, out)
    except OSError as exc:
        shutil.rmtree(stage, ignore_errors=True)
        raise _error(out, exc, stage) from None
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def relocate(paths: Sequence[Path], stage: Path, out: Path) -> list[Path]:
    """The final paths (under ``out``) of files written under ``stage``."""
    return [out / Path(p).relative_to(stage) for p in paths]
