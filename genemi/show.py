"""Look at images that live in shards: export them as files, or draw records beside their negatives.

The pipeline keeps image collections in zip shards (data/synth/train.zip,
data/negatives/test.zip) and reads the published GQA/COCO zips in place, so there is no
folder to browse. This command gets any of them out:

\b
    # the files themselves, byte for byte, into a folder (each keeps its file name)
    python -m genemi.show data/negatives/test/test-000003.png --out shown/
    # the same, named as error messages name a member (ARCHIVE:MEMBER)
    python -m genemi.show data/negatives/test.zip:test/test-000003.png --out shown/
    # a record and its hard negatives as one captioned picture: shown/test-000003.sheet.png
    python -m genemi.show --manifest data/negatives/test.jsonl --id test-000003 --out shown/
    # the first 8 records of a manifest, one row each: shown/test-8.sheet.png
    python -m genemi.show --manifest data/negatives/test.jsonl --first 8 --out shown/
    # what a shard holds
    python -m genemi.show --list data/negatives/test.zip | head

Image paths are given as they would sit on disk unzipped (what manifests name); a shard or
zip beside the folder is read without extracting it. Every image is read before anything is
written, so a missing or damaged one writes nothing; two images with the same file name would
overwrite each other in --out and are refused. Files of the same name already in --out are
replaced. A bad argument or file stops with one "Error: ..." line naming it and
exit status 1 (2 for a misused option).
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import click

from genemi.errors import Stage


def image_path(arg: str) -> Path:
    """The reader's path for a command-line image: ``ARCHIVE.zip:MEMBER`` (how error messages name a
    member) becomes ``ARCHIVE.zip/MEMBER``, a root inside the archive; anything else is taken as is."""
    head, sep, member = arg.partition(".zip:")
    if sep and member and not Path(arg).exists():
        return Path(head + ".zip") / member
    return Path(arg)


def sheet_name(text: str) -> str:
    """A file name from a record id or manifest name: a manifest's id may hold ``/`` or ``..``, and the
    contact sheet must land in --out, nowhere else."""
    safe = re.sub(r"[^\w.=+-]", "_", text).lstrip(".")
    return safe or "record"


def check_out(out: Path) -> None:
    """Refuse an --out inside the folder of a shard (``data/negatives/test`` beside ``test.zip``): loose
    files there would shadow the shard's members, and the stage that writes the shard refuses a loose
    folder in its way, so the next ``dvc repro`` would fail."""
    cwd = Path.cwd()
    for folder in (out.absolute(), *out.absolute().parents[:-1]):  # not the file system's root
        if folder == cwd or folder in cwd.parents:  # the folders one works in, not a shard's (a
            break  # backup ~/project.zip beside the project must not refuse every --out)
        for suffix in (".zip", ".ZIP"):
            shard = folder.with_name(folder.name + suffix)
            if shard.is_file():
                raise click.BadParameter(
                    f"{out} is inside {folder}, the folder of the shard {shard}: files there would shadow "
                    "its images; pick another folder",
                    param_hint="--out",
                )


def record_rows(manifest: Path, root: Path, ids: tuple[str, ...], first: int) -> list[list]:
    """Contact-sheet rows: each chosen record's image, then each negative (its type and caption)."""
    from genemi.images import read_image
    from genemi.manifest import iter_manifest
    from genemi.plots import DROPPED, Tile

    wanted = set(ids)
    chosen = (
        [r for r in iter_manifest(manifest) if r.id in wanted]
        if ids
        else list(itertools.islice(iter_manifest(manifest), first))
    )
    missing = wanted - {r.id for r in chosen}
    if missing:
        raise ValueError(f"{manifest}: no record with id {sorted(missing)[0]!r} ({len(missing)} not found)")
    if not chosen:
        raise ValueError(f"{manifest}: no records to show")
    rows = []
    for r in chosen:
        what = f"record {r.id!r} of {manifest}"
        original = read_image(root / r.image, what=what)
        row = [Tile(original, f"TRUE: {r.caption}")]
        for n in r.negatives:
            image = read_image(root / n.image, what=f"{n.type} negative of {what}") if n.image else original
            caption = n.caption if n.caption is not None else r.caption
            row.append(Tile(image, f"{n.type}: {caption}", frame=DROPPED))
        rows.append(row)
    return rows


