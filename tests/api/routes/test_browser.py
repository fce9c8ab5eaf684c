"""The class page in a real headless Chromium (Debian package), served by a real `lof serve`.

The link comes from `lof link`, as in the README: one server, one browser for the module.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from PIL import Image
from pydantic import SecretStr

from lof.api.report import RISK_LINE
from lof.core import links
from tests.servers import free_port, running

from ._demo import (
    DAYS,
    DEMO_CLASS,
    FIRST_DAY,
    KEY,
    LAST_DAY,
    OTHER_CLASS,
    SECRET,
    STUDENTS,
    Page,
    chromium,
    fill_demo,
)


def _lof(name: str) -> str:
    return shutil.which(name, path=str(Path(sys.executable).parent)) or name


@contextmanager
def serving(home: Path, *, base_path: str = "", teacher: str = "t-07") -> Iterator[dict]:
    """`lof serve` over the demo class, and a link from `lof link`, as in the README."""
    url = f"sqlite:///{home / 'lof.db'}"
    written = fill_demo(url)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOF_")}
    env.update(
        LOF_HOME=str(home),
        LOF_STORE_URL=url,
        LOF_API_KEYS=KEY,
        LOF_LINK_SECRET=SECRET,
        LOF_PUBLIC_URL=f"http://127.0.0.1:{port}{base_path}",
    )
    command = [_lof("lof"), "serve", "--port", str(port)]
    with running(command, port=port, log=home / "serve.log", env=env, timeout=60) as base:
        made = subprocess.run(
            [_lof("lof"), "link", "--class-id", str(DEMO_CLASS), "--teacher-id", teacher],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        yield {"base": base, "link": made.stdout.strip(), "written": written, "home": home}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    with serving(tmp_path_factory.mktemp("page-home")) as found:
        yield found


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    root = tmp_path_factory.mktemp("chromium")
    with chromium(root / "profile", log=root / "chromium.log") as tab:
        yield tab


def test_page_lists_every_student_by_risk_with_trends(served: dict, page: Page) -> None:
    assert page.open(served["link"]) == 200
    expected = served["written"][LAST_DAY].sort_values(
        ["risk_prob", "user_id"], ascending=[False, True]
    )
    rows = page.js(
        "[...document.querySelectorAll('#students tbody tr')].map(r => ["
        "Number(r.dataset.userId), r.querySelector('th[scope=row]').textContent.trim(),"
        "r.querySelectorAll('svg.trend polyline').length,"
        "(r.querySelector('svg.trend polyline')?.getAttribute('points') || '').split(' ').length,"
        "r.querySelector('.flag').textContent.trim()])"
    )
    assert [r[0] for r in rows] == expected["user_id"].tolist()
    assert sorted(r[0] for r in rows) == sorted(STUDENTS)
    assert all(r[1] == str(r[0]) for r in rows)
    assert all(r[2] == 1 and r[3] == DAYS for r in rows)  # one point per scored day
    flags = dict(zip(expected["user_id"], expected["at_risk"], strict=True))
    assert [r[4] for r in rows] == ["At risk" if flags[r[0]] else "On track" for r in rows]
    assert page.js("document.querySelector('h1').textContent").startswith(f"Class {DEMO_CLASS}")
    assert page.js("document.querySelector('#students caption').textContent").strip()
    assert page.js("document.querySelector('svg.share polyline') !== null")
    assert page.js("document.querySelector('#at-risk-count').textContent").startswith(
        str(int(expected["at_risk"].sum()))
    )


def test_screenshot_is_not_blank(served: dict, page: Page) -> None:
    assert page.open(served["link"]) == 200
    image = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    width, height = image.size
    assert width >= 1000 and height >= 1000
    pixels = list(image.getdata())
    non_white = sum(1 for p in pixels if sum(p) < 720)
    assert non_white / len(pixels) > 0.02
    line = tuple(int(RISK_LINE[i : i + 2], 16) for i in (1, 3, 5))
    drawn = sum(1 for p in pixels if all(abs(a - b) <= 40 for a, b in zip(p, line, strict=True)))
    assert drawn > 200  # the trend lines were painted, not only text


def test_print_hides_the_feedback_forms(served: dict, page: Page) -> None:
    assert page.open(served["link"]) == 200
    query = "getComputedStyle(document.querySelector('details.feedback')).display"
    assert page.js(query) != "none"
    page.send("Emulation.setEmulatedMedia", media="print")
    try:
        assert page.js(query) == "none"
    finally:
        page.send("Emulation.setEmulatedMedia", media="")


def test_older_day_by_date(served: dict, page: Page) -> None:
    assert page.open(served["link"] + f"&date={FIRST_DAY:%Y%m%d}") == 200
    assert FIRST_DAY.isoformat() in page.js("document.querySelector('h1').textContent")
    shapes = page.js(
        "[document.querySelectorAll('svg.trend polyline').length,"
        " document.querySelectorAll('svg.trend circle').length]"
    )
    assert shapes == [0, len(STUDENTS)]  # one scored day so far: a dot per student, no line


def _tampered(url: str) -> str:
    head, token = url.split("token=")
    payload, signature = token.split(".")
    flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    return f"{head}token={flipped}.{signature}"


def test_expired_tampered_and_other_class_links_get_403(served: dict, page: Page) -> None:
    base = served["base"]
    expired, _ = links.sign(
        secret=SecretStr(SECRET), class_id=DEMO_CLASS, ttl_seconds=60, now=1_000_000
    )
    other, _ = links.sign(secret=SecretStr(SECRET), class_id=OTHER_CLASS, ttl_seconds=600)
    cases = {
        "expired": links.class_page_url(base_url=base, class_id=DEMO_CLASS, token=expired),
        "not valid": _tampered(served["link"]),
        "another class": links.class_page_url(base_url=base, class_id=DEMO_CLASS, token=other),
        "needs a signed link": f"{base}/classes/{DEMO_CLASS}/report",
    }
    for words, url in cases.items():
        assert page.open(url) == 403, url
        text = page.js("document.body.innerText")
        assert words in text and "What to do" in text, text
        assert page.js("document.querySelectorAll('#students').length") == 0


def test_feedback_form_without_script_saves_and_comes_back(served: dict, page: Page) -> None:
    assert page.open(served["link"]) == 200
    user = page.js(
        "Number(document.querySelector('details.feedback').closest('tr').dataset.userId)"
    )
    page.js(
        "(() => { const f = document.querySelector(`tr[data-user-id='" + str(user) + "'] form`);"
        "f.closest('details').open = true;"
        "f.querySelector('input[value=already_known]').checked = true;"
        "f.querySelector('textarea').value = 'met them on Friday'; f.submit(); })()"
    )  # submit() sends the plain form, as a click without scripts would
    page.wait_event("Page.loadEventFired")
    assert "saved" in page.js("document.querySelector('.notice').textContent")
    verdict = page.js(
        f"document.querySelector(\"tr[data-user-id='{user}'] details\").dataset.verdict"
    )
    assert verdict == "already_known"
    exported = httpx.get(
        f"{served['base']}/feedback", params={"class_id": DEMO_CLASS}, headers={"x-api-key": KEY}
    ).json()
    assert [(r["user_id"], r["teacher_id"], r["verdict"], r["note"]) for r in exported] == [
        (user, "t-07", "already_known", "met them on Friday")
    ]
    assert exported[0]["source"] == "page" and exported[0]["model_version"] == "7"


def test_action_form_records_and_the_trend_marks_the_day(served: dict, page: Page) -> None:
    assert page.open(served["link"]) == 200
    user = page.js("Number(document.querySelector('#students tbody tr:last-child').dataset.userId)")
    day = FIRST_DAY + timedelta(days=2)
    page.js(
        "(() => { const f = document.querySelector(`tr[data-user-id='"
        + str(user)
        + "'] details.action form`); f.closest('details').open = true;"
        "f.querySelector('input[value=meeting]').checked = true;"
        f"f.querySelector('input[name=action_dt]').value = '{day.isoformat()}';"
        "f.querySelector('textarea').value = 'planned the labs'; f.submit(); })()"
    )
    page.wait_event("Page.loadEventFired")
    assert "recorded" in page.js("document.querySelector('.notice').textContent")
    row = f"tr[data-user-id='{user}']"
    assert page.js(f'document.querySelector("{row} ul.actions").textContent.trim()') == (
        f"Meeting on {day.isoformat()}"
    )
    marks = page.js(
        f'[...document.querySelectorAll("{row} svg.trend line.action-mark")]'
        ".map(l => Number(l.getAttribute('x1')))"
    )
    points = page.js(
        f"document.querySelector(\"{row} svg.trend polyline\").getAttribute('points')"
    ).split(" ")
    assert marks == [float(points[2].split(",")[0])]  # on the third scored day's point
    assert page.js("document.querySelectorAll('svg.trend line.action-mark').length") == 1
    exported = httpx.get(
        f"{served['base']}/interventions",
        params={"class_id": DEMO_CLASS},
        headers={"x-api-key": KEY},
    ).json()
    assert [(r["user_id"], r["teacher_id"], r["action"], r["action_dt"]) for r in exported] == [
        (user, "t-07", "meeting", f"{day:%Y%m%d}")
    ]


def test_changes_filter_shows_only_the_changed_students(served: dict, page: Page) -> None:
    assert page.open(served["link"]) == 200
    changed = page.js("document.querySelectorAll('#students tbody tr[data-change]').length")
    total = page.js("document.querySelectorAll('#students tbody tr').length")
    assert 0 < changed < total
    visible = (
        "[...document.querySelectorAll('#students tbody tr')]"
        ".filter(r => getComputedStyle(r).display !== 'none').length"
    )
    assert page.js(visible) == total
    page.js("document.querySelector('#only-changes').click()")
    assert page.js(visible) == changed


def _luminance(rgb: list[float]) -> float:
    def channel(c: float) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_text_contrast_meets_wcag_aa(served: dict, page: Page) -> None:
    assert page.open(served["link"]) == 200
    pairs = page.js(
        """(() => {
        const rgb = s => s.match(/[\\d.]+/g).map(Number);
        const bg = el => { for (; el; el = el.parentElement) {
            const c = getComputedStyle(el).backgroundColor;
            if (rgb(c).length < 4 || rgb(c)[3] > 0) return rgb(c); } return [255, 255, 255]; };
        return ['h1', 'p.meta', 'caption', 'thead th', 'tbody th', 'td', 'a', '.flag.risk',
                '.flag.ok', 'summary', 'svg.share text']
          .map(q => document.querySelector(q)).filter(Boolean)
          .map(el => [el.tagName + '.' + (el.className.baseVal ?? el.className),
                      rgb(el instanceof SVGElement ? getComputedStyle(el).fill
                          : getComputedStyle(el).color), bg(el)]);
        })()"""
    )
    assert len(pairs) >= 10
    for name, fg, bg in pairs:
        light, dark = sorted((_luminance(fg), _luminance(bg)), reverse=True)
        ratio = (light + 0.05) / (dark + 0.05)
        assert ratio >= 4.5, (name, fg, bg, ratio)


def test_access_log_hides_tokens(served: dict) -> None:
    log = (Path(served["home"]) / "serve.log").read_text()
    token = served["link"].split("token=")[1]
    assert "token=***" in log
    assert token not in log and token.split(".")[1] not in log


@pytest.fixture(scope="module")
def served_under_prod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The same page served under the base path of LOF_PUBLIC_URL, as behind an API Gateway
    stage (https://<api>.execute-api.<region>.amazonaws.com/prod)."""
    home = tmp_path_factory.mktemp("page-home-prod")
    with serving(home, base_path="/prod", teacher="t-09") as found:
        yield found | {"prefix": f"{found['base']}/prod/"}


def test_the_page_works_under_a_base_path(served_under_prod: dict, page: Page) -> None:
    """Its links to other days and its feedback form keep the /prod prefix."""
    prefix = served_under_prod["prefix"]
    assert served_under_prod["link"].startswith(prefix + f"classes/{DEMO_CLASS}/report?")
    assert page.open(served_under_prod["link"]) == 200
    day_links = page.js("[...document.querySelectorAll('a[href*=\"date=\"]')].map(a => a.href)")
    assert day_links and all(href.startswith(prefix) for href in day_links)
    assert page.open(day_links[0]) == 200
    assert page.js("location.href").startswith(prefix)
    action = page.js("document.querySelector('details.feedback form').action")
    assert action == f"{prefix}classes/{DEMO_CLASS}/feedback"
    page.js(
        "(() => { const f = document.querySelector('details.feedback form');"
        "f.closest('details').open = true;"
        "f.querySelector('input[value=useful]').checked = true; f.submit(); })()"
    )
    page.wait_event("Page.loadEventFired")
    assert page.js("location.href").startswith(prefix)
    assert "saved" in page.js("document.querySelector('.notice').textContent")
