"""The static front end keeps the rules the Content-Security-Policy and the design set:
no inline script, style or event handlers, nothing loaded from another site, one <h1>,
a skip link and <main id="main"> on every page, and no HTML parsing of text in the JS."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "rtc_server" / "web"
PAGES = sorted(WEB.rglob("*.html"))
SCRIPTS = sorted(WEB.rglob("*.js"))


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline_script = False
        self._in_script = False
        self._in_style = False
        self.inline_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "script":
            self._in_script = "src" not in attributes
        if tag == "style":
            self._in_style = True
            self.inline_style = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_script = True


def parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def test_every_page_of_the_contract_exists() -> None:
    names = {str(p.relative_to(WEB)) for p in PAGES}
    expected = {
        "index.html", "register.html", "login.html", "activate.html", "forgot-password.html",
        "reset-password.html", "forgot-username.html", "confirm-email.html", "terms.html",
        "privacy.html", "app/dashboard.html", "app/appointments.html", "app/records.html",
        "app/messages.html", "app/visits.html", "app/account.html", "app/help.html",
        "staff/verifications.html", "admin/audit.html", "staff/index.html",
        "app/security.html", "app/notifications.html", "errors/404.html",
    }
    assert expected <= names


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(WEB)))
def test_page_has_no_inline_code_and_loads_only_its_own_files(path: Path) -> None:
    page = parse(path)
    assert not page.inline_script, "inline <script>"
    assert not page.inline_style, "<style> element"
    for tag, attrs in page.tags:
        assert "style" not in attrs, f"style attribute on <{tag}>"
        handlers = [name for name in attrs if name.startswith("on")]
        assert not handlers, f"event handler attribute {handlers} on <{tag}>"
        for name in ("src", "href", "action"):
            value = attrs.get(name) or ""
            assert not re.match(r"^(https?:)?//", value), f"off-site {name}={value!r} on <{tag}>"
            assert not value.lower().startswith("javascript:"), f"javascript: URL on <{tag}>"


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(WEB)))
def test_page_has_the_accessible_skeleton(path: Path) -> None:
    page = parse(path)
    tags = page.tags
    html = next(attrs for tag, attrs in tags if tag == "html")
    assert html.get("lang") == "en"
    assert any(tag == "meta" and attrs.get("name") == "viewport" for tag, attrs in tags)
    assert [tag for tag, _ in tags].count("h1") == 1
    assert any(tag == "main" and attrs.get("id") == "main" for tag, attrs in tags)
    first_link = next(attrs for tag, attrs in tags if tag == "a")
    assert first_link.get("href") == "#main" and "skip-link" in (first_link.get("class") or "")
    ids = [attrs["id"] for _, attrs in tags if attrs.get("id")]
    assert len(ids) == len(set(ids)), "duplicate id"
    labelled = {attrs.get("for") for tag, attrs in tags if tag == "label"}
    for tag, attrs in tags:
        if tag in {"input", "select", "textarea"} and attrs.get("type") != "hidden":
            assert attrs.get("id") in labelled or attrs.get("aria-label"), f"unlabelled <{tag}> {attrs}"


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(WEB)))
def test_scripts_never_parse_text_as_html_or_eval(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    for pattern in (r"\.innerHTML\b", r"\.outerHTML\b", r"insertAdjacentHTML", r"document\.write",
                    r"\beval\(", r"new Function\b", r"https?://"):
        assert not re.search(pattern, source), f"{pattern} in {path.name}"
