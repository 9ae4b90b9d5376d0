"""The `stemscribe` command line."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="stemscribe",
    help="Turn songs and stems into per-instrument MIDI, offline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Turn songs and stems into per-instrument MIDI, offline."""


_STEMS = "auto, mix, vocals, drums, bass, piano, guitar, keys, strings, brass, winds, synth, other"


def _fail(exc: BaseException) -> None:
    typer.echo(f"{type(exc).__name__}: {exc}", err=True)
    raise typer.Exit(1)


@app.command()
def transcribe(
    inputs: Annotated[
        list[Path], typer.Argument(help="Audio files (WAV, FLAC, MP3, OGG/Opus, M4A/AAC, AIFF, ...).")
    ],
    outdir: Annotated[
        Path, typer.Option("-o", "--outdir", help="Folder for <name>.json and <name>.mid (and the score).")
    ] = Path("."),
    stem: Annotated[
        str,
        typer.Option("--stem", "-s", help=f"What the audio holds: {_STEMS}. 'auto' decides from the audio."),
    ] = "auto",
    quantize: Annotated[
        bool,
        typer.Option(
            "--quantize", "-q", help="Also write <name>.quantized.mid snapped to the beat grid (sixteenths)."
        ),
    ] = False,
    json_path: Annotated[
        Path | None,
        typer.Option(
            "--json", help="With one input: write the JSON exactly here instead of OUTDIR/<name>.json."
        ),
    ] = None,
    separator: Annotated[
        str | None,
        typer.Option(
            "--separator",
            help="Separation backend for mixes (hpss, demucs). Default: built-in harmonic/percussive split.",
        ),
    ] = None,
    drums: Annotated[
        str,
        typer.Option("--drums", help="Drum backend: auto (trained model if shipped, else dsp), model, dsp."),
    ] = "auto",
    pitch_bends: Annotated[
        bool, typer.Option("--pitch-bends", help="Add pitch-bend curves to notes that bend.")
    ] = False,
    max_duration: Annotated[
        float, typer.Option("--max-duration", help="Refuse audio longer than this many seconds.")
    ] = 1200.0,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify/--no-verify",
            help="Let the trained note verifier keep or drop each candidate note (default); "
            "--no-verify decodes with fixed thresholds alone.",
        ),
    ] = True,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="Who hears the pitched notes: auto (our transcription network for mixes when its weights "
            "ship, basic-pitch for stems), network, basic-pitch.",
        ),
    ] = "auto",
    score: Annotated[
        bool,
        typer.Option(
            "--score",
            help="Also write sheet music: <name>.musicxml, its pages <name>-1.svg, ... and <name>.pdf "
            "(needs the score extra: pip install 'stemscribe[score]').",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar or summary.")] = False,
) -> None:
    """Transcribe audio files to per-instrument MIDI and JSON."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    from stemscribe.errors import StemscribeError
    from stemscribe.stems import StemType
    from stemscribe.transcription.pipeline import Transcriber

    if json_path is not None and len(inputs) != 1:
        _fail(ValueError("--json PATH takes exactly one input"))
    try:
        StemType.parse(stem)
        if score:
            from stemscribe.score.errors import require_libraries

            require_libraries()  # before the long work, not after it
        outdir.mkdir(parents=True, exist_ok=True)
        transcriber = Transcriber(
            separator=separator,
            drums=drums,
            pitch_bends=pitch_bends,
            max_duration=max_duration,
            verify=verify,
            engine=engine,
        )
    except (StemscribeError, OSError) as exc:
        _fail(exc)
    console = Console(stderr=True, quiet=quiet)
    failures = 0
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[stage]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        for path in inputs:
            task = bar.add_task(path.name, total=1.0, stage="")
            try:

                def report(stage: str, frac: float, t: TaskID = task) -> None:
                    bar.update(t, completed=frac, stage=stage)

                result = transcriber.transcribe(path, stem=stem, progress=report)
                target_json = json_path or outdir / f"{path.stem}.json"
                target_json.parent.mkdir(parents=True, exist_ok=True)
                result.write_json(target_json)
                result.write_midi(outdir / f"{path.stem}.mid")
                if quantize:
                    result.write_midi(outdir / f"{path.stem}.quantized.mid", quantize=True)
                written = [target_json, outdir / f"{path.stem}.mid"]
                if score:
                    from stemscribe.score.engrave import write_pages

                    sheet = result.write_musicxml(outdir / f"{path.stem}.musicxml", title=path.stem)
                    written += [sheet, *write_pages(sheet.read_bytes(), outdir / path.stem)]
            except (StemscribeError, OSError) as exc:
                failures += 1
                typer.echo(f"{type(exc).__name__}: {exc}", err=True)
                continue
            except Exception as exc:  # noqa: BLE001 - a bug still gets one line and a non-zero exit
                if os.environ.get("STEMSCRIBE_DEBUG"):
                    raise
                failures += 1
                typer.echo(
                    f"InternalError: {path}: {type(exc).__name__}: {exc} "
                    "(STEMSCRIBE_DEBUG=1 shows the traceback)",
                    err=True,
                )
                continue
            finally:
                bar.remove_task(task)
            if not quiet:
                parts = ", ".join(f"{i.name} ({len(i.notes)})" for i in result.instruments) or "no notes"
                typer.echo(
                    f"{path.name}: {result.duration:.1f} s, {result.tempo:.0f} BPM, "
                    f"stem {result.stem}: {parts}"
                )
                if score:
                    a = result.score_analysis()
                    key = f", {a.key}" if a.key is not None else ""
                    typer.echo(
                        f"  score: {a.time_signature}{key}, {len(a.downbeats)} bars, {len(a.chords)} chords"
                    )
                shown = [str(w) for w in written]
                if len(shown) > 6:  # a long score's pages
                    shown[4:-2] = [f"... ({len(shown) - 6} more)"]
                typer.echo(f"  -> {', '.join(shown)}")
    if failures:
        raise typer.Exit(1)


def register_commands() -> None:
    """Add the subcommands that live beside their own modules (service, separation, cluster)."""
    from stemscribe.cluster.cli import register as register_cluster
    from stemscribe.separation.cli import register as register_separation
    from stemscribe.service.cli import register as register_service

    register_separation(app)
    register_service(app)
    register_cluster(app)


def main() -> None:
    register_commands()
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
