"""One stanza processor list (``STANZA_USERS`` in genemi/config.py): every stanza.Pipeline draws from it,
and the download fetches what each of them loads. No network: stanza.download is replaced by a fake."""

import ast
from pathlib import Path

import pytest

from genemi import config as C
from genemi.data.sources import stanza_missing

ROOT = Path(__file__).resolve().parents[1]
GENEMI = ROOT / "genemi"


def _pipeline_calls() -> list[tuple[str, ast.Call]]:
    """Every ``stanza.Pipeline(...)`` / ``Pipeline(...)`` call in genemi/, with its ``file:line``."""
    calls = []
    for path in sorted(GENEMI.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            if (isinstance(f, ast.Attribute) and f.attr == "Pipeline") or (
                isinstance(f, ast.Name) and f.id == "Pipeline"
            ):
                calls.append((f"{path.relative_to(ROOT)}:{node.lineno}", node))
    return calls


def _names(node: ast.AST, name: str) -> bool:
    """``node`` is ``name`` or ``<module>.name`` (the one definition in genemi/config.py)."""
    if isinstance(node, ast.Name):
        return node.id == name
    return isinstance(node, ast.Attribute) and node.attr == name


def test_every_stanza_pipeline_draws_its_processors_from_the_one_list():
    calls = _pipeline_calls()
    # the parser (mining) and ARO Order's tagger: finding none would mean this test reads nothing
    assert len(calls) >= 2, calls
    users = set()
    for where, call in calls:
        kw = {k.arg: k.value for k in call.keywords}
        proc = kw.get("processors")
        assert (
            isinstance(proc, ast.Call)
            and _names(proc.func, "stanza_processors")
            and len(proc.args) == 1
            and isinstance(proc.args[0], ast.Constant)
        ), f"{where}: processors= must be stanza_processors('<user>'), got {proc and ast.unparse(proc)}"
        user = proc.args[0].value
        assert user in C.STANZA_USERS, f"{where}: unknown stanza user {user!r}"
        users.add(user)
        lang = call.args[0] if call.args else kw.get("lang")
        assert lang is not None and _names(lang, "STANZA_LANG"), f"{where}: lang must be STANZA_LANG"
        # never fetch at load time: a missing model must fail, not download behind the lock's back
        dl = kw.get("download_method")
        assert isinstance(dl, ast.Constant) and dl.value is None, f"{where}: pass download_method=None"
    assert users == set(C.STANZA_USERS), f"STANZA_USERS no pipeline loads: {set(C.STANZA_USERS) - users}"


def test_no_processor_list_is_spelled_out_elsewhere():
    """A literal like "tokenize,pos" anywhere in genemi/ is a second, drifting copy of the list."""
    names = set(C.STANZA_PROCESSORS)
    for path in sorted(GENEMI.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                parts = {p.strip() for p in node.value.split(",")}
                assert not (len(parts) > 1 and parts <= names), (
                    f"{path.relative_to(ROOT)}:{node.lineno}: processor list {node.value!r}; "
                    "use genemi.config.stanza_processors()"
                )


def test_the_union_covers_every_user_in_stanza_order():
    assert C.STANZA_PROCESSORS[0] == "tokenize"  # every other processor needs tokens
    for user, procs in C.STANZA_USERS.items():
        assert set(procs) <= set(C.STANZA_PROCESSORS), user
        assert C.stanza_processors(user) == ",".join(procs)
    assert C.stanza_processors() == ",".join(C.STANZA_PROCESSORS)
    # what the caption code reads off a parse: lemmas, heads and a constituency tree
    assert {"lemma", "depparse", "constituency"} <= set(C.STANZA_USERS["parser"])
    with pytest.raises(KeyError, match="no stanza user 'nope'"):
        C.stanza_processors("nope")


class FakeDownload:
    """Stands in for ``stanza.download``: writes stanza's layout (resources.json, <lang>/<proc>/<pkg>.pt)
    for the processors asked, or only for ``only`` when given (an older, shorter list)."""

    def __init__(self, only: str | None = None):
        self.calls = []
        self.only = only

    def __call__(self, lang, model_dir, processors, **kw):
        self.calls.append((lang, processors))
        d = Path(model_dir)
        d.mkdir(parents=True, exist_ok=True)
        (d / "resources.json").write_text("{}")
        for p in (self.only or processors).split(","):
            (d / lang / p).mkdir(parents=True, exist_ok=True)
            (d / lang / p / "default.pt").write_bytes(p.encode())
        (d / lang / "pretrain").mkdir(exist_ok=True)  # a dependency stanza adds on its own
        (d / lang / "pretrain" / "conll17.pt").write_bytes(b"vectors")


def _fetch(tmp_path, monkeypatch, fake):
    import stanza

    from genemi.data.sources import fetch_stanza
    from genemi.lockfile import Lock

    monkeypatch.setattr(stanza, "download", fake)
    lock = Lock(tmp_path / "lock.json")
    return fetch_stanza(None, tmp_path / "out", tmp_path / "dl", lock), lock


def test_download_fetches_what_every_user_loads(tmp_path, monkeypatch):
    fake = FakeDownload()
    out, lock = _fetch(tmp_path, monkeypatch, fake)
    [(lang, asked)] = fake.calls
    assert lang == C.STANZA_LANG
    for user, procs in C.STANZA_USERS.items():
        assert set(procs) <= set(asked.split(",")), f"download_stanza lacks {user}'s processors"
        # and the output folder serves that user's pipeline
        assert all(any((out / C.STANZA_LANG / p).glob("*.pt")) for p in procs), user
    assert stanza_missing(out) == []
    assert "stanza/en" in lock.read()
    # a second run reuses the verified tree, no new download
    _fetch(tmp_path, monkeypatch, fake)
    assert len(fake.calls) == 1


def test_a_tree_for_an_older_list_is_refused_before_it_is_pinned(tmp_path, monkeypatch):
    from genemi.lockfile import DownloadError

    # what the old `real.stanza_processors` fetched: the parser could not load from it
    with pytest.raises(DownloadError, match="no stanza model for lemma, depparse"):
        _fetch(tmp_path, monkeypatch, FakeDownload(only="tokenize,pos,constituency"))
    assert not (tmp_path / "lock.json").exists() or "stanza/en" not in (tmp_path / "lock.json").read_text()
    assert not (tmp_path / "out").exists()
    # the same tree placed by hand in the downloads folder is refused too, naming it
    FakeDownload(only="tokenize,pos,constituency")("en", tmp_path / "dl" / "stanza" / "en", "")
    with pytest.raises(DownloadError, match=r"dl/stanza/en: no stanza model for lemma, depparse.*delete"):
        _fetch(tmp_path, monkeypatch, FakeDownload())


@pytest.mark.parametrize(
    "key,value",
    [("stanza_processors", "tokenize,pos,constituency"), ("stanza_lang", "de")],  # the old list; a language
)
def test_the_params_record_of_the_list_cannot_be_edited(key, value):
    """real.stanza_* only record the list for dvc.lock: an edit would download what no pipeline loads."""
    import frozen_params

    raw = frozen_params.raw()
    C.params_from_dict(raw)  # the record matches (the live file: test_the_shipped_params_are_in_range)
    raw["real"][key] = value
    with pytest.raises(C.ConfigError, match=rf"real\.{key} = '{value}': fixed by the stanza model list"):
        C.params_from_dict(raw)
