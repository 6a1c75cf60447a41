"""``python -m sandboxes``: build the Docker sandbox image, check the Docker engine."""

from __future__ import annotations

import sys

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
