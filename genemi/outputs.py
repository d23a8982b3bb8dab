"""A stage's outputs as one unit: all new or all old.

Every stage runs inside an :class:`OutputSet` (:class:`genemi.errors.Stage`). Before any work it checks that
no two outputs, and no output and input, are one file or one inside the other (links and ``a/../b``
spellings resolved), naming both options. While the stage runs, each write onto a declared output
(:func:`genemi.io.atomic_path`, :meth:`OutputSet.folder`) waits as a temporary beside it; when the stage
succeeds all of them are renamed into place together (and the renames undone if one fails), and when it
fails none is published and the temporaries are removed. :mod:`genemi.io` holds the writers that use it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path


class OutputError(OSError):
    """An output cannot be written (read-only folder, disk full, a folder in the way); names the path."""

    def __str__(self) -> str:  # the message alone: it already names the path
        return self.args[0] if self.args else super().__str__()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _output_error(path: Path, e: OSError) -> OutputError:
    why = e.strerror or str(e)
    hint = {
        28: "free disk space or write elsewhere",  # ENOSPC
        122: "free quota or write elsewhere",  # EDQUOT
        13: "make the folder writable or pass another output path",  # EACCES
        1: "the folder does not accept new files; pass another output path",  # EPERM
        30: "the file system is read-only; pass another output path",  # EROFS
    }.get(e.errno or 0, "check the path and its folder")
    err = OutputError(e.errno, f"{path}: cannot write ({why}); {hint}")
    err.args = (f"{path}: cannot write ({why}); {hint}",)
    return err


def real(path: str | os.PathLike) -> str:
    """``path`` as the file system reaches it: absolute, symbolic links followed, ``a/../b`` applied."""
    return os.path.realpath(os.path.abspath(os.fspath(path)))


def _inside(inner: str, outer: str) -> bool:
    return inner.startswith(outer.rstrip(os.sep) + os.sep)


def _same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Both exist and are one file (a hard link, or another spelling the real path missed)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


@dataclass(frozen=True)
class Port:
    """One path a stage reads or writes, as the user named it: ``name`` is the option (``--metrics``) or
    the params key it came from; ``folder``: a folder output (its files are the stage's); ``state``:
    resume state (checkpoints, a mining work dir, a download cache) written as the stage goes, never
    held back."""

    name: str
    path: Path
    folder: bool = False
    state: bool = False

    @property
    def real(self) -> str:
        return real(self.path)

    def shown(self) -> str:
        return f"{self.name} {self.path}"


def _collision(a: Port, b: Port, b_is_output: bool) -> str | None:
    """Why output ``a`` collides with ``b`` (another output, or an input), or None."""
    ra, rb = a.real, b.real
    if ra == rb or _same_file(a.path, b.path):
        same = "the same folder" if a.folder or b.folder else "the same file"
        how = "" if str(os.path.normpath(a.path)) == str(os.path.normpath(b.path)) else (
            " (a symbolic or hard link, or another spelling of one path)"
        )
        return f"{a.shown()} and {b.shown()} are {same}{how}"
    if _inside(rb, ra):  # an input or output inside an output folder
        return f"{b.shown()} is inside the output folder {a.shown()}"
    if b_is_output and _inside(ra, rb):
        return f"{a.shown()} is inside the output folder {b.shown()}"
    return None


class CollisionError(ValueError):
    """Two outputs of a stage, or an output and an input, are one path (or one inside the other)."""


class OutputSet:
    """A stage's outputs as one unit (see the module docstring).

    ``outputs``: the :class:`Port` s the stage writes; ``inputs``: those it reads. Creating the set checks
    that every output is distinct from every other output and every input (same path, one inside
    another, links): :class:`CollisionError` naming both. While the set is :func:`current`, every
    :func:`atomic_path` write onto a declared output (a file, or any file under a folder output) is held
    back as a temporary beside it; :meth:`publish` renames them all into place (undoing the ones done if
    a rename fails), :meth:`abort` removes them. Writes under ``state`` ports and outside the outputs go
    straight to disk. Only the process that opened the set defers (a forked worker writes through).
    """

    def __init__(self, outputs=(), inputs=()) -> None:
        self.outputs: list[Port] = []
        self.inputs: list[Port] = []
        self.files: dict[Path, Path] = {}  # final path -> temporary, in write order
        self.folders: dict[Path, Path] = {}  # final folder -> staged folder (:meth:`folder`)
        self.hooks: list = []  # run after a successful publish (e.g. clear the resume checkpoints)
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._held: tuple[str, ...] = ()
        self._read_ok: set = set()
        self._state: tuple[str, ...] = ()
        self.declare(outputs, inputs)

    # -- declaring ------------------------------------------------------------------------------
    def declare(self, outputs=(), inputs=()) -> None:
        """Add outputs and inputs (checked against each other and everything declared before)."""
        outputs, inputs = list(outputs), list(inputs)
        for i, a in enumerate(outputs):
            for b in [*self.outputs, *outputs[:i]]:
                why = _collision(a, b, True)
                if why:
                    raise CollisionError(f"{why}; give each output its own path")
            for b in [*self.inputs, *inputs]:
                why = _collision(a, b, False)
                if why:
                    raise CollisionError(f"{why}: the stage would overwrite what it reads; "
                                         f"pass another {a.name}")
        for b in inputs:
            for a in self.outputs:
                why = _collision(a, b, False)
                if why:
                    raise CollisionError(f"{why}: the stage would overwrite what it reads; "
                                         f"pass another {a.name}")
        self.outputs += outputs
        self.inputs += inputs
        self._held = tuple(p.real for p in self.outputs if not p.state)
        self._read_ok = set()
        self._state = tuple(p.real for p in self.outputs if p.state)

    def check_read(self, path: str | os.PathLike, what: str = "") -> None:
        """Refuse to read ``path`` when it is one of the held outputs (or inside a folder output): the
        stage would read the old file and then replace it. Cheap when nothing is declared."""
        if not self._held or path in self._read_ok:  # forked workers (decoding images) check too
            return
        r = real(path)
        for port, held in zip((p for p in self.outputs if not p.state), self._held, strict=True):
            if r == held or _inside(r, held) or (not port.folder and _same_file(path, port.path)):
                ref = f" ({what})" if what else ""
                raise CollisionError(
                    f"{path}{ref} is read by this stage and is also its output {port.shown()}: the stage "
                    f"would overwrite what it reads; pass another {port.name}"
                )
        self._read_ok.add(path)  # an archive read once per image is checked once

    def defers(self, path: str | os.PathLike) -> bool:
        """Whether a write onto ``path`` is held back until :meth:`publish`."""
        if not self._held or os.getpid() != self.pid:
            return False
        r = real(path)
        if any(r == s or _inside(r, s) for s in self._state):
            return False
        return any(r == h or _inside(r, h) for h in self._held)

    def sweep(self) -> int:
        """Remove what a killed run of this stage left beside its outputs: the temporaries
        :func:`atomic_path`, :meth:`folder` and :meth:`publish` name ``.<output name>.<8 random
        characters>[suffix]`` (a SIGKILL runs no cleanup). Returns how many were removed."""
        import re

        n = 0
        for port in self.outputs:
            if port.state:
                continue
            path = Path(os.path.abspath(port.path))
            pattern = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}(\.[A-Za-z0-9]+)?")
            try:
                entries = list(os.scandir(path.parent))
            except OSError:
                continue
            for entry in entries:
                if pattern.fullmatch(entry.name):
                    _remove(Path(entry.path))
                    n += 1
        return n

    # -- holding writes back -------------------------------------------------------------------
    def add(self, path: str | os.PathLike, tmp: Path) -> None:
        """Hold ``tmp`` (written in full) back until :meth:`publish` puts it at ``path``."""
        path = Path(os.path.abspath(path))
        with self._lock:
            old = self.files.pop(path, None)
            self.files[path] = tmp
        if old is not None and old != tmp:  # written twice in one run: the last one wins
            _remove(old)

    def folder(self, path: str | os.PathLike) -> Path:
        """A fresh empty folder to fill in place of the output folder ``path`` (for writers that manage
        a folder themselves, e.g. dvclive); it replaces ``path`` whole at :meth:`publish`. Outside a set
        (or for a path not held back) ``path`` itself."""
        path = Path(path)
        if not self.defers(path):
            return path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            staged = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
            staged.chmod(0o777 & ~_umask())  # a folder as mkdir makes it (mkdtemp's is 0700)
        except OSError as e:
            raise _output_error(path, e) from e
        with self._lock:
            self.folders[Path(os.path.abspath(path))] = staged
        return staged

    def hold_folder(self, path: str | os.PathLike, staged: Path) -> None:
        """Hold the filled folder ``staged`` back until :meth:`publish` puts it at ``path`` (replacing the
        old folder whole)."""
        with self._lock:
            old = self.folders.pop(Path(os.path.abspath(path)), None)
            self.folders[Path(os.path.abspath(path))] = staged
        if old is not None and old != staged:
            _remove(old)

    def after_publish(self, fn) -> None:
        """Run ``fn()`` once the outputs are published (never when the stage fails)."""
        self.hooks.append(fn)

    # -- the end -----------------------------------------------------------------------------------
    def publish(self) -> None:
        """Rename every held-back file and folder into place; on a failure undo the renames already
        done (the old outputs come back) and raise :class:`OutputError` naming the output."""
        moves = [*self.files.items(), *self.folders.items()]  # (final, temporary file or staged folder)
        self.files, self.folders = {}, {}
        done: list[tuple[Path, Path | None]] = []  # (final, where its old content went aside)
        try:
            for final, tmp in moves:
                backup = None
                if os.path.lexists(final):
                    backup = final.with_name(f".{final.name}.{os.urandom(4).hex()}.old")
                    os.replace(final, backup)
                done.append((final, backup))
                os.replace(tmp, final)
        except BaseException as e:
            for final, backup in reversed(done):
                with contextlib.suppress(OSError):
                    if os.path.lexists(final):  # the new output (the rename went through): take it out
                        _remove(final)
                    if backup is not None:
                        os.replace(backup, final)
            for _, tmp in moves:
                _remove(tmp)
            if isinstance(e, OSError) and not isinstance(e, OutputError):
                raise _output_error(done[-1][0] if done else moves[0][0], e) from e
            raise
        for _, backup in done:
            if backup is not None:
                _remove(backup)
        hooks, self.hooks = self.hooks, []
        for fn in hooks:
            fn()

    def abort(self) -> None:
        """Remove every held-back temporary; the outputs stay as they were."""
        moves = [*self.files.values(), *self.folders.values()]
        self.files, self.folders, self.hooks = {}, {}, []
        for tmp in moves:
            _remove(tmp)

    def __enter__(self) -> OutputSet:
        _stack.append(self)
        return self

    def __exit__(self, kind, error, tb) -> None:
        _stack.remove(self)
        if error is None:
            self.publish()
        else:
            self.abort()


_stack: list[OutputSet] = []


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()


def current() -> OutputSet | None:
    """The output set of the running stage (None outside a stage)."""
    return _stack[-1] if _stack else None


def check_read(path: str | os.PathLike, what: str = "") -> None:
    """Refuse to read one of the running stage's held outputs (see :meth:`OutputSet.check_read`)."""
    if _stack:
        _stack[-1].check_read(path, what)


def option_of(path: str | os.PathLike) -> str:
    """The option or params key the running stage was given ``path`` by (``--base``), or ``""``."""
    s = current()
    if s is None:
        return ""
    r = real(path)
    return next((p.name for p in [*s.inputs, *s.outputs] if p.real == r), "")


def declare(outputs=(), inputs=()) -> None:
    """Declare more outputs/inputs of the running stage (those its options do not name, e.g. files
    params point at); checked for collisions like the options. Outside a stage: checked, then dropped."""
    (current() or OutputSet()).declare(outputs, inputs)


def output_folder(path: str | os.PathLike) -> Path:
    """Where to write output folder ``path`` now (see :meth:`OutputSet.folder`)."""
    s = current()
    return s.folder(path) if s is not None else Path(path)


def after_publish(fn) -> None:
    """Run ``fn()`` when the running stage's outputs are published; outside a stage, now."""
    s = current()
    if s is None:
        fn()
    else:
        s.after_publish(fn)
