"""The fake Galaxy files API itself: what the MQ interop tests rely on."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from test.support.galaxy_files import FakeGalaxy, FilesRequest


def params(galaxy: FakeGalaxy, path: Path, file_type: str, key: str | None = None) -> dict[str, str]:
    return {"job_key": key or galaxy.job_key, "path": str(path), "file_type": file_type}


def test_serves_inputs_stores_outputs_and_records_every_request(fake_galaxy: FakeGalaxy) -> None:
    source = fake_galaxy.root / "objects" / "dataset_1.dat"
    source.parent.mkdir()
    source.write_bytes(b"in" * 100_000)
    endpoint = f"{fake_galaxy.url}/api/jobs/7/files"
    got = requests.get(endpoint, params=params(fake_galaxy, source, "input"), timeout=10)
    assert got.status_code == 200 and got.content == source.read_bytes()

    target = fake_galaxy.root / "objects" / "dataset_2.dat"
    posted = requests.post(endpoint, params=params(fake_galaxy, target, "output"),
                           files={"file": ("x", b"result\r\n--not a boundary\n")}, timeout=10)
    assert posted.status_code == 200
    assert target.read_bytes() == b"result\r\n--not a boundary\n"

    missing = requests.get(endpoint, params=params(fake_galaxy, fake_galaxy.root / "nope", "input"), timeout=10)
    bad_key = requests.get(endpoint, params=params(fake_galaxy, source, "input", key="wrong"), timeout=10)
    outside = requests.get(endpoint, params=params(fake_galaxy, Path("/etc/passwd"), "input"), timeout=10)
    assert (missing.status_code, bad_key.status_code, outside.status_code) == (404, 403, 403)
    assert fake_galaxy.requests_for("7")[:2] == [
        FilesRequest("GET", "7", fake_galaxy.job_key, str(source), "input", 200),
        FilesRequest("POST", "7", fake_galaxy.job_key, str(target), "output", 200),
    ]
    assert [r.status for r in fake_galaxy.requests] == [200, 200, 404, 403, 403]


def test_injected_failures_by_path_method_and_count(fake_galaxy: FakeGalaxy) -> None:
    source = fake_galaxy.root / "in.dat"
    source.write_text("x")
    endpoint = fake_galaxy.files_endpoint("8").split("?")[0]
    fake_galaxy.fail(500, "*/in.dat", method="GET", times=2)
    fake_galaxy.fail(403, "*/out.dat", method="POST")
    answers = [requests.get(endpoint, params=params(fake_galaxy, source, "input"), timeout=10).status_code
               for _ in range(3)]
    assert answers == [500, 500, 200]
    for _ in range(2):
        refused = requests.post(endpoint, params=params(fake_galaxy, fake_galaxy.root / "out.dat", "output"),
                                files={"file": ("x", b"data")}, timeout=10)
        assert refused.status_code == 403
    assert not (fake_galaxy.root / "out.dat").exists()


def test_concurrent_requests(fake_galaxy: FakeGalaxy) -> None:
    endpoint = fake_galaxy.files_endpoint("9").split("?")[0]

    def post(number: int) -> int:
        target = fake_galaxy.root / "many" / f"{number}.dat"
        return requests.post(endpoint, params=params(fake_galaxy, target, "output"),
                             files={"file": ("x", str(number).encode() * 1000)}, timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(post, range(40))) == [200] * 40
    assert len(fake_galaxy.requests_for("9")) == 40
    assert (fake_galaxy.root / "many" / "17.dat").read_bytes() == b"17" * 1000
