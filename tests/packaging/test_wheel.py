"""The product as a wheel: ``pip install`` of a built wheel (not the editable
checkout) serves the whole product, and a copy that lost its pages refuses to
start with one line instead of answering "Page not found".

The wheel is built from a copy of the source (so no stale ``build/`` and no
file outside the package can leak in), installed with its dependencies into a
fresh virtualenv, and run as ``rtc-server serve`` from a directory outside the
checkout. About 20 s, most of it installing the dependencies (from pip's cache
after the first run). Deselect with ``-m "not packaging"`` when iterating; CI
runs it.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import threading
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "rtc_server"
REFUSAL = "rtc_server: web files not found at {}; reinstall the package"
START_TIMEOUT = 60.0


def _source_files(under: Path) -> list[str]:
    """Files under ``under`` as wheel paths (``rtc_server/...``), bytecode left out."""
    return sorted(
        p.relative_to(ROOT).as_posix() for p in under.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )


@dataclass
class Built:
    wheel: Path
    log: str


@dataclass
class Installed:
    python: Path
    script: Path
    package: Path  # the installed rtc_server directory


def _clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without anything that could point Python back at the
    checkout (or configure the server from outside the test)."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith("RTC_") and k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
    }
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(PACKAGE, src / "rtc_server", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--verbose", "--wheel-dir", str(out), str(src)],
        cwd=src, env=_clean_env(), capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [wheel] = out.glob("rtc_server-*.whl")
    return Built(wheel, done.stdout + done.stderr)


@pytest.fixture(scope="module")
def installed(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    home = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True, clear=True).create(home)
    python = home / "bin" / "python"
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(built.wheel)],
        cwd=home, env=_clean_env(), capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    where = subprocess.run(
        [str(python), "-c", "import rtc_server; print(rtc_server.__file__)"],
        cwd=home, env=_clean_env(), capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()
    package = Path(where).parent
    # The server under test is the installed copy, not the checkout the suite runs from.
    assert package.is_relative_to(home), where
    return Installed(python, home / "bin" / "rtc-server", package)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``rtc-server serve`` from the installed wheel, its log read line by line."""

    def __init__(self, installed: Installed, data_dir: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            [str(installed.script), "serve", "--port", str(self.port)],
            cwd=data_dir.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=_clean_env(RTC_DATA_DIR=str(data_dir), RTC_BASE_URL=self.url),
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)  # the process closed its output: it has ended

    def wait_for(self, pattern: str) -> list[str]:
        """The log up to the first line matching ``pattern``; fails if the process ends first."""
        seen: list[str] = []
        while True:
            try:
                line = self.lines.get(timeout=START_TIMEOUT)
            except queue.Empty:
                pytest.fail(f"no {pattern!r} within {START_TIMEOUT} s:\n" + "\n".join(seen))
            if line is None:
                pytest.fail(f"the server ended before {pattern!r}:\n" + "\n".join(seen))
            seen.append(line)
            if re.search(pattern, line):
                return seen

    def stop(self) -> list[str]:
        """Stop the server (SIGTERM, as a service manager does); the rest of its log."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        rest: list[str] = []
        while not self.lines.empty():
            line = self.lines.get()
            if line is not None:
                rest.append(line)
        return rest


@pytest.fixture
def served(installed: Installed, tmp_path: Path) -> Iterator[str]:
    server = Server(installed, tmp_path / "data")
    try:
        server.wait_for(r"Application startup complete")
        yield server.url
    finally:
        rest = server.stop()
        print("the installed server's log after start-up:", *rest, sep="\n")  # shown on a failure
    assert any("Application shutdown complete" in line for line in rest), rest


def test_building_the_wheel_raises_no_packaging_warnings(built: Built) -> None:
    # setuptools prints e.g. "BuildBackendWarning: `project.license` as a TOML table is
    # deprecated" or "SetuptoolsDeprecationWarning: ...", each inside a "!!" box.
    warnings = [line for line in built.log.splitlines() if re.search(r"\w+Warning\b|^\s*!!\s*$", line)]
    assert warnings == []


def test_the_wheel_carries_every_web_file_the_migrations_and_the_data(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as whl:
        names = set(whl.namelist())
        metadata = whl.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    web = _source_files(PACKAGE / "web")
    assert "rtc_server/web/index.html" in web
    assert {"rtc_server/web/css/app.css", "rtc_server/web/favicon.svg"} <= set(web)
    assert [f for f in web if f not in names] == []
    migrations = _source_files(PACKAGE / "migrations")
    assert "rtc_server/migrations/env.py" in migrations
    assert any(f.startswith("rtc_server/migrations/versions/") for f in migrations)
    assert [f for f in migrations if f not in names] == []
    assert [f for f in _source_files(PACKAGE / "data") if f not in names] == []
    # The licence as an SPDX expression, and the Python versions the README promises.
    assert "License-Expression: Apache-2.0" in metadata
    for version in ("3.11", "3.12", "3.13"):
        assert f"Classifier: Programming Language :: Python :: {version}" in metadata


def test_an_installed_wheel_serves_the_front_page_with_its_register_button(served: str) -> None:
    with httpx.Client(base_url=served, timeout=10) as http:
        page = http.get("/")
        assert page.status_code == 200, (page.status_code, page.text[:300])
        register_link = r'<a [^>]*href="/register.html"[^>]*>\s*Register\s*</a>'
        assert re.search(register_link, page.text), page.text[:2000]
        assets = re.findall(r'(?:href|src)="(/[^"]+\.(?:css|js|svg))"', page.text)
        assert any(a.endswith(".css") for a in assets), assets
        register = http.get("/register.html")
        assert register.status_code == 200, (register.status_code, register.text[:300])
        scripts = re.findall(r'src="(/[^"]+\.js)"', register.text)
        assert scripts, "the register page loads its script"
        for path in [*assets, *scripts]:
            got = http.get(path)
            assert got.status_code == 200, (path, got.status_code, got.text[:300])
            kind = {"css": "text/css", "js": "javascript", "svg": "image/svg+xml"}[path.rsplit(".", 1)[1]]
            assert kind in got.headers["content-type"], (path, got.headers["content-type"])
        health = http.get("/healthz")
        assert health.status_code == 200, (health.status_code, health.text)


@pytest.mark.browser
async def test_in_a_browser_the_register_button_of_an_installed_wheel_opens_the_form(
    served: str, browser: object
) -> None:
    context = await browser.new_context()  # type: ignore[attr-defined]
    try:
        page = await context.new_page()
        failures: list[str] = []
        # Files the page loads (an /api/ answer is the server's business, not packaging's).
        page.on("response", lambda r: r.status >= 400 and "/api/" not in r.url
                and failures.append(f"{r.status} {r.url}"))
        page.on("pageerror", lambda e: failures.append(str(e)))
        await page.goto(served + "/")
        await page.get_by_role("link", name="Register", exact=True).click()
        await page.wait_for_url(served + "/register.html")
        # The form is there and its module (and every module it imports) loaded.
        await page.locator("form").first.wait_for()
        await page.wait_for_load_state("networkidle")
        assert failures == []
    finally:
        await context.close()


def test_an_installed_copy_without_its_web_files_refuses_to_start_with_one_line(
    installed: Installed, tmp_path: Path
) -> None:
    web = installed.package / "web"
    hidden = installed.package / "web.hidden-by-test"
    web.rename(hidden)
    try:
        server = Server(installed, tmp_path / "data")
        try:
            status = server.proc.wait(timeout=START_TIMEOUT)
        finally:
            log = server.stop()
        assert status == 1, log
    finally:
        hidden.rename(web)
    assert log[-1:] == [REFUSAL.format(web)], log
    assert not any("Traceback" in line for line in log)
    assert not any("Uvicorn running" in line for line in log)
