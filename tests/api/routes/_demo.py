"""A demo class written through the real predictions write path, and a tiny CDP client."""

from __future__ import annotations

import base64
import itertools
import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from lof.features.definitions import FEATURES
from lof.stores import open_prediction_store

DEMO_CLASS = 21
OTHER_CLASS = 22
FIRST_DAY = date(2025, 9, 1)
DAYS = 6
STUDENTS = tuple(range(9001, 9025))  # 24 students
LAST_DAY = FIRST_DAY + timedelta(days=DAYS - 1)
SECRET = "test-link-secret-0123456789abcdef"
KEY = "page-key-0123456789"


def demo_frame(*, class_id: int, users: tuple[int, ...], day_index: int, seed: int) -> pd.DataFrame:
    """One day's predictions as the daily flow writes them; risks drift from day to day."""
    rng = np.random.default_rng(seed)
    base = np.random.default_rng(class_id).uniform(0.05, 0.95, len(users))
    rows = []
    for i, user in enumerate(users):
        risk = float(np.clip(base[i] + 0.04 * day_index * (1 if i % 2 else -1), 0.01, 0.99))
        low = rng.dirichlet(np.ones(2)) * risk
        high = rng.dirichlet(np.ones(3)) * (1 - risk)
        prob = [*low, *high]
        rows.append(
            {
                "class_id": class_id,
                "user_id": user,
                "predicted_label": int(np.argmax(prob)) + 1,
                "predicted_prob": {str(k + 1): float(p) for k, p in enumerate(prob)},
                "risk_prob": float(sum(low)),
                "at_risk": float(sum(low)) >= 0.5,
                "required_level": 3,
                "model_name": "lof-outcome",
                "model_version": "7",
                "features": {
                    name: float(rng.integers(0, 50) * (1 - risk) * 4) for name in FEATURES
                },
            }
        )
    return pd.DataFrame(rows)


def fill_demo(url: str) -> dict[date, pd.DataFrame]:
    """DAYS days of the demo class (and a second class on the same days) via write_day."""
    store = open_prediction_store(url)
    written = {}
    try:
        for k in range(DAYS):
            day = FIRST_DAY + timedelta(days=k)
            demo = demo_frame(class_id=DEMO_CLASS, users=STUDENTS, day_index=k, seed=k)
            other = demo_frame(class_id=OTHER_CLASS, users=(8001, 8002), day_index=k, seed=99)
            store.write_day(day=day, predictions=pd.concat([demo, other], ignore_index=True))
            written[day] = demo
    finally:
        getattr(store, "close", lambda: None)()
    return written


BROWSER_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
)


class Page:
    """One browser tab driven over the Chrome DevTools Protocol (websocket)."""

    def __init__(self, ws_url: str) -> None:
        from websockets.sync.client import connect

        self._ws = connect(ws_url, max_size=64 * 2**20, open_timeout=30)
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, timeout: float = 60.0, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        self._ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self._ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_event(self, method: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(i)
            message = json.loads(self._ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            self.events.append(message)

    def open(self, url: str) -> int:
        """Load ``url``; the HTTP status of the document."""
        self.events.clear()
        self.send("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")
        for event in self.events:
            params = event.get("params", {})
            if (
                event.get("method") == "Network.responseReceived"
                and params.get("type") == "Document"
            ):
                return int(params["response"]["status"])
        raise AssertionError(f"no document response seen for {url}")

    def js(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self) -> bytes:
        shot = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        return base64.b64decode(shot["data"])

    def close(self) -> None:
        self._ws.close()


@contextmanager
def chromium(profile: Path, *, log: Path) -> Iterator[Page]:
    """A real headless Debian Chromium and one tab in it; stopped afterwards."""
    profile.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["/usr/bin/chromium", *BROWSER_FLAGS, f"--user-data-dir={profile}",
             "--window-size=1280,1000", "about:blank"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        page = None
        try:
            port_file = profile / "DevToolsActivePort"
            deadline = time.monotonic() + 60
            while not (port_file.exists() and port_file.read_text().strip()):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"chromium did not start; see {log}")
                time.sleep(0.1)
            port = int(port_file.read_text().split()[0])
            target = httpx.put(f"http://127.0.0.1:{port}/json/new?about:blank", timeout=30).json()
            page = Page(target["webSocketDebuggerUrl"])
            page.send("Page.enable")
            page.send("Network.enable")
            yield page
        finally:
            if page is not None:
                page.close()
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
