"""`copy_file`, the one copy helper (client copy actions and server remote copies)."""

from __future__ import annotations

import threading
from pathlib import Path

from pulsar.util.fileio import copy_file


def test_concurrent_copies_to_one_target_never_mix_or_fail(tmp_path: Path) -> None:
    """Each copy has its own temp file: two copies racing to one target both succeed and the
    target is one source whole (a fixed temp name made them write into each other)."""
    sources = []
    for index in range(2):
        source = tmp_path / f"source{index}"
        source.write_bytes(bytes([65 + index]) * (3 << 20))
        sources.append(source)
    target = tmp_path / "out" / "target"
    errors: list[BaseException] = []

    def copy(source: Path) -> None:
        try:
            for _ in range(10):
                copy_file(source, target, fsync=False, make_parents=True)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=copy, args=(source,)) for source in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert target.read_bytes() in (sources[0].read_bytes(), sources[1].read_bytes())
    assert sorted(p.name for p in target.parent.iterdir()) == ["target"]  # no temp file left
