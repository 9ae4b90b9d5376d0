"""`stemscribe separate` and `stemscribe models fetch|list`; `register(app)` adds them to the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from stemscribe.errors import InvalidOptionError, StemscribeError
from stemscribe.separation.weights import DEFAULT_MODEL, MODELS

if TYPE_CHECKING:
    from rich.progress import Progress

models_app = typer.Typer(
    name="models",
    help="Separation model weights: list what is present, fetch what is missing.",
    no_args_is_help=True,
)

_MODEL_NAMES = ", ".join(["hpss", *sorted(MODELS)])


def _fail(exc: BaseException) -> None:
    typer.echo(f"{type(exc).__name__}: {exc}", err=True)
    raise typer.Exit(1)


def _progress_bar(quiet: bool) -> Progress:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    console.quiet = quiet or not console.is_terminal  # no stray lines in logs and pipes
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[stage]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def separate(
    input: Annotated[Path, typer.Argument(help="An audio file (WAV, FLAC, MP3, OGG, M4A, ...).")],
    outdir: Annotated[
        Path, typer.Option("-o", "--outdir", help="Stems go to OUTDIR/<input name>/<stem>.<fmt>.")
    ] = Path("separated"),
    model: Annotated[
        str, typer.Option("--model", "-m", help=f"Separation model: {_MODEL_NAMES}.")
    ] = DEFAULT_MODEL,
    stems: Annotated[
        str,
        typer.Option(
            "--stems", help="'stems': vocals + instrumental; 'all_stems': every stem the model gives."
        ),
    ] = "all_stems",
    fmt: Annotated[str, typer.Option("--format", help="wav or flac.")] = "wav",
    float_out: Annotated[
        bool, typer.Option("--float", help="32-bit float WAV (no clipping) instead of 16-bit.")
    ] = False,
    device: Annotated[
        str | None,
        typer.Option("--device", help="Torch device for demucs (default: cuda if present, else cpu)."),
    ] = None,
    overlap: Annotated[
        float, typer.Option("--overlap", help="Overlap between demucs segments, 0..0.9.")
    ] = 0.25,
    shifts: Annotated[
        int,
        typer.Option("--shifts", help="Random-shift passes averaged by demucs (slower, a little better)."),
    ] = 0,
    threads: Annotated[
        int | None, typer.Option("--threads", help="CPU threads for demucs (default: torch's).")
    ] = None,
    max_duration: Annotated[
        float, typer.Option("--max-duration", help="Refuse audio longer than this many seconds.")
    ] = 1200.0,
    quiet: Annotated[
        bool, typer.Option("--quiet", help="No progress bar; print only the written paths.")
    ] = False,
) -> None:
    """Split a song into stems and write one audio file per stem.

    hpss (drums + harmonic) always works; demucs models need `stemscribe models fetch demucs`.
    """
    from stemscribe.audio import load_audio
    from stemscribe.separation.base import get_separator
    from stemscribe.separation.files import FORMATS, write_stems
    from stemscribe.separation.stemsets import StemSet

    try:
        kind = StemSet.parse(stems)
        if fmt.lower() not in FORMATS:
            raise InvalidOptionError(f"--format must be wav or flac, got {fmt!r}")
        if float_out and fmt.lower() != "wav":
            raise InvalidOptionError("--float needs --format wav")
        if model == "hpss":
            if kind is StemSet.stems:
                raise InvalidOptionError(
                    "hpss gives drums + harmonic, no vocals; use a demucs model for --stems stems"
                )
            separator = get_separator("hpss")
        elif model in MODELS:
            separator = get_separator(
                "demucs", model=model, device=device, overlap=overlap, shifts=shifts, threads=threads
            )
        else:
            raise InvalidOptionError(f"unknown model {model!r}; known: {_MODEL_NAMES}")
        audio = load_audio(input, sr=None, mono=False, max_duration=max_duration)
    except (StemscribeError, OSError) as exc:
        _fail(exc)

    try:
        with _progress_bar(quiet) as bar:
            task = bar.add_task(input.name, total=1.0, stage="")

            def progress(stage: str, fraction: float) -> None:
                bar.update(task, completed=fraction, stage=stage)

            written = write_stems(
                separator,
                audio,
                outdir / input.stem,
                stem_set=kind,
                fmt=fmt,
                float_out=float_out,
                progress=progress,
            )
    except (StemscribeError, OSError) as exc:
        _fail(exc)
    for path in written.values():
        typer.echo(str(path))


@models_app.command("list")
def list_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="Hash each file (about 0.2 s per 100 MB).")
    ] = True,
) -> None:
    """Show each separation model: present or not, where, and its checksum state."""
    from stemscribe.separation.base import torch_available
    from stemscribe.separation.weights import list_models

    statuses = list_models(verify=verify)
    if as_json:
        payload = {
            "torch": torch_available(),
            "models": [
                {
                    "name": s.spec.name,
                    "backend": "demucs",
                    "state": s.state,
                    "stems": list(s.spec.sources),
                    "directory": str(s.directory),
                    "files": [
                        {
                            "name": f.file.filename,
                            "url": f.file.url,
                            "path": str(f.path),
                            "state": f.state.value,
                            "size": f.size,
                            "sha256": f.sha256,
                            "published_sha256_prefix": f.file.sha256_prefix,
                        }
                        for f in s.files
                    ],
                }
                for s in statuses
            ],
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    directory = statuses[0].directory if statuses else None
    table = Table(title=f"Separation models (weights in {directory})", title_justify="left")
    for column in ("model", "state", "stems", "files (checksum)"):
        table.add_column(column, overflow="fold")
    table.add_row("hpss", "built in", "drums, harmonic", "no weights")
    for s in statuses:
        files = "\n".join(f"{f.file.filename} ({f.state.value})" for f in s.files)
        table.add_row(s.spec.name, s.state, ", ".join(s.spec.sources), files)
    console = Console(width=max(100, int(os.environ.get("COLUMNS", "0") or 0)))
    console.print(table)
    if not torch_available():
        console.print("demucs models need the separation extra: pip install 'stemscribe[separation]'")


@models_app.command("fetch")
def fetch_cmd(
    backend: Annotated[str, typer.Argument(help="Which backend's weights: demucs.")],
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help=f"Model name (repeatable; default {DEFAULT_MODEL})."),
    ] = None,
    all_models: Annotated[
        bool, typer.Option("--all", help="Every model in `stemscribe models list`.")
    ] = False,
    source: Annotated[
        Path | None,
        typer.Option("--from", help="Copy from this folder instead of downloading (offline machines)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace files even when present and valid.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Download (or copy with --from) a model's published weights into the data directory, checksummed."""
    from rich.progress import TaskID

    from stemscribe.separation.weights import fetch_model, get_spec, install_from_dir

    try:
        if backend != "demucs":
            raise InvalidOptionError(f"unknown backend {backend!r}; models can be fetched for: demucs")
        names = sorted(MODELS) if all_models else (model or [DEFAULT_MODEL])
        for name in names:
            get_spec(name)
        for name in names:
            with _progress_bar(quiet) as bar:
                task = bar.add_task(name, total=1.0, stage="")
                if source is not None:
                    status = install_from_dir(name, source, force=force)
                else:

                    def report(stage: str, frac: float, t: TaskID = task) -> None:
                        bar.update(t, completed=frac, stage=stage)

                    status = fetch_model(name, force=force, progress=report)
            typer.echo(f"{name}: {status.state} in {status.directory}")
    except (StemscribeError, OSError) as exc:
        _fail(exc)


def register(app: typer.Typer) -> None:
    """Add `separate` and the `models` group to the stemscribe CLI (once)."""
    if any(command.name == "separate" for command in app.registered_commands):
        return
    app.command("separate")(separate)
    app.add_typer(models_app, name="models")
