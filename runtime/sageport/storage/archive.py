"""Safe unpacking of model archives (``model.tar.gz``) into a directory.

SageMaker artifacts are user-supplied tarballs, so every member is checked before anything is
written: an archive that would write outside the destination (absolute names, ``..``), link
outside it, or create device files is rejected whole, instead of being half-extracted.
"""

from __future__ import annotations

import posixpath
import tarfile
from collections.abc import Iterable
from pathlib import Path

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


class UnsafeArchiveError(ValueError):
    """The archive holds a member that would escape the destination directory."""


def is_archive_name(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def _escapes(relative: str) -> bool:
    """True when a POSIX path, taken relative to the destination, leaves it."""
    if relative.startswith("/") or relative.startswith("\\"):
        return True
    normalised = posixpath.normpath(relative)
    return normalised == ".." or normalised.startswith("../")


def unsafe_member_reason(member: tarfile.TarInfo) -> str | None:
    """Why ``member`` must not be extracted, or None when it is safe."""
    name = member.name
    if _escapes(name) or ".." in Path(name).parts:
        return f"member {name!r} would be written outside the destination"
    if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
        return f"member {name!r} is a device or FIFO"
    if member.issym():
        target = posixpath.join(posixpath.dirname(name), member.linkname)
        if member.linkname.startswith("/") or _escapes(target):
            return f"symlink {name!r} points outside the destination ({member.linkname!r})"
    if member.islnk() and (_escapes(member.linkname) or ".." in Path(member.linkname).parts):
        return f"hard link {name!r} points outside the destination ({member.linkname!r})"
    return None


def _through_symlink(path: str, symlinks: set[str]) -> str | None:
    """The archive symlink that ``path`` would be written through, if any."""
    parts = posixpath.normpath(path).split("/")
    for depth in range(1, len(parts)):
        parent = "/".join(parts[:depth])
        if parent in symlinks:
            return parent
    return None


def check_members(members: Iterable[tarfile.TarInfo]) -> None:
    """Reject the archive if any member is unsafe on its own, or is written (or hard-linked)
    through a symlink of the same archive: the per-member checks are lexical, and a symlink
    pointing upwards (``a/b -> ..``) would make a lexically safe path resolve outside."""
    symlinks: set[str] = set()
    for member in members:
        reason = unsafe_member_reason(member)
        via = _through_symlink(member.name, symlinks)
        if via is None and member.islnk():
            via = _through_symlink(member.linkname + "/", symlinks)
        if reason is None and via is not None:
            reason = f"member {member.name!r} goes through the archive's symlink {via!r}"
        if reason is not None:
            raise UnsafeArchiveError(reason)
        if member.issym():
            symlinks.add(posixpath.normpath(member.name))


def unpack(archive: Path, destination: Path) -> None:
    """Extract ``archive`` into ``destination`` after checking every member."""
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, mode="r:*") as tar:
        members = tar.getmembers()
        check_members(members)
        if hasattr(tarfile, "data_filter"):
            # The stdlib "data" filter (3.11.4+; Debian bookworm's 3.11.2 lacks it) is a
            # second, independent line of defence; it also drops setuid bits.
            tar.extractall(destination, members=members, filter="data")
        else:
            for member in members:
                member.mode &= 0o755  # no setuid/setgid, nothing writable by others
            tar.extractall(destination, members=members)
