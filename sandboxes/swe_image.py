"""Build the SWE image: real Python projects with their test suites, without a registry.

A project is a directory with a ``unittest`` suite: a fixture of ours, or a PyPI sdist
that ships its tests. :func:`fetch_sdists` is the set-up step that downloads sdists into a
local cache (``pip download --no-binary :all:``); :func:`build_swe_image` never downloads:
it starts a container of the sandbox image (``summit-sandbox:latest``, itself built
offline), copies each project in with ``put_archive``, runs its tests there without a
network, and commits the container as ``summit-swe:latest``. A project whose sdist is
missing, ships no tests, or whose tests fail before any mutation is rejected with its
reason and the others go on. The image keeps each project under ``/opt/swe/projects``
and what the build learnt (test directory, the tests that passed) under ``/opt/swe/meta``.

What it does not do: install dependencies (a project must run on the standard library
alone: its tests run with ``unittest``, no pytest in the image) or build C extensions.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandboxes.base import SandboxError
from sandboxes.docker import IMAGE, DockerException, ImageNotFound, engine
from sandboxes.swe_container import (
    ENVIRONMENT,
    META,
    PROJECTS,
    SWE_IMAGE,
    ProjectInfo,
    bounded,
    runner_command,
    test_run,
)

log = logging.getLogger(__name__)

DEFAULT_PROJECTS = ("more-itertools==10.5.0", "idna==3.10")
"""Pure-Python projects whose sdists ship ``unittest`` suites that pass on the standard
library (tomli's sdists ship no tests: it is rejected for that)."""
CACHE_DIR = Path.home() / ".cache" / "summit" / "sdists"
SKIPPED = {"__pycache__", ".git", ".tox", ".eggs", "build", "dist"}
VALIDATE_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class ProjectSource:
    """A project on this machine to put in the image."""

    name: str
    root: Path
    test_dir: str = "tests"
    python_path: str = ""
    source: str = "local"


@dataclass
class BuildReport:
    tag: str | None = None
    """The image built, or None when no project was accepted."""
    accepted: dict[str, int] = field(default_factory=dict)
    """Project → how many of its tests passed on the original."""
    rejected: dict[str, str] = field(default_factory=dict)
    """Project (or requirement) → why it is not in the image."""


def fetch_sdists(
    requirements: list[str] | tuple[str, ...], cache_dir: Path = CACHE_DIR
) -> tuple[dict[str, Path], dict[str, str]]:
    """Each pinned requirement's sdist in ``cache_dir`` (downloaded only when missing):
    ``({requirement: archive}, {requirement: why it could not be fetched})``."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    found: dict[str, Path] = {}
    failed: dict[str, str] = {}
    for requirement in requirements:
        archive = cached_sdist(requirement, cache_dir)
        if archive is None:
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary"]
            command += [":all:", "--disable-pip-version-check", "-d", str(cache_dir), requirement]
            done = subprocess.run(command, capture_output=True, text=True, timeout=600)
            archive = cached_sdist(requirement, cache_dir)
            if done.returncode != 0 or archive is None:
                last = (done.stderr.strip().splitlines() or ["no sdist found"])[-1]
                failed[requirement] = f"cannot fetch its sdist: {last}"
                continue
        found[requirement] = archive
    return found, failed


def cached_sdist(requirement: str, cache_dir: Path = CACHE_DIR) -> Path | None:
    """The cached sdist of ``name==version``, if there is one."""
    name, _, version = requirement.partition("==")
    if not version:
        return None
    stem = "[-_.]+".join(re.escape(part) for part in re.split(r"[-_.]+", name.strip()))
    pattern = re.compile(rf"^{stem}-{re.escape(version.strip())}\.(tar\.gz|zip)$", re.IGNORECASE)
    matches = sorted(p for p in cache_dir.glob("*") if pattern.match(p.name))
    return matches[0] if matches else None


def unpack_sdist(archive: Path, into: Path, requirement: str) -> ProjectSource:
    """The sdist unpacked under ``into``, its layout found; :class:`ValueError` saying why
    it cannot be used (no test suite shipped, an archive it cannot read)."""
    name = requirement.partition("==")[0].strip()
    into.mkdir(parents=True, exist_ok=True)
    if archive.name.endswith(".tar.gz"):
        with tarfile.open(archive) as tar:
            tar.extractall(into, filter="data")
    else:
        raise ValueError(f"{archive.name}: only .tar.gz sdists are read")
    tops = [p for p in into.iterdir() if p.is_dir()]
    if len(tops) != 1:
        raise ValueError(f"{archive.name}: expected one top directory, found {len(tops)}")
    root = tops[0]
    test_dir = next(
        (d for d in ("tests", "test") if list((root / d).glob("test*.py"))),
        None,
    )
    if test_dir is None:
        raise ValueError("its sdist ships no test suite (no tests/ with test*.py)")
    python_path = "src" if (root / "src").is_dir() else ""
    return ProjectSource(name, root, test_dir, python_path, source=requirement)


def build_swe_image(
    projects: list[ProjectSource],
    tag: str = SWE_IMAGE,
    *,
    base: str = IMAGE,
    rejected: dict[str, str] | None = None,
    timeout_s: float = VALIDATE_TIMEOUT_S,
) -> BuildReport:
    """Commit ``base`` with ``projects`` copied in as ``tag``; a project whose tests do not
    all pass (or skip) on the original, or time out, is left out with its reason.
    ``rejected`` carries reasons found earlier (sdists that could not be fetched).
    Raises :class:`SandboxError` when no engine answers or ``base`` is missing."""
    report = BuildReport(rejected=dict(rejected or {}))
    client = engine()
    try:
        client.images.get(base)
    except ImageNotFound as exc:
        raise SandboxError(f"{base} is missing: run `python -m sandboxes build-image`") from exc
    container = None
    try:
        container = client.containers.create(
            base, command=["sleep", "infinity"], init=True, network_mode="none", user="0:0"
        )
        container.start()
        _put(container, "/", {"opt/": None, "opt/swe/": None, "opt/swe/projects/": None})
        _put(container, "/opt/swe", {"meta/": None})
        for project in projects:
            reason = _add(container, project, timeout_s)
            if isinstance(reason, str):
                report.rejected[project.name] = reason
                log.warning("SWE image: %s rejected: %s", project.name, reason)
            else:
                report.accepted[project.name] = len(reason.passing)
        if not report.accepted:
            return report
        repository, _, version = tag.partition(":")
        container.stop(timeout=1)
        container.commit(repository=repository, tag=version or "latest")
        report.tag = tag
        return report
    except (DockerException, OSError) as exc:
        raise SandboxError(f"the Docker engine failed the SWE image build: {exc}") from exc
    finally:
        if container is not None:
            container.remove(force=True)


def _add(container: Any, project: ProjectSource, timeout_s: float) -> ProjectInfo | str:
    """Copy ``project`` in and run its tests; its info, or why it is rejected."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", project.name):
        return f"{project.name!r} is not a usable project name"
    if not (project.root / project.test_dir).is_dir():
        return f"no test directory {project.test_dir}/ in {project.root}"
    target = f"{PROJECTS}/{project.name}"
    _put(container, PROJECTS, _tree(project.root, project.name))
    scratch = f"/tmp/validate/{project.name}"
    environment = dict(ENVIRONMENT)
    if project.python_path:
        environment["PYTHONPATH"] = f"{scratch}/{project.python_path}"
    copy = f"mkdir -p /tmp/validate && rm -rf {scratch} && cp -r {target} {scratch}"
    prepared = bounded(container, copy, 120, 4096, user="1000:1000", workdir="/tmp")
    if prepared.exit_code != 0:
        return f"cannot copy it in: {prepared.text.strip()[-300:]}"
    output = bounded(
        container,
        runner_command(project.test_dir),
        timeout_s,
        8192,
        user="1000:1000",
        workdir=scratch,
        environment=environment,
    )
    run = test_run(output)
    reason = _baseline_problem(run, timeout_s)
    bounded(container, f"rm -rf {scratch}", 60, 1024, user="0:0", workdir="/")
    if reason is not None:
        bounded(container, f"rm -rf {target}", 60, 1024, user="0:0", workdir="/")
        return reason
    info = ProjectInfo(
        name=project.name,
        test_dir=project.test_dir,
        python_path=project.python_path,
        passing=tuple(sorted(i for i, o in run.outcomes.items() if o == "pass")),
        source=project.source,
    )
    meta = json.dumps(dataclasses.asdict(info)).encode()
    _put(container, META, {f"{project.name}.json": meta})
    return info


