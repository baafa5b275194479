"""Where the browser front end lives, and the refusal to start without it.

The pages ship inside the package (``rtc_server/web/``, listed as package data
in ``pyproject.toml``), so an installed wheel serves the same files as a
checkout. A copy that lost them (a broken install, a packaging mistake) must
not start and answer every page with "Page not found": it stops with one line
saying where it looked.
"""

from __future__ import annotations

from pathlib import Path

#: The pages, styles and scripts served at ``/``.
WEB_DIR = Path(__file__).resolve().parent / "web"

#: The file whose absence means the front end is missing (the sign-in and register entry page).
ENTRY_PAGE = "index.html"


class WebFilesMissing(SystemExit):
    """The web files are not where the server serves them from.

    A ``SystemExit``: uncaught, Python prints the one line to stderr and exits
    with status 1, with no traceback; ``except Exception`` does not swallow it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(f"rtc_server: web files not found at {path}; reinstall the package")


def require_web_dir(path: Path | None = None) -> Path:
    """``path`` (default: the packaged ``web/``) if it holds the front end, else WebFilesMissing."""
    where = WEB_DIR if path is None else path
    if not (where / ENTRY_PAGE).is_file():
        raise WebFilesMissing(where)
    return where
