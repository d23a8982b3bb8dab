"""Downloads against a local HTTP server on 127.0.0.1 (threaded, with Range support); no network."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import socket
import stat
import threading
import time
import zipfile
from pathlib import Path

import frozen_params  # tests/fixtures/params.yaml, not the live params.yaml
import pytest

from genemi.download import fetch
from genemi.extract import safe_extract_zip
from genemi.images import read_bytes
from genemi.lockfile import DownloadError, Lock
from genemi.snapshot import fetch_tree


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
                if self.path.startswith("/redirect/"):  # like huggingface.co -> its CDN
                    self.send_response(302)
                    self.send_header("Location", self.path.removeprefix("/redirect"))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
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
    assert entry == {
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "source": server.url("/a.bin"),
    }
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
    dest = fetch(
        server.url("/f"), tmp_path / "f", key="f", lock=Lock(tmp_path / "l.json"), retries=2, progress=False
    )
    assert dest.read_bytes() == data
    assert [r for _, r in server.log] == [None, "bytes=12345-"]


def test_resume_follows_a_redirect_keeping_the_range(server, tmp_path):
    data = _blob(40_000)
    server.files["/cdn/f"] = data
    server.cut["/cdn/f"] = 1_000
    dest = fetch(
        server.url("/redirect/cdn/f"),
        tmp_path / "f",
        key="f",
        lock=Lock(tmp_path / "l.json"),
        retries=1,
        progress=False,
    )
    assert dest.read_bytes() == data
    assert server.log == [
        ("/redirect/cdn/f", None),
        ("/cdn/f", None),
        ("/redirect/cdn/f", "bytes=1000-"),
        ("/cdn/f", "bytes=1000-"),
    ]


def test_not_enough_disk_for_the_download_fails_before_writing(server, tmp_path, monkeypatch):
    import collections

    import genemi.download

    server.files["/f"] = _blob(10_000)
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(genemi.download.shutil, "disk_usage", lambda p: usage(10**6, 10**6, 100))
    with pytest.raises(DownloadError, match=r"still to download but .* GiB free"):
        fetch(server.url("/f"), tmp_path / "f", key="f", lock=Lock(tmp_path / "l.json"), progress=False)
    assert not (tmp_path / "f.part").exists()


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


@pytest.mark.parametrize(
    "bad", ["../escape.txt", "images/../../escape.txt", "/abs/escape.txt", "C:/win.txt", "a\\..\\..\\b.txt"]
)
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

    with pytest.raises(
        DownloadError, match=r"cannot download org/model: ConnectionError.*run again to resume"
    ):
        fetch_tree(tmp_path / "m", fill, key="m", lock=Lock(tmp_path / "l.json"), source="org/model")
    assert (tmp_path / "m.partial" / "half.bin").exists() and not (tmp_path / "m").exists()


# ------------------------------------------------------------------------ real-data sources, end to end

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[1]


def _real_params(**overrides):
    """The `real` section of the frozen test params, with overrides (e.g. URLs on the local server)."""
    import dataclasses

    from genemi.config import RealDataParams, _build

    raw = frozen_params.raw()["real"]
    return dataclasses.replace(_build(RealDataParams, raw, "real"), **overrides)


def _zip_bytes(entries: dict[str, bytes]) -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_hnc_and_gqa_sources_feed_the_loader(server, tmp_path):
    from genemi.data.hnc import HncStats, iter_hnc_records
    from genemi.data.sources import fetch_gqa, fetch_hnc

    train, test = (
        (FIXTURES / "hnc" / "hnc_train_mini.json").read_bytes(),
        (FIXTURES / "hnc" / "hnc_test_mini.json"),
    )
    for split, body in [("train", train), ("val", train), ("test", test.read_bytes())]:
        server.files[f"/datasets/patilli/HNC/resolve/main/hnc_clean_strict_{split}.json"] = body
    server.files["/gqa/images.zip"] = _zip_bytes({"images/2386621.jpg": b"a", "images/n100552.jpg": b"b"})
    real = _real_params(gqa_images_url=server.url("/gqa/images.zip"), reserve_gb=0.0, retries=0)
    lock, dl = Lock(tmp_path / "lock.json"), tmp_path / "downloads"
    hnc = fetch_hnc(real, tmp_path / "raw" / "hnc", dl, lock, endpoint=server.url(""), progress=False)
    gqa = fetch_gqa(real, tmp_path / "raw" / "gqa", dl, lock, progress=False)
    assert sorted(p.name for p in hnc.iterdir()) == [
        f"hnc_clean_strict_{s}.json" for s in ("test", "train", "val")
    ]
    assert (hnc / "hnc_clean_strict_train.json").stat().st_ino == (
        dl / "hnc" / "hnc_clean_strict_train.json"
    ).stat().st_ino
    assert sorted(json.loads(lock.path.read_text())) == ["gqa/images.zip"] + [
        f"hnc/hnc_clean_strict_{s}.json" for s in ("test", "train", "val")
    ]
    stats = HncStats()
    recs = list(
        iter_hnc_records(hnc / "hnc_clean_strict_train.json", "train", image_root=gqa / "images", stats=stats)
    )
    assert {r.image for r in recs} == {"2386621.jpg"} and stats.images_missing == 2
    recs = list(iter_hnc_records(hnc / "hnc_clean_strict_test.json", "test", image_root=gqa / "images"))
    assert {r.image for r in recs} == {"n100552.jpg"}
    # the output is the verified zip itself (a hard link to the download), never extracted
    assert [p.name for p in gqa.iterdir()] == ["images.zip"]
    assert (gqa / "images.zip").stat().st_ino == (dl / "gqa" / "images.zip").stat().st_ino
    assert read_bytes(gqa / "images" / "n100552.jpg") == b"b"
    # a second run finds everything in the downloads folder: no request at all
    n = len(server.log)
    fetch_gqa(real, tmp_path / "raw" / "gqa", dl, lock, progress=False)
    assert len(server.log) == n


def test_coco_source_layout_matches_the_coco_loader(server, tmp_path):
    from genemi.data.coco import iter_caption_annotation_records, iter_karpathy_records
    from genemi.data.sources import fetch_coco

    server.files["/zips/val2014.zip"] = _zip_bytes({"val2014/COCO_val2014_000000391895.jpg": b"x"})
    server.files["/annotations/annotations_trainval2014.zip"] = _zip_bytes(
        {"annotations/captions_val2014.json": (FIXTURES / "coco" / "captions_val2014_mini.json").read_bytes()}
    )
    server.files["/k/caption_datasets.zip"] = _zip_bytes(
        {"dataset_coco.json": (FIXTURES / "coco" / "dataset_coco_mini.json").read_bytes()}
    )
    real = _real_params(
        coco_images_url=server.url("/zips/val2014.zip"),
        coco_annotations_url=server.url("/annotations/annotations_trainval2014.zip"),
        karpathy_url=server.url("/k/caption_datasets.zip"),
        reserve_gb=0.0,
    )
    out = fetch_coco(real, tmp_path / "coco", tmp_path / "dl", Lock(tmp_path / "l.json"), progress=False)
    recs = list(
        iter_karpathy_records(
            out / "caption_datasets" / "dataset_coco.json", splits=real.coco_splits, image_root=out / "images"
        )
    )
    assert [r.id for r in recs] == ["coco-391895-770337", "coco-391895-771687"]
    anns = out / "annotations_trainval2014" / "annotations" / "captions_val2014.json"
    assert len(list(iter_caption_annotation_records(anns, image_root=out / "images"))) == 2
    # val2014.zip kept whole (the annotation zips, a few files each, are extracted)
    assert [p.name for p in (out / "images").iterdir()] == ["val2014.zip"]
    assert read_bytes(out / "images" / "val2014" / "COCO_val2014_000000391895.jpg") == b"x"


@pytest.mark.parametrize("members,match", [
    ({"gqa/1.jpg": b"a", "readme.txt": b"r"}, r"images\.zip: no images/<name>\.jpg images in it"),
    (None, r"images\.zip: not a readable zip archive"),
])  # fmt: skip
def test_an_image_zip_of_the_wrong_layout_is_refused_before_it_is_the_output(server, tmp_path, members, match):
    from genemi.data.sources import fetch_gqa

    server.files["/gqa/images.zip"] = _zip_bytes(members) if members else b"PK\x03\x04 not a zip"
    real = _real_params(gqa_images_url=server.url("/gqa/images.zip"), retries=0)
    with pytest.raises(DownloadError, match=match):
        fetch_gqa(real, tmp_path / "raw" / "gqa", tmp_path / "dl", Lock(tmp_path / "l.json"), progress=False)
    assert not (tmp_path / "raw" / "gqa").exists()


def test_model_sources_single_file_and_hf_snapshot(server, tmp_path, monkeypatch):
    import huggingface_hub

    from genemi.config import ModelSource
    from genemi.data.sources import fetch_model

    server.files["/sam/sam_vit_h_4b8939.pth"] = b"weights"
    real = _real_params()
    lock = Lock(tmp_path / "l.json")
    src = ModelSource(url=server.url("/sam/sam_vit_h_4b8939.pth"), repo="", revision="", patterns=())
    out = fetch_model("sam_vit_h", src, real, tmp_path / "m" / "sam", tmp_path / "dl", lock, progress=False)
    assert (out / "sam_vit_h_4b8939.pth").read_bytes() == b"weights"

    seen = {}

    def fake_snapshot(repo_id, *, revision, local_dir, allow_patterns, etag_timeout):
        seen.update(repo=repo_id, revision=revision, patterns=allow_patterns)
        (Path(local_dir) / "unet").mkdir(parents=True)
        (Path(local_dir) / "unet" / "config.json").write_text("{}")
        (Path(local_dir) / "model_index.json").write_text("{}")
        (Path(local_dir) / ".cache" / "huggingface").mkdir(parents=True)  # resume metadata, dropped
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    sd = real.models["sd_inpaint"]
    out = fetch_model("sd_inpaint", sd, real, tmp_path / "m" / "sd", tmp_path / "dl", lock, progress=False)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "model_index.json",
        "unet",
        "unet/config.json",
    ]
    assert seen == {"repo": sd.repo, "revision": sd.revision, "patterns": list(sd.patterns)}
    assert lock.get("models/sd_inpaint")["size"] == 4
    with pytest.raises(ValueError, match="real.models.bad: set exactly one of url"):
        fetch_model("bad", ModelSource("", "", "", ()), real, tmp_path / "x", tmp_path / "dl", lock)


# --------------------------------------------------------------------------------- the gate in the stages


def _stage(name: str, monkeypatch, params):
    """The click command of ``stages/<name>.py``, reading ``params`` instead of params.yaml."""
    import importlib.util

    monkeypatch.syspath_prepend(str(ROOT / "stages"))  # as `python stages/<name>.py` has it
    spec = importlib.util.spec_from_file_location(f"stage_{name}", ROOT / "stages" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    import download_options  # the command the download scripts share

    for m in (mod, download_options):
        if hasattr(m, "load_params"):
            monkeypatch.setattr(m, "load_params", lambda path: params)
    return mod.main


def test_synthetic_source_writes_placeholders_without_network(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from click.testing import CliRunner

    import genemi.download
    import genemi.extract
    import genemi.snapshot

    def no_network(*a, **k):
        raise AssertionError("the synthetic default must not download")

    import urllib.request

    import genemi.data.sources

    for module, name in ((genemi.download, "fetch"), (genemi.snapshot, "fetch_tree"),
                         (genemi.extract, "safe_extract_zip")):
        monkeypatch.setattr(module, name, no_network)
        monkeypatch.setattr(genemi.data.sources, name, no_network)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    params = SimpleNamespace(
        data=SimpleNamespace(source="synthetic", hnc_subset=0.1, stand_in="none", stand_in_size=10),
        real=_real_params(),
        eval=SimpleNamespace(benchmarks={}),
        mine_real=SimpleNamespace(backend="pretrained"),
    )
    run = CliRunner().invoke
    for script, args in (
        ("download_hnc", []),
        ("download_gqa", []),
        ("download_coco", []),
        ("download_genemi_val", []),
        ("download_stanza", []),
        ("download_model", ["--name", "sam_vit_h"]),
    ):
        out = tmp_path / script
        cmd = _stage(script, monkeypatch, params)
        res = run(cmd, [*args, "--out", str(out), "--downloads", str(tmp_path / "dl")])
        assert res.exit_code == 0, res.output
        assert [p.name for p in out.iterdir()] == ["SKIPPED.txt"]
        assert "nothing downstream needs this folder" in (out / "SKIPPED.txt").read_text()
    # the two conversions write empty manifests and say why in their stats
    for script, args in (
        ("hnc_manifest", ["--hnc", "download_hnc", "--images", "download_gqa", "--out", "man"]),
        ("coco_manifest", ["--coco", "download_coco", "--out", "k.jsonl"]),
    ):
        stats = tmp_path / f"{script}.json"
        paths = [a if a.startswith("--") else str(tmp_path / a) for a in args]
        res = run(_stage(script, monkeypatch, params), [*paths, "--stats", str(stats)])
        assert res.exit_code == 0, res.output
        assert json.loads(stats.read_text())["skipped"].startswith("data.source is synthetic")
    assert sorted(p.name for p in (tmp_path / "man").iterdir()) == ["test.jsonl", "train.jsonl", "val.jsonl"]
    assert all(p.read_text() == "" for p in (tmp_path / "man").iterdir())
    # the off road's COCO manifest: no record, yet not 0 bytes (DVC warns "is empty" about each empty output)
    from genemi.manifest import read_manifest

    assert read_manifest(tmp_path / "k.jsonl") == [] and (tmp_path / "k.jsonl").stat().st_size > 0
    assert not (tmp_path / "dl").exists()
    res = run(_stage("download_model", monkeypatch, params), ["--name", "nope", "--out", str(tmp_path / "x")])
    assert res.exit_code != 0 and "no real.models.nope" in res.output


def test_stage_reports_a_download_failure_in_one_line(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from click.testing import CliRunner

    real = _real_params(gqa_images_url=f"http://127.0.0.1:{_closed_port()}/images.zip")
    params = SimpleNamespace(
        data=SimpleNamespace(source="hnc", stand_in="none"),
        real=real,
        eval=SimpleNamespace(benchmarks={}),
        mine_real=SimpleNamespace(backend="pretrained"),
    )
    res = CliRunner().invoke(
        _stage("download_gqa", monkeypatch, params),
        [
            "--out",
            str(tmp_path / "gqa"),
            "--downloads",
            str(tmp_path / "dl"),
            "--lock",
            str(tmp_path / "l.json"),
            "--quiet",
        ],
    )
    assert res.exit_code == 1
    assert "Error: download_gqa: cannot reach" in res.output
    assert str((tmp_path / "dl" / "gqa" / "images.zip").resolve()) in res.output
    assert not (tmp_path / "gqa").exists()


def test_pipeline_fragment_names_real_scripts_and_params():
    """Each real-data stage lists its script in deps, and every params key it names exists."""
    import dataclasses

    import yaml

    from genemi.config import Params

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())  # the shipped file: dvc.yaml reads it
    mine = {
        k: v for k, v in stages.items() if k.startswith("download_") or k in ("hnc_manifest", "coco_manifest")
    }
    models = params["real"]["models"]
    assert {f"download_{m}" for m in models} <= set(mine) and len(mine) == 7 + len(models)  # + genemi_val
    sections = {f.name for f in dataclasses.fields(Params)}
    for name, st in mine.items():
        script = st["cmd"].split()[1]
        assert script in st["deps"], name
        # one script per stage: the stage's own file, but for the model checkpoints sharing one
        assert script == f"stages/{name}.py" or (
            script == "stages/download_model.py" and "--name" in st["cmd"]
        )
        for key in st["params"]:
            top, *rest = key.split(".")
            assert top in sections, f"{name}: {key}"
            node = params.get(top)
            if top == "real":  # this fragment's own section: the key must be in params.yaml
                for part in rest:
                    assert isinstance(node, dict) and part in node, f"{name}: {key} not in params.yaml"
                    node = node[part]
        if "--name" in st["cmd"]:
            model = st["cmd"].split("--name")[1].split()[0]
            assert name == f"download_{model}" and f"real.models.{model}" in st["params"]


def test_atomic_dir_replaces_whole_or_not_at_all(tmp_path):
    from genemi.extract import atomic_dir

    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (tmp / "new.txt").write_text("half")
        raise RuntimeError("interrupted")
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and (out / "old.txt").read_text() == "old"
    with atomic_dir(out) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask  # like mkdir, not mkdtemp's private 0700