def _baseline_problem(run: Any, timeout_s: float) -> str | None:
    """Why a project's test run on the original cannot serve as a baseline, or None."""
    if run.timed_out:
        return f"its tests time out before mutation (over {timeout_s:g}s)"
    if not run.outcomes:
        tail = run.output.strip().splitlines()[-1:] or ["no output"]
        return f"its tests did not run before mutation (exit {run.exit_code}: {tail[0][:200]})"
    bad = sorted(i for i, o in run.outcomes.items() if o in ("fail", "error"))
    if bad or run.exit_code != 0:
        first = run.failures.get(bad[0], "").strip().splitlines()[-1:] if bad else []
        detail = f"; first: {bad[0]}: {first[0][:200]}" if first else ""
        return f"its tests fail before mutation ({len(bad)} failing{detail})"
    if not any(o == "pass" for o in run.outcomes.values()):
        return "no test passes before mutation (all skipped)"
    return None


def _tree(root: Path, name: str) -> dict[str, bytes | None]:
    """``{archive path: bytes, or None for a directory}`` of ``root`` under ``name/``."""
    entries: dict[str, bytes | None] = {f"{name}/": None}
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if any(p in SKIPPED or p.endswith(".egg-info") for p in parts) or path.suffix == ".pyc":
            continue
        if path.is_symlink():
            continue
        key = "/".join((name, *parts))
        entries[key + "/" if path.is_dir() else key] = None if path.is_dir() else path.read_bytes()
    return entries


