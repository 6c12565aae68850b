"""Reading files bounded by their size, and writing them atomically."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap

import pytest

from sk_mnist._utils._files import atomic_write, read_bounded

_UNDER_A_CAP = textwrap.dedent(
    """
    import resource, sys
    from sk_mnist._utils._files import read_bounded
    cap = 512 * 1024**2
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    data = read_bounded(sys.argv[1], 2 * 1024**3)
    print(len(data))
    """
)


def test_reading_a_small_file_takes_memory_for_its_size_not_the_limit(tmp_path):
    # Under a 512 MiB address-space cap, a 260 KB file read with a limit of
    # 2 GiB: reserving the limit first would fail with MemoryError.
    small = tmp_path / "small.bin"
    small.write_bytes(os.urandom(260_000))
    done = subprocess.run(
        [sys.executable, "-c", _UNDER_A_CAP, str(small)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "260000"


def test_a_file_larger_than_the_limit_is_refused_by_its_size(tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as file:
        file.truncate(10_000)
    with pytest.raises(ValueError, match=r"big.bin is 10000 bytes, larger than"):
        read_bounded(big, 9_999)


def test_a_fifo_or_device_target_is_never_replaced(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for target in (fifo, "/dev/null"):
        with (
            pytest.raises(ValueError, match="not a regular file"),
            atomic_write(target),
        ):
            pytest.fail("the block must not run")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert sorted(os.listdir(tmp_path)) == ["fifo"]


def test_a_failed_write_names_the_target_not_the_part_file(tmp_path, monkeypatch):
    target = tmp_path / "model.skops"

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError) as info, atomic_write(target) as file:
        file.write(b"x")
    assert str(target) in str(info.value)
    assert ".part" not in str(info.value)
    assert os.listdir(tmp_path) == []
