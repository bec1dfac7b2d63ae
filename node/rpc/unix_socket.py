"""The control socket file: path limits, a private directory, 0600 at creation, stale
file cleanup and removal on exit.

The permission bits are set by the umask around bind(), never by chmod afterwards: between
a bind and a chmod anyone could connect. The umask is process-wide, so bind runs
synchronously (no await between setting and restoring it).
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

# sockaddr_un.sun_path holds 108 bytes on Linux (107 plus NUL); staying under 100 leaves
# room and keeps the limit the same on the BSDs (104).
MAX_SOCKET_PATH_BYTES: Final = 99
_SOCKET_UMASK: Final = 0o177  # socket file mode 0600
_DIRECTORY_MODE: Final = 0o700
LISTEN_BACKLOG: Final = 128


class SocketPathError(Exception):
    """The control socket cannot be created where asked; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class BoundSocketFile:
    """Identity of the file we bound, so that we never remove a file someone else made."""

    path: Path
    device: int
    inode: int


def check_path_length(path: Path) -> None:
    size = len(os.fsencode(path))
    if size > MAX_SOCKET_PATH_BYTES:
        raise SocketPathError(
            f"control socket path {str(path)!r} is {size} bytes; it must be under 100 bytes "
            "(the kernel's Unix socket limit is 107): use a shorter data directory"
        )


def ensure_private_directory(directory: Path) -> None:
    """Create `directory` 0700 if missing; refuse one that others can enter or that is not ours.

    An existing directory is never chmod-ed: it may be shared (for example /tmp).
    """
    try:
        os.mkdir(directory, _DIRECTORY_MODE)
    except FileExistsError:
        pass
    except FileNotFoundError:
        # Parents are created with the user's normal mode; only the last level must be private.
        directory.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(directory, _DIRECTORY_MODE)
    info = os.stat(directory)
    if not stat.S_ISDIR(info.st_mode):
        raise SocketPathError(f"{directory} exists and is not a directory")
    if info.st_uid != os.getuid():
        raise SocketPathError(
            f"control socket directory {directory} belongs to uid {info.st_uid}, not to this "
            f"user (uid {os.getuid()}): use a directory of your own"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode != _DIRECTORY_MODE:
        raise SocketPathError(
            f"control socket directory {directory} has mode {mode:04o}; it must be 0700 so "
            f"that only you can reach the socket: run `chmod 700 {directory}` or use a "
            "dedicated directory"
        )


def _something_listens(path: Path) -> bool:
    """True if a server accepts (or queues) connections on the socket file at `path`."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.setblocking(False)
        probe.connect(os.fspath(path))
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except BlockingIOError:  # backlog full: a live but busy server
        return True
    except OSError as error:
        if error.errno in (errno.ECONNREFUSED, errno.ENOENT):
            return False
        raise SocketPathError(f"cannot probe existing socket {path}: {error}") from error
    finally:
        probe.close()
    return True


def remove_stale_socket(path: Path) -> bool:
    """Remove a socket file nobody listens on. Returns True if one was removed.

    Raises SocketPathError if a live server owns it or the path is not a socket.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISSOCK(info.st_mode):
        raise SocketPathError(f"{path} exists and is not a socket; refusing to replace it")
    if _something_listens(path):
        raise SocketPathError(
            f"another server is already listening on {path}: stop that node first "
            "(or give this one a different data directory)"
        )
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def bind_listening_socket(path: Path) -> tuple[socket.socket, BoundSocketFile]:
    """A listening AF_UNIX socket at `path`, created mode 0600 in a private directory."""
    check_path_length(path)
    ensure_private_directory(path.parent if str(path.parent) else Path("."))
    remove_stale_socket(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        previous_umask = os.umask(_SOCKET_UMASK)
        try:
            listener.bind(os.fspath(path))
        finally:
            os.umask(previous_umask)
        info = os.stat(path)
        listener.listen(LISTEN_BACKLOG)
    except BaseException:
        listener.close()
        raise
    return listener, BoundSocketFile(path, info.st_dev, info.st_ino)


def remove_socket_file(bound: BoundSocketFile) -> bool:
    """Unlink the socket file if it is still the one we created. Returns True if removed."""
    try:
        info = os.lstat(bound.path)
    except FileNotFoundError:
        return False
    if (info.st_dev, info.st_ino) != (bound.device, bound.inode):
        return False  # replaced by another server: not ours to remove
    try:
        os.unlink(bound.path)
    except FileNotFoundError:
        return False
    return True
