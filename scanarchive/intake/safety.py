"""Folder checks before watching: no loops, no surprises."""

from __future__ import annotations

from pathlib import Path

from scanarchive.errors import ConfigError


def check_folders(archive_root: Path, drop: Path) -> Path:
    """The drop folder must exist, be a real folder, and not overlap the archive."""
    if not drop.is_dir():
        raise ConfigError(
            f"the drop folder {drop} does not exist or is not a folder",
            hint="Create it, or set drop.folder in the archive's config.toml, or pass --drop DIR.",
        )
    if drop.is_symlink():
        raise ConfigError(f"the drop folder {drop} is a symbolic link; give the real folder")
    archive = archive_root.resolve()
    resolved = drop.resolve()
    if resolved == archive or archive in resolved.parents:
        raise ConfigError(f"the drop folder {drop} is inside the archive; choose a folder outside it")
    if resolved in archive.parents:
        raise ConfigError(
            f"the archive is inside the drop folder {drop}; the watcher would try to ingest its own files",
            hint="Move the archive or choose another drop folder.",
        )
    return resolved
