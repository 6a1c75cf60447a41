"""A small in-memory file system: paths to text."""

from __future__ import annotations

import random
from typing import Any

from sandboxes.base import ToolFailure
from sandboxes.executable import ToolSet, tool


class FileSystem(ToolSet):
    @classmethod
    def default_state(cls) -> dict[str, Any]:
        return {"files": {}}

    @classmethod
    def sample_state(cls, rng: random.Random) -> dict[str, Any]:
        """Two or three small files in a few folders."""
        pool = {
            "/drafts/report.txt": "Q3 numbers: up 4%",
            "/notes/ideas.txt": "a garden on the roof",
            "/notes/todo.txt": "call the bank",
            "/inbox/invoice-17.txt": "amount due: 240 EUR",
            "/drafts/letter.txt": "Dear landlord,",
        }
        chosen = rng.sample(sorted(pool), rng.randint(2, 3))
        return {"files": {path: pool[path] for path in chosen}}

    def _path(self, path: str) -> str:
        clean = "/" + "/".join(p for p in path.split("/") if p not in ("", "."))
        if ".." in clean.split("/"):
            raise ToolFailure(f"path {path!r} leaves the file system")
        return clean

    @tool()
    def list_files(self, prefix: str = "/") -> list[str]:
        """List the paths that start with a prefix.

        Args:
            prefix: Folder or path prefix, e.g. /reports.
        """
        start = self._path(prefix)
        return sorted(p for p in self.data["files"] if p.startswith(start))

    @tool()
    def read_file(self, path: str) -> str:
        """Return the content of a file; fails when it does not exist.

        Args:
            path: Absolute path of the file.
        """
        key = self._path(path)
        if key not in self.data["files"]:
            raise ToolFailure(f"not found: {key}")
        return str(self.data["files"][key])

    @tool("write")
    def write_file(self, path: str, content: str, overwrite: bool = False) -> str:
        """Create a file, or replace one when overwrite is true.

        Args:
            path: Absolute path of the file.
            content: The text to store.
            overwrite: Replace an existing file.
        """
        key = self._path(path)
        if key in self.data["files"] and not overwrite:
            raise ToolFailure(f"exists: {key} (set overwrite to replace it)")
        self.data["files"][key] = content
        return f"wrote {len(content)} characters to {key}"

    @tool("write")
    def delete_file(self, path: str) -> str:
        """Delete a file.

        Args:
            path: Absolute path of the file.
        """
        key = self._path(path)
        if self.data["files"].pop(key, None) is None:
            raise ToolFailure(f"not found: {key}")
        return f"deleted {key}"

    @tool("write")
    def move_file(self, source: str, destination: str) -> str:
        """Move or rename a file; fails when the destination exists.

        Args:
            source: Path of the file to move.
            destination: Its new path.
        """
        src, dst = self._path(source), self._path(destination)
        if src not in self.data["files"]:
            raise ToolFailure(f"not found: {src}")
        if dst in self.data["files"]:
            raise ToolFailure(f"exists: {dst}")
        self.data["files"][dst] = self.data["files"].pop(src)
        return f"moved {src} to {dst}"
