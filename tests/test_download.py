"""Downloads against a local HTTP server on 127.0.0.1 (threaded, with Range support); no network."""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import stat
import threading
import time
import zipfile
from pathlib import Path

import pytest

from genemi.download import DownloadError, Lock, fetch, fetch_tree, safe_extract_zip


class _Server:
    """Serves ``files`` (path -> bytes). ``cut[path] = n`` sends only n bytes of the next response, then
    drops the connection; ``no_range`` ignores Range headers (answers 200). Requests are logged."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.no_range = False
        self.log: list[tuple[str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:
                rng = self.headers.get("Range")
                server.log.append((self.path, rng))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                start = 0
                if rng and not server.no_range:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                payload = body[start:]
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                n = server.cut.pop(self.path, None)
                if n is not None:  # simulate a cut connection mid-body
                    self.wfile.write(payload[:n])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(payload)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture
def server():
    s = _Server()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def _blob(n: int, seed: int = 0) -> bytes:
    return bytes((i * 131 + seed * 7 + (i >> 8)) % 251 for i in range(n))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fetch_writes_file_and_records_sha256(server, tmp_path):
    data = _blob(50_000)
    server.files["/a.bin"] = data
    lock = Lock(tmp_path / "downloads.lock.json")
    out = fetch(server.url("/a.bin"), tmp_path / "dl" / "a.bin", key="a", lock=lock, progress=False)
    assert out.read_bytes() == data
    entry = json.loads(lock.path.read_text())["a"]
    assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "source": server.url("/a.bin")}
    assert not (tmp_path / "dl" / "a.bin.part").exists()


def test_cut_connection_keeps_part_and_next_call_resumes_with_range(server, tmp_path):
    data = _blob(200_000)
    server.files["/big.bin"] = data
    server.cut["/big.bin"] = 70_000
    lock = Lock(tmp_path / "lock.json")
    dest = tmp_path / "big.bin"
    with pytest.raises(DownloadError, match=r"interrupted after 70000 of 200000 bytes.*run again to resume"):
        fetch(server.url("/big.bin"), dest, key="big", lock=lock, retries=0, progress=False)
    assert (tmp_path / "big.bin.part").stat().st_size == 70_000
    assert not dest.exists() and lock.get("big") is None
    fetch(server.url("/big.bin"), dest, key="big", lock=lock, retries=0, progress=False)
    assert dest.read_bytes() == data
    assert server.log[-1] == ("/big.bin", "bytes=70000-")
    assert lock.get("big")["sha256"] == hashlib.sha256(data).hexdigest()  # hash spans both sessions


def test_cut_connection_is_resumed_within_one_call(server, tmp_path):
    data = _blob(100_000)
    server.files["/f"] = data
    server.cut["/f"] = 12_345
    dest = fetch(server.url("/f"), tmp_path / "f", key="f", lock=Lock(tmp_path / "l.json"), retries=2,
                 progress=False)
    assert dest.read_bytes() == data
    assert [r for _, r in server.log] == [None, "bytes=12345-"]


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    data = _blob(30_000)
    server.files["/f"] = data
    server.no_range = True
    (tmp_path / "f.part").write_bytes(b"garbage that must not be kept")
    dest = fetch(server.url("/f"), tmp_path / "f", key="f", lock=Lock(tmp_path / "l.json"), progress=False)
    assert dest.read_bytes() == data


def test_complete_part_gets_416_and_is_finished(server, tmp_path):
    data = _blob(5_000)
    server.files["/f"] = data
    (tmp_path / "f.part").write_bytes(data)
    dest = fetch(server.url("/f"), tmp_path / "f", key="f", lock=Lock(tmp_path / "l.json"), progress=False)
    assert dest.read_bytes() == data and server.log == [("/f", "bytes=5000-")]


def test_checksum_mismatch_raises_and_leaves_nothing(server, tmp_path):
    server.files["/f"] = _blob(10_000)
    lock = Lock(tmp_path / "lock.json")
    fetch(server.url("/f"), tmp_path / "first" / "f", key="f", lock=lock, progress=False)
    server.files["/f"] = _blob(10_000, seed=1)  # upstream changed (or the transfer was corrupted)
    dest = tmp_path / "second" / "f"
    with pytest.raises(DownloadError, match=r"second/f: checksum mismatch for 'f'.*lock\.json"):
        fetch(server.url("/f"), dest, key="f", lock=lock, progress=False)
    assert not dest.exists() and not (tmp_path / "second" / "f.part").exists()


def test_manual_file_is_verified_and_used_without_network(tmp_path):
    data = _blob(4_000)
    lock = Lock(tmp_path / "lock.json")
    lock.check_or_record("f", hashlib.sha256(data).hexdigest(), len(data), "somewhere", tmp_path)
    dest = tmp_path / "f"
    url = f"http://127.0.0.1:{_closed_port()}/f"
    dest.write_bytes(data)
    assert fetch(url, dest, key="f", lock=lock, progress=False) == dest
    dest.write_bytes(data[:-1] + b"\0")  # same size, wrong content: needs the hash to notice
    with pytest.raises(DownloadError, match="checksum mismatch"):
        fetch(url, dest, key="f", lock=lock, progress=False)
    dest.write_bytes(data[:10])
    with pytest.raises(DownloadError, match="size mismatch .* expected 4000 bytes"):
        fetch(url, dest, key="f", lock=lock, progress=False)


def test_404_names_url_and_manual_path(server, tmp_path):
    url = server.url("/missing.zip")
    dest = tmp_path / "missing.zip"
    with pytest.raises(DownloadError) as e:
        fetch(url, dest, key="m", lock=Lock(tmp_path / "l.json"), progress=False)
    assert "HTTP 404" in str(e.value) and url in str(e.value) and str(dest.resolve()) in str(e.value)
    assert not dest.exists()


def test_no_network_fails_within_seconds_naming_url_and_path(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/images.zip"
    dest = tmp_path / "gqa" / "images.zip"
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as e:
        fetch(url, dest, key="gqa", lock=Lock(tmp_path / "l.json"), retries=3, progress=False)
    assert time.monotonic() - t0 < 5
    msg = str(e.value)
    assert f"cannot reach {url}" in msg and f"place it at {dest.resolve()}" in msg


def test_lock_file_that_is_not_json_is_named(tmp_path):
    (tmp_path / "lock.json").write_text("{oops")
    with pytest.raises(DownloadError, match=r"lock\.json: lock file is not valid JSON"):
        Lock(tmp_path / "lock.json").get("x")


# ----------------------------------------------------------------------------------------------- extract


def _zip(path: Path, entries: dict[str, bytes], symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


def test_extract_writes_tree_atomically(tmp_path):
    arc = _zip(tmp_path / "a.zip", {"images/1.jpg": b"one", "images/sub/2.jpg": b"two", "images/": b""})
    out = safe_extract_zip(arc, tmp_path / "out", progress=False)
    assert (out / "images" / "1.jpg").read_bytes() == b"one"
    assert (out / "images" / "sub" / "2.jpg").read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp dir left
    with pytest.raises(DownloadError, match="already exists"):
        safe_extract_zip(arc, out, progress=False)


@pytest.mark.parametrize("bad", ["../escape.txt", "images/../../escape.txt", "/abs/escape.txt",
                                 "C:/win.txt", "a\\..\\..\\b.txt"])
def test_extract_rejects_escaping_entries_before_writing_anything(tmp_path, bad):
    arc = _zip(tmp_path / "evil.zip", {"images/ok.jpg": b"ok", bad: b"pwned"})
    with pytest.raises(DownloadError, match="refusing to extract"):
        safe_extract_zip(arc, tmp_path / "sub" / "out", progress=False)
    assert not (tmp_path / "sub" / "out").exists()
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "sub" / "escape.txt").exists()
    assert [p for p in (tmp_path / "sub").iterdir()] == []


def test_extract_rejects_symlink_entries(tmp_path):
    arc = _zip(tmp_path / "l.zip", {"a.txt": b"a"}, symlink="images/link")
    with pytest.raises(DownloadError, match="symlink entry 'images/link'"):
        safe_extract_zip(arc, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_extract_checks_free_disk_first(tmp_path):
    arc = _zip(tmp_path / "a.zip", {"x": b"x" * 100})
    with pytest.raises(DownloadError, match=r"extracting needs .* GiB free"):
        safe_extract_zip(arc, tmp_path / "out", reserve_bytes=1 << 60, progress=False)
    assert not (tmp_path / "out").exists()


def test_extract_names_a_broken_archive(tmp_path):
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(DownloadError, match=r"bad\.zip: not a readable zip archive"):
        safe_extract_zip(tmp_path / "bad.zip", tmp_path / "out", progress=False)


# -------------------------------------------------------------------------------------------------- trees


def test_fetch_tree_records_then_verifies(tmp_path):
    lock = Lock(tmp_path / "lock.json")
    calls = []

    def fill(d: Path) -> None:
        calls.append(d.name)
        (d / "sub").mkdir()
        (d / "sub" / "w.bin").write_bytes(b"weights")
        (d / "config.json").write_text("{}")

    dest = fetch_tree(tmp_path / "m", fill, key="m", lock=lock, source="repo/x")
    assert calls == ["m.partial"] and (dest / "sub" / "w.bin").read_bytes() == b"weights"
    assert lock.get("m")["size"] == len(b"weights") + 2
    fetch_tree(dest, fill, key="m", lock=lock, source="repo/x")  # present: verified, fill not called
    assert calls == ["m.partial"]
    (dest / "sub" / "w.bin").write_bytes(b"tampered")
    with pytest.raises(DownloadError, match="checksum mismatch for 'm'"):
        fetch_tree(dest, fill, key="m", lock=lock, source="repo/x")


def test_fetch_tree_failure_keeps_partial_and_names_source(tmp_path):
    def fill(d: Path) -> None:
        (d / "half.bin").write_bytes(b"half")
        raise ConnectionError("no route to host")

    with pytest.raises(DownloadError, match=r"cannot download org/model: ConnectionError.*run again to resume"):
        fetch_tree(tmp_path / "m", fill, key="m", lock=Lock(tmp_path / "l.json"), source="org/model")
    assert (tmp_path / "m.partial" / "half.bin").exists() and not (tmp_path / "m").exists()