def _put(container: Any, where: str, entries: dict[str, bytes | None]) -> None:
    """Write ``entries`` (see :func:`_tree`) under ``where``, readable by everyone."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for key, data in entries.items():
            info = tarfile.TarInfo(key.rstrip("/"))
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            else:
                info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    if not container.put_archive(where, buffer.getvalue()):
        raise SandboxError(f"the engine refused files under {where}")


def build_from_pypi(
    requirements: list[str] | tuple[str, ...] = DEFAULT_PROJECTS,
    *,
    tag: str = SWE_IMAGE,
    cache_dir: Path = CACHE_DIR,
    fetch: bool = True,
    extra: list[ProjectSource] | None = None,
) -> BuildReport:
    """Fetch (when ``fetch``; else only the cache is read), unpack, and build the image from
    ``requirements`` plus ``extra`` local projects."""
    if fetch:
        archives, rejected = fetch_sdists(requirements, cache_dir)
    else:
        archives, rejected = {}, {}
        for requirement in requirements:
            found = cached_sdist(requirement, cache_dir)
            if found is None:
                rejected[requirement] = f"no sdist in {cache_dir} (run the set-up to fetch it)"
            else:
                archives[requirement] = found
    projects = list(extra or [])
    with tempfile.TemporaryDirectory(prefix="summit-swe-") as tmp:
        for index, (requirement, archive) in enumerate(archives.items()):
            try:
                projects.append(unpack_sdist(archive, Path(tmp) / str(index), requirement))
            except (ValueError, OSError, tarfile.TarError) as exc:
                rejected[requirement] = str(exc)
        return build_swe_image(projects, tag, rejected=rejected)
