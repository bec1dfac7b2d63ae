"""The control socket file: permissions from birth, path limits, stale files, live servers,
clean removal on shutdown."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest
import trio

from node.rpc import RpcServer, SocketPathError
from node.rpc.unix_socket import remove_stale_socket


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


async def test_socket_is_0600_in_a_0700_directory_even_with_umask_zero(
    socket_path: Path, nursery: trio.Nursery
) -> None:
    previous = os.umask(0)  # the most permissive umask: bits must come from the server
    try:
        server = RpcServer(socket_path)
        await nursery.start(server.run)
    finally:
        os.umask(previous)
    assert stat.S_ISSOCK(os.lstat(socket_path).st_mode)
    assert mode_of(socket_path) == 0o600
    assert mode_of(socket_path.parent) == 0o700
    assert os.umask(previous) == previous, "the server must restore the process umask"


async def test_missing_parents_are_created_last_level_private(short_dir: Path) -> None:
    path = short_dir / "a" / "b" / "control.sock"
    server = RpcServer(path)
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            assert mode_of(path.parent) == 0o700
            assert path.exists()
            scope.cancel()
    assert not path.exists()


async def test_shutdown_removes_the_socket(socket_path: Path) -> None:
    server = RpcServer(socket_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        assert socket_path.exists()
        nursery.cancel_scope.cancel()
    assert not socket_path.exists()
    # And the server can start again on the same path.
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        assert socket_path.exists()
        nursery.cancel_scope.cancel()
    assert not socket_path.exists()


async def test_shutdown_leaves_a_file_that_replaced_ours(socket_path: Path) -> None:
    server = RpcServer(socket_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        socket_path.unlink()
        socket_path.write_text("someone else's")
        nursery.cancel_scope.cancel()
    assert socket_path.read_text() == "someone else's"


def test_path_of_100_bytes_is_refused_with_advice(short_dir: Path) -> None:
    base = len(os.fsencode(short_dir / "x"))
    path = short_dir / ("x" * (100 - base + 1))
    assert len(os.fsencode(path)) == 100
    with pytest.raises(SocketPathError, match=r"is 100 bytes; it must be under 100 bytes"):
        RpcServer(path)
    just_fits = short_dir / ("x" * (99 - base + 1))
    assert len(os.fsencode(just_fits)) == 99
    RpcServer(just_fits)  # accepted


async def test_stale_socket_file_is_replaced(socket_path: Path) -> None:
    socket_path.parent.mkdir(mode=0o700)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(socket_path))  # bound, never listening, then closed: a crashed server
    dead.close()
    assert stat.S_ISSOCK(os.lstat(socket_path).st_mode)
    server = RpcServer(socket_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        stream = await trio.open_unix_socket(str(socket_path))
        await stream.send_all(b'{"jsonrpc":"2.0","method":"unsubscribe","params":[1],"id":1}\n')
        assert b'"code":-32602' in await stream.receive_some(4096)
        await stream.aclose()
        nursery.cancel_scope.cancel()


async def test_live_server_is_not_displaced(socket_path: Path) -> None:
    first = RpcServer(socket_path)
    second = RpcServer(socket_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(first.run)
        inode = os.lstat(socket_path).st_ino
        with pytest.raises(SocketPathError, match="another server is already listening"):
            await second.run()
        assert os.lstat(socket_path).st_ino == inode, "the live socket must be untouched"
        nursery.cancel_scope.cancel()


async def test_failed_start_can_be_retried(socket_path: Path) -> None:
    socket_path.parent.mkdir(mode=0o700)
    socket_path.write_text("in the way")
    server = RpcServer(socket_path)
    with pytest.raises(SocketPathError):
        await server.run()
    socket_path.unlink()
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        assert stat.S_ISSOCK(os.lstat(socket_path).st_mode)
        nursery.cancel_scope.cancel()


async def test_run_twice_concurrently_is_refused(socket_path: Path) -> None:
    server = RpcServer(socket_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        with pytest.raises(RuntimeError, match="already running"):
            await server.run()
        nursery.cancel_scope.cancel()


def test_regular_file_in_the_way_is_not_removed(socket_path: Path) -> None:
    socket_path.parent.mkdir(mode=0o700)
    socket_path.write_text("data")
    with pytest.raises(SocketPathError, match="is not a socket"):
        remove_stale_socket(socket_path)
    assert socket_path.read_text() == "data"


@pytest.mark.parametrize("loose_mode", [0o755, 0o750, 0o1777])
async def test_directory_others_can_enter_is_refused(socket_path: Path, loose_mode: int) -> None:
    socket_path.parent.mkdir()
    os.chmod(socket_path.parent, loose_mode)
    with pytest.raises(SocketPathError, match=r"chmod 700"):
        await RpcServer(socket_path).run()
    assert mode_of(socket_path.parent) == loose_mode, "never chmod a directory we did not make"
    assert not socket_path.exists()


async def test_directory_path_that_is_a_file_is_refused(short_dir: Path) -> None:
    (short_dir / "file").write_text("")
    with pytest.raises(SocketPathError, match="exists and is not a directory"):
        await RpcServer(short_dir / "file" / "control.sock").run()
