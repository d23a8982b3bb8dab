"""One-line errors for every stage script, with the traceback behind ``GENEMI_DEBUG=1``.

A stage declares ``@click.command(cls=Stage)``. Its output options have type :class:`Output` (a file) or
``Output(folder=True)``: before the stage does any work, every given one is checked distinct from the
others and from every path option it reads (same path, one inside another, links), then writable, so a
collision or a read-only location fails in a second instead of after training. The body runs inside a
:class:`genemi.io.OutputSet`: its outputs are published together when it succeeds, and none when it
fails. Any exception its body raises (a bad value,
a missing or corrupt file, a full disk, a failure inside torch) is printed as one paragraph
``Error: <message>`` on stderr and the process exits with status 1. The library's messages name
the file, record or key and what to do, so the traceback only helps when debugging genemi
itself: ``GENEMI_DEBUG=1 python stages/<stage>.py ...`` shows it (the exception propagates).
"""

from __future__ import annotations

import os

import click

DEBUG_ENV = "GENEMI_DEBUG"

# exceptions whose message is meant for the user as it stands (genemi raises these with the file/key named)
_PLAIN = (
    ValueError, FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError
)


def debug() -> bool:
    """Whether ``GENEMI_DEBUG`` asks for tracebacks (any value but "", "0", "false")."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def describe(e: BaseException) -> str:
    """The user-facing text of ``e``: its message, prefixed with its type where that type says more."""
    msg = str(e).strip() or repr(e)
    if isinstance(e, _PLAIN) or type(e).__module__.startswith("genemi"):
        text = msg
    else:  # e.g. RuntimeError from torch/DeepSpeed, KeyError: the type is part of the information
        text = f"{type(e).__name__}: {msg}"
    if isinstance(e, OSError) and e.filename and str(e.filename) not in text:
        text = f"{e.filename}: {text}"
    return text


class StageError(click.ClickException):
    """What :class:`Stage` turns an exception into: ``Error: ...`` and exit status 1."""

    def format_message(self) -> str:
        return f"{self.message}\n(set {DEBUG_ENV}=1 for the traceback)"


class Output(click.Path):
    """A stage's output path (a file, or a folder with ``folder=True``); :class:`Stage` checks it first."""

    def __init__(self, folder: bool = False, state: bool = False):
        super().__init__(dir_okay=folder, file_okay=not folder)
        self.folder = folder
        self.state = state  # resume state (checkpoints, a work dir): written as the stage goes


def ports(command: click.Command, values: dict) -> tuple[list, list]:
    """``(outputs, inputs)`` of ``command`` given its parsed ``values``: :class:`Output` options and the
    other path options, as :class:`genemi.io.Port` s named by their option."""
    from pathlib import Path

    from genemi.io import Port

    outs, ins = [], []
    for param in command.params:
        value = values.get(param.name)
        if value is None or not isinstance(param.type, click.Path):
            continue
        name = max((o for o in param.opts if o.startswith("--")), key=len, default=param.name)
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(param.type, Output):
                outs.append(Port(name, Path(v), param.type.folder, param.type.state))
            else:
                ins.append(Port(name, Path(v), not param.type.file_okay))
    return outs, ins


class Stage(click.Command):
    """A click command whose failures print one ``Error: ...`` paragraph (see the module docstring), and
    whose :class:`Output` options are checked writable before it runs."""

    def invoke(self, ctx: click.Context):
        from genemi.io import OutputSet, check_writable

        try:
            outs, ins = ports(self, ctx.params)
            outputs = OutputSet(outs, ins)  # collisions first: the message names both options
            for port in outs:
                check_writable(*(() if port.folder else (port.path,)), dirs=(port.path,) if port.folder else ())
            if os.environ.get("RANK", "0") == "0":  # one sweeper: another rank may be writing already
                outputs.sweep()  # temporaries a killed run left beside the outputs
            with outputs:
                return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as e:
            if debug():
                raise
            raise StageError(describe(e)) from e


class Raised:
    """An exception caught where a (worker) process built an item, carried to the reader to re-raise as
    itself: the user reads the one-line message naming the file, not "Caught X in DataLoader worker"."""

    def __init__(self, error: BaseException):
        self.error = error