@click.command(cls=Stage, help=__doc__)
@click.argument("images", nargs=-1)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default="shown",
    show_default=True,
    help="Folder the exported files and contact sheets go to (created; not inside a shard's "
    "folder, where files would shadow the shard).",
)
@click.option(
    "--manifest",
    type=click.Path(exists=True, dir_okay=False),
    help="Draw records of this manifest beside their negatives as one contact sheet "
    "(IMAGES given too are exported as well).",
)
@click.option(
    "--root",
    type=click.Path(file_okay=False),
    help="Image root of the manifest's paths [default: the folder above the manifest's folder, "
    "as the pipeline lays out data/]",
)
@click.option("--id", "ids", multiple=True, help="With --manifest: a record id to draw (repeatable).")
@click.option(
    "--first",
    default=4,
    show_default=True,
    type=click.IntRange(min=1),
    help="With --manifest and no --id: draw this many records from the top.",
)
@click.option(
    "--list",
    "list_shard",
    type=click.Path(exists=True, dir_okay=False),
    help="Print the image member names of this shard or zip (no folder entries) and stop; "
    "not combined with other arguments.",
)
def main(images, out_dir, manifest, root, ids, first, list_shard) -> None:
    from genemi.images import read_bytes, shard_members
    from genemi.io import atomic_path, check_writable, write_png
    from genemi.plots import contact_sheet

    ctx = click.get_current_context()
    if list_shard:
        if images or manifest:
            raise click.UsageError("--list prints a shard's members and stops: give it alone")
        try:
            for name in shard_members(list_shard):
                click.echo(name)
        except BrokenPipeError:  # `| head` closed the pipe: that is not an error
            pass
        return
    if not images and not manifest:
        raise click.UsageError("give image paths to export, --manifest to draw records, or --list SHARD")
    if not manifest:
        given = [
            o
            for o, n in (("--id", "ids"), ("--root", "root"), ("--first", "first"))
            if ctx.get_parameter_source(n) == click.core.ParameterSource.COMMANDLINE
        ]
        if given:
            raise click.UsageError(f"{given[0]} applies to --manifest records; give --manifest too")
    if ids and ctx.get_parameter_source("first") == click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("--first draws records from the top; with --id give one or the other")
    out = Path(out_dir)
    check_out(out)
    check_writable(dirs=(out,))  # before any image is read (not for --list: it writes nothing)
    # read everything first: a missing image or bad manifest line fails before anything is written
    exports: dict[Path, tuple[str, bytes]] = {}
    for image in images:
        target = out / image_path(image).name
        if target in exports and exports[target][0] != image:
            raise ValueError(
                f"{image} and {exports[target][0]} would both be exported as {target}; export them "
                "in two runs with different --out folders"
            )
        exports[target] = (image, read_bytes(image_path(image), what="asked for on the command line"))
    sheet = None
    if manifest:
        manifest = Path(manifest)
        rows = record_rows(manifest, Path(root) if root else manifest.parent.parent, ids, first)
        name = ids[0] if len(ids) == 1 else f"{manifest.stem}-{len(rows)}"
        sheet = out / f"{sheet_name(name)}.sheet.png"  # not the name an exported image of the record gets
        if sheet in exports:
            raise ValueError(
                f"{exports[sheet][0]} would be overwritten by the contact sheet {sheet}; export it "
                "in a separate run with another --out"
            )
        picture = contact_sheet(rows)
    for target in [*exports, *([sheet] if sheet is not None else [])]:
        if target.exists() and not target.is_file():  # found now, not after writing the others
            raise IsADirectoryError(
                f"{target}: a folder is in the way of an exported file; move it or pick another --out"
            )
    for target, (image, data) in exports.items():
        with atomic_path(target) as tmp:
            tmp.write_bytes(data)
        click.echo(f"{image} -> {target}")
    if sheet is not None:
        write_png(sheet, picture)
        click.echo(f"{len(rows)} record(s) of {manifest} -> {sheet}")


if __name__ == "__main__":
    main()
