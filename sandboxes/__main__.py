"""``python -m sandboxes``: build the Docker sandbox image and the SWE image, check the
Docker engine."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help=__doc__, rich_markup_mode="markdown"
)


@app.command("build-image")
def build_image_command(
    tag: str = typer.Option("summit-sandbox:latest", help="Image tag."),
    force: bool = typer.Option(False, help="Rebuild even when the image exists."),
) -> None:
    """Build the sandbox image without a registry: debootstrap a minimal Debian (needs
    root and a Debian mirror), then docker import."""
    from sandboxes.base import SandboxError
    from sandboxes.docker import build_image, image_exists

    try:
        if image_exists(tag) and not force:
            print(f"{tag} exists (use --force to rebuild)")
            return
        print(f"building {tag} (debootstrap, about a minute)...", flush=True)
        print(f"built {build_image(tag)}")
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from exc


@app.command("build-swe-image")
def build_swe_image_command(
    projects: list[str] = typer.Option(
        None,
        "--projects",
        help="Pinned PyPI requirements (name==version) whose sdists ship unittest suites; "
        "repeat the option. Default: more-itertools==10.5.0 and idna==3.10.",
    ),
    local: list[Path] = typer.Option(
        None, "--local", help="A local project directory (with tests/) to add; repeatable."
    ),
    tag: str = typer.Option("summit-swe:latest", help="Image tag."),
    cache_dir: Path = typer.Option(None, help="Where sdists are cached (fetched when missing)."),
    fetch: bool = typer.Option(True, help="Download missing sdists (--no-fetch: cache only)."),
    force: bool = typer.Option(False, help="Rebuild even when the image exists."),
) -> None:
    """Build the SWE image from the sandbox image, without a registry: sdists fetched
    from PyPI into a local cache, their tests run offline; a project whose tests fail
    before any mutation is left out with its reason."""
    from sandboxes.base import SandboxError
    from sandboxes.docker import image_exists
    from sandboxes.swe_image import CACHE_DIR, DEFAULT_PROJECTS, ProjectSource, build_from_pypi

    try:
        if image_exists(tag) and not force:
            print(f"{tag} exists (use --force to rebuild)")
            return
        extra = [ProjectSource(p.resolve().name, p.resolve(), source="local") for p in local or []]
        report = build_from_pypi(
            tuple(projects or DEFAULT_PROJECTS),
            tag=tag,
            cache_dir=cache_dir or CACHE_DIR,
            fetch=fetch,
            extra=extra,
        )
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from exc
    for name, passing in report.accepted.items():
        print(f"accepted {name}: {passing} tests pass")
    for name, reason in report.rejected.items():
        print(f"rejected {name}: {reason}")
    if report.tag is None:
        print("error: no project was accepted; no image built", file=sys.stderr)
        raise typer.Exit(1)
    print(f"built {report.tag}")


@app.command()
def check() -> None:
    """Say whether a Docker engine answers."""
    from sandboxes.base import SandboxError
    from sandboxes.docker import engine

    try:
        print(f"docker engine {engine().version()['Version']}")
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from exc


if __name__ == "__main__":
    app()
