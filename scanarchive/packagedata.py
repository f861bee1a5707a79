"""The data files shipped inside the package (scanarchive/data/): the commented default config,
the retention presets and the tick-box sheet templates.

They are found with importlib.resources, so an installed wheel (pip, pipx, a system venv) reads
the same files as the developer checkout. scanarchive is never imported from a zip file, so the
folder is a real directory: the parser sandbox grants read access to it by path.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Final

DATA: Final = Path(str(files("scanarchive").joinpath("data")))
DEFAULT_CONFIG: Final = DATA / "default.toml"
RETENTION: Final = DATA / "retention"
SHEETS: Final = DATA / "sheets"
