"""Where the passphrase comes from: --passphrase-file, $SCANARCHIVE_PASSPHRASE_FILE, or the terminal.

The passphrase is never taken from an argument or an environment variable's
value (both are visible to other processes), only from a file or the terminal.
"""

from __future__ import annotations

import getpass
import os
import stat
import sys
from pathlib import Path

from scanarchive.config import ENV_PASSPHRASE_FILE
from scanarchive.errors import UsageError


def read_passphrase_file(path: Path) -> str:
    """The passphrase in `path` (one trailing newline dropped). A file that other users of this
    machine can read is refused before it is read: whoever reads it can open every note."""
    try:
        with path.open("rb") as fp:
            mode = os.fstat(fp.fileno()).st_mode
            if mode & 0o044:
                raise UsageError(
                    f"the passphrase file {path} can be read by other users of this machine "
                    f"(mode {stat.S_IMODE(mode):04o}); it was not used",
                    hint=f"Make it private first: chmod 600 {path}",
                )
            text = fp.read(64 * 1024).decode("utf-8")
    except OSError as exc:
        raise UsageError(f"the passphrase file {path} cannot be read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"the passphrase file {path} is not UTF-8 text") from exc
    return text[:-1] if text.endswith("\n") else text


def get_passphrase(
    file: Path | None,
    *,
    confirm: bool = False,
    prompt: str = "Passphrase: ",
    option: str = "--passphrase-file",
    use_env: bool = True,
) -> str:
    """The passphrase from `file`, else (use_env) $SCANARCHIVE_PASSPHRASE_FILE, else the terminal.

    `option` is the flag that names the file, for the hint when there is no terminal; a new
    passphrase (passwd) has its own flag and never comes from the variable, which names the
    current one."""
    if file is None and use_env and os.environ.get(ENV_PASSPHRASE_FILE):
        file = Path(os.environ[ENV_PASSPHRASE_FILE])
    if file is not None:
        passphrase = read_passphrase_file(file)
    else:
        if not sys.stdin.isatty():
            raise UsageError(
                "a passphrase is needed and there is no terminal to ask on"
                if option == "--passphrase-file"
                else "the new passphrase is needed and there is no terminal to ask on; nothing was changed",
                hint=f"Give {option} FILE or set {ENV_PASSPHRASE_FILE}."
                if use_env
                else f"Give {option} FILE (a file readable only by you, holding the new passphrase).",
            )
        passphrase = getpass.getpass(prompt)
        if confirm and getpass.getpass("Same passphrase again: ") != passphrase:
            raise UsageError(
                "the two passphrases differ; nothing was changed",
                hint="Run the command again and type the same passphrase both times.",
            )
    if not passphrase:
        raise UsageError("an empty passphrase is not allowed", hint="Choose a passphrase of several words.")
    return passphrase
