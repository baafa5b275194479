"""axe-core (bundled by ``axe-playwright-python``) in browser tests: WCAG 2.1 A
and AA, and any violation fails the test with each rule's id, impact and the
elements it found. The page's Content-Security-Policy does not apply: the script
goes in through the DevTools protocol, as Playwright's ``evaluate`` does.

    from tests.browser.axe import assert_accessible

    await page.goto(live_server.url + "/login.html")
    await assert_accessible(page)              # the viewport the page has
    await assert_accessible(page, phone=True)  # and again at 390 x 844

Run it once the page shows the state under test (after ``expect(...)`` waits),
not while it is still loading.
"""

from __future__ import annotations

from typing import Any

from axe_playwright_python.base import AXE_SCRIPT
from playwright.async_api import Page

WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
PHONE = {"width": 390, "height": 844}

_OPTIONS = {"runOnly": {"type": "tag", "values": WCAG_TAGS}, "resultTypes": ["violations"]}


def describe(violations: list[dict[str, Any]]) -> str:
    """One line per rule, then one per element: what a failing test prints."""
    lines = []
    for rule in violations:
        lines.append(f"{rule['id']} ({rule.get('impact')}): {rule.get('help')}")
        for node in rule.get("nodes", []):
            target = " ".join(str(t) for t in node.get("target", []))
            summary = [s.strip() for s in (node.get("failureSummary") or "").splitlines()[1:]]
            lines.append(f"    {target}: {'; '.join(summary)}")
    return "\n".join(lines)


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    """The WCAG 2.1 A/AA violations axe-core finds on the page as it is now. The
    script (the package's bundled axe-core) is added once per document."""
    if not await page.evaluate("typeof window.axe === 'object'"):
        await page.evaluate(AXE_SCRIPT)
    return list(await page.evaluate("(options) => axe.run(document, options).then((r) => r.violations)",
                                    _OPTIONS))


async def assert_accessible(page: Page, *, phone: bool = False) -> None:
    """Fail on any WCAG 2.1 A/AA violation; with ``phone``, check again at 390 x 844
    and put the viewport back."""
    where = [("", None)]
    if phone:
        where.append((f" at {PHONE['width']}x{PHONE['height']}", PHONE))
    problems = []
    original = page.viewport_size
    try:
        for label, size in where:
            if size is not None:
                await page.set_viewport_size(size)
            found = await axe_violations(page)
            if found:
                problems.append(f"{page.url}{label}:\n{describe(found)}")
    finally:
        if phone and original is not None:
            await page.set_viewport_size(original)
    assert not problems, "axe-core found WCAG 2.1 A/AA violations:\n" + "\n".join(problems)
