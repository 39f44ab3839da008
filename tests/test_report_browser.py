"""Open a generated report in headless Chromium (file:// URL) over the DevTools protocol.

No extra packages: Chromium's --remote-debugging-pipe speaks NUL-separated JSON on fds 3/4.
In CI (CI=true) a missing Chromium is a failure, elsewhere a skip.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from analysis import diagnose_path
from reports import write_report
from synthetic import Plan, write_experiment

pytestmark = pytest.mark.browser
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def _chromium() -> str:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    msg = "headless Chromium not found (apt-get install chromium)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


def _high(fd: int) -> int:
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return new


class Browser:
    """The smallest CDP client: send a command, wait for its reply, collect events."""

    def __init__(self, exe: str, profile: str):
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()
        # keep the child's ends clear of 3 and 4, where preexec_fn puts them
        to_chrome_r, from_chrome_w = (_high(to_chrome_r), _high(from_chrome_w))
        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-extensions", f"--user-data-dir={profile}",
             "--remote-debugging-pipe", "about:blank"],
            pass_fds=(3, 4, to_chrome_r, from_chrome_w), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # the DevTools pipe is fds 3 (commands in) and 4 (replies out); pass_fds keeps
            # them open after preexec_fn has put the pipe ends there
            preexec_fn=lambda: (os.dup2(to_chrome_r, 3), os.dup2(from_chrome_w, 4)))
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.events: list[dict] = []
        self.replies: dict[int, dict] = {}
        self._cv = threading.Condition()
        self._id = 0
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self) -> None:
        buf = b""
        while True:
            chunk = os.read(self._r, 1 << 16)
            if not chunk:
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                with self._cv:
                    if "id" in msg:
                        self.replies[msg["id"]] = msg
                    else:
                        self.events.append(msg)
                    self._cv.notify_all()

    def send(self, method: str, session: str | None = None, timeout: float = 30, **params):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        with self._cv:
            assert self._cv.wait_for(lambda: self._id in self.replies, timeout), method
            reply = self.replies.pop(self._id)
        assert "error" not in reply, reply
        return reply.get("result", {})

    def wait_event(self, method: str, timeout: float = 30) -> dict:
        with self._cv:
            assert self._cv.wait_for(
                lambda: any(e["method"] == method for e in self.events), timeout), method
            return next(e for e in self.events if e["method"] == method)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except Exception:  # noqa: BLE001
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def report_file(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser") / "exp"
    plans = [Plan(name=f'<script>alert("{i}")</script>', steps=300, seed=i, g_lr=lr,
                  final_w1=0.02 + lr, collapse=(200, None) if lr > 0.1 else None,
                  kills=[130] if i == 1 else [], config={"train.g_lr": lr})
             for i, lr in enumerate([0.2, 0.001, 0.05, 0.01])]
    write_experiment(root, plans)
    return write_report(diagnose_path(root), root / "report.html", workers=1)


@pytest.fixture(scope="module")
def page(report_file):
    exe = _chromium()
    with tempfile.TemporaryDirectory() as profile:
        b = Browser(exe, profile)
        try:
            target = b.send("Target.createTarget", url="about:blank")["targetId"]
            sid = b.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                b.send(f"{domain}.enable", session=sid)
            b.send("Page.navigate", session=sid, url=report_file.as_uri())
            b.wait_event("Page.loadEventFired")
            time.sleep(0.3)
            yield b, sid
        finally:
            b.close()


def _eval(b: Browser, sid: str, expr: str):
    r = b.send("Runtime.evaluate", session=sid, expression=expr, returnByValue=True)
    assert "exceptionDetails" not in r, r
    return r["result"].get("value")


def test_no_console_errors_and_no_network(page):
    b, _ = page
    errors = [e for e in b.events if e["method"] == "Runtime.exceptionThrown"
              or (e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
              or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
    assert not errors, errors
    urls = [e["params"]["request"]["url"] for e in b.events
            if e["method"] == "Network.requestWillBeSent"]
    assert urls and all(u.startswith(("file:", "data:")) for u in urls), urls
    dialogs = [e for e in b.events if e["method"] == "Page.javascriptDialogOpening"]
    assert not dialogs  # the run names' <script>alert()</script> did not run


def test_figures_present_and_visible(page):
    b, sid = page
    imgs = _eval(b, sid, """Array.from(document.images).map(i => [i.complete,
        i.naturalWidth, i.getBoundingClientRect().width])""")
    assert len(imgs) >= 4 * 4
    assert all(c and nw > 0 and w > 0 for c, nw, w in imgs), imgs


def test_table_sorts(page):
    b, sid = page
    col = """Array.from(document.querySelectorAll('#sweep-table tbody tr'))
             .map(r => parseFloat(r.cells[3].getAttribute('data-v')))"""
    _eval(b, sid, "document.querySelectorAll('#sweep-table th')[3].click()")
    asc = _eval(b, sid, col)
    assert asc == sorted(asc) and len(asc) == 4
    _eval(b, sid, "document.querySelectorAll('#sweep-table th')[3].click()")
    desc = _eval(b, sid, col)
    assert desc == sorted(asc, reverse=True)
    names = """Array.from(document.querySelectorAll('#sweep-table tbody tr'))
               .map(r => r.cells[1].textContent)"""
    _eval(b, sid, "document.querySelectorAll('#sweep-table th')[1].click()")
    got = _eval(b, sid, names)
    assert got == sorted(got, key=lambda s: s) or got == sorted(got)
