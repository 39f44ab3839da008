"""Open a generated report in headless Chromium (file:// URL) over the DevTools protocol.

No extra packages: Chromium's --remote-debugging-pipe speaks NUL-separated JSON on fds 3/4.
In CI (CI=true) a missing Chromium is a failure, elsewhere a skip.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis import diagnose_path
from qgan import schema
from reports import write_report
from synthetic import Plan, corrupt_part, write_checkpoints, write_experiment

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


KEEP_LR = 0.001  # the lowest final W1 of the sweep below


@pytest.fixture(scope="module")
def report_file(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser") / "exp"
    plans = [Plan(name=f'<script>alert("{i}")</script>', steps=300, seed=i, g_lr=lr,
                  final_w1=0.02 + lr, collapse=(200, None) if lr > 0.1 else None,
                  kills=[130] if i == 1 else [], config={"train.g_lr": lr})
             for i, lr in enumerate([0.2, KEEP_LR, 0.05, 0.01])]
    write_experiment(root, plans)
    kept = root / "task-001"  # lr 0.001: the only run whose best checkpoint is on disk
    write_checkpoints(kept, [250, 300], best=(300, 0.021))
    t = np.linspace(0, 1, 33)
    pq.write_table(pa.table({"t": t, "z0": 2 * t - 1, "x0": np.cos(np.pi * t),
                             "x1": np.sin(np.pi * t), "step": np.full(33, 300)}),
                   kept / schema.SAMPLES_DIR / schema.INTERPOLATION_FILE)
    return write_report(diagnose_path(root), root / "report.html")


@contextlib.contextmanager
def _open(report: Path):
    """A fresh headless Chromium showing `report` at 1280x900, device scale 2."""
    exe = _chromium()
    with tempfile.TemporaryDirectory() as profile:
        b = Browser(exe, profile)
        try:
            target = b.send("Target.createTarget", url="about:blank")["targetId"]
            sid = b.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                b.send(f"{domain}.enable", session=sid)
            b.send("Emulation.setDeviceMetricsOverride", session=sid, width=1280, height=900,
                   deviceScaleFactor=2, mobile=False)
            b.send("Page.navigate", session=sid, url=report.as_uri())
            b.wait_event("Page.loadEventFired")
            assert _wait(b, sid, "document.documentElement.dataset.ready === '1'")
            yield b, sid
        finally:
            b.close()


@pytest.fixture(scope="module")
def page(report_file):
    with _open(report_file) as p:
        yield p


def _errors(b: Browser) -> list[dict]:
    return [e for e in b.events if e["method"] == "Runtime.exceptionThrown"
            or (e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
            or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]


def _eval(b: Browser, sid: str, expr: str):
    r = b.send("Runtime.evaluate", session=sid, expression=expr, returnByValue=True,
               awaitPromise=True)
    assert "exceptionDetails" not in r, r
    return r["result"].get("value")


def _wait(b: Browser, sid: str, expr: str, timeout: float = 10) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if _eval(b, sid, expr):
            return True
        time.sleep(0.05)
    return False


def _mouse(b: Browser, sid: str, kind: str, x: float, y: float, buttons: int = 0) -> None:
    b.send("Input.dispatchMouseEvent", session=sid, type=kind, x=x, y=y,
           button="left" if kind != "mouseMoved" or buttons else "none", buttons=buttons,
           clickCount=1 if kind != "mouseMoved" else 0)


def _box(b: Browser, sid: str, selector: str) -> dict:
    """The element's box in viewport pixels, after scrolling it into view."""
    return _eval(b, sid, f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
        e.scrollIntoView({{block: "center"}}); const r = e.getBoundingClientRect();
        return {{x: r.x, y: r.y, w: r.width, h: r.height}}; }})()""")


def _legend_values(b: Browser, sid: str) -> list[str]:
    return _eval(b, sid, """Array.from(document.querySelectorAll(
        '#overlay-0 .u-legend tr.u-series td.u-value')).map(td => td.textContent)""")


def test_no_console_errors_and_no_network(page):
    b, _ = page
    assert not _errors(b)
    urls = [e["params"]["request"]["url"] for e in b.events
            if e["method"] == "Network.requestWillBeSent"]
    assert urls and all(u.startswith(("file:", "data:")) for u in urls), urls
    dialogs = [e for e in b.events if e["method"] == "Page.javascriptDialogOpening"]
    assert not dialogs  # the run names' <script>alert()</script> did not run


def test_card_names_the_run_to_keep(page, report_file):
    b, sid = page
    card = _eval(b, sid, """(() => { const c = document.getElementById('keep-card');
        const r = c.getBoundingClientRect();
        return {name: document.getElementById('keep-name').textContent,
                path: document.getElementById('keep-checkpoint-path').textContent,
                best: document.getElementById('keep-best').textContent,
                text: c.innerText, others: c.querySelectorAll('#others li').length,
                top: r.top, bottom: r.bottom}; })()""")
    assert card["name"] == '<script>alert("1")</script>'  # lr 0.001, escaped and shown as text
    assert f"train.g_lr={KEEP_LR}" in card["text"]
    assert card["best"] == "best W1 0.021 at step 300"
    best = report_file.parent / "task-001" / schema.CHECKPOINT_DIR / "best-000001"
    assert card["path"] == str(best) and best.is_dir()
    assert "not on disk" not in card["text"]
    assert card["others"] == 3  # one line per other run, each with its verdict
    assert card["top"] >= 0 and card["bottom"] <= 900  # on the first screen


def test_latent_interpolation_drawn_for_the_kept_run(page):
    b, sid = page
    painted = _eval(b, sid, """(() => { const c = document.querySelector('#run-1 .interp canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let k = 3; k < d.length; k += 4) n += d[k] > 0;
        return [c.width > 0, n]; })()""")
    assert painted[0] and painted[1] > 1000
    assert _eval(b, sid, "document.querySelectorAll('.interp').length") == 1


def test_overlay_has_one_series_per_run(page):
    b, sid = page
    names = _eval(b, sid, """Array.from(document.querySelectorAll(
        '#overlay-0 .u-legend tr.u-series th .u-label')).map(e => e.textContent)""")
    runs = [f'<script>alert("{i}")</script>' for i in range(4)]
    assert names == ["step"] + runs
    n = _eval(b, sid, "qganReport.overlays.map(c => c.u.series.length - 1)")
    assert n == [4, 4]


def test_hover_shows_values(page):
    b, sid = page
    assert set(_legend_values(b, sid)) == {"–"}  # nothing under the cursor yet
    box = _box(b, sid, "#overlay-0 .u-over")
    _mouse(b, sid, "mouseMoved", box["x"] + box["w"] * 0.5, box["y"] + box["h"] * 0.5)
    assert _wait(b, sid, """Array.from(document.querySelectorAll(
        '#overlay-0 .u-legend tr.u-series td.u-value')).every(td => td.textContent !== '–')""")
    vals = _legend_values(b, sid)
    assert 140 <= float(vals[0]) <= 160  # the step half way along a 1..300 axis
    assert all(float(v) > 0 for v in vals[1:])  # W1 of each run at that step
    _mouse(b, sid, "mouseMoved", 5, 5)


def test_drag_zoom_changes_x_range(page):
    b, sid = page
    x_range = "(() => { const s = qganReport.overlays[0].u.scales.x; return [s.min, s.max]; })()"
    lo, hi = _eval(b, sid, x_range)
    assert lo <= 25 and hi >= 300
    box = _box(b, sid, "#overlay-0 .u-over")
    y = box["y"] + box["h"] / 2
    _mouse(b, sid, "mouseMoved", box["x"] + box["w"] * 0.25, y)
    _mouse(b, sid, "mousePressed", box["x"] + box["w"] * 0.25, y, 1)
    _mouse(b, sid, "mouseMoved", box["x"] + box["w"] * 0.6, y, 1)
    _mouse(b, sid, "mouseReleased", box["x"] + box["w"] * 0.6, y)
    assert _wait(b, sid, f"{x_range}[1] < {hi}")
    zlo, zhi = _eval(b, sid, x_range)
    assert lo < zlo < zhi < hi and (zhi - zlo) < 0.5 * (hi - lo)
    _eval(b, sid, "document.querySelector('#overlay-0 button.reset').click()")
    assert _eval(b, sid, x_range) == [lo, hi]


def test_log_toggle_and_smoothing(page):
    b, sid = page
    distr = "qganReport.overlays[0].u.scales.y.distr"
    assert _eval(b, sid, distr) == 3  # W1 opens on a log axis
    _eval(b, sid, "document.querySelector('#overlay-0 input.log').click()")
    assert _eval(b, sid, distr) == 1
    raw = _eval(b, sid, "qganReport.overlays[0].u.data[1].slice(0, 20)")
    _eval(b, sid, """(() => { const s = document.getElementById('smoothing');
        s.value = 0.9; s.dispatchEvent(new Event('input')); })()""")
    smoothed = _eval(b, sid, "qganReport.overlays[0].u.data[1].slice(0, 20)")
    assert smoothed[0] == raw[0] and smoothed[5] != raw[5]
    _eval(b, sid, """(() => { const s = document.getElementById('smoothing');
        s.value = 0; s.dispatchEvent(new Event('input'));
        document.querySelector('#overlay-0 input.log').click(); })()""")
    assert _eval(b, sid, "qganReport.overlays[0].u.data[1].slice(0, 20)") == raw


def test_metric_switch_keeps_one_series_per_run(page):
    b, sid = page
    _eval(b, sid, """(() => { const s = document.querySelector('#overlay-1 select.metric');
        s.value = 'fock_trace_min'; s.dispatchEvent(new Event('change')); })()""")
    c = _eval(b, sid, """(() => { const u = qganReport.overlays.find(c => c.box.id ===
        'overlay-1').u; return [u.series.length, u.data[1].length > 100]; })()""")
    assert c == [5, True]


def test_animation_advances_when_played(page):
    b, sid = page
    anim = "document.querySelector('#run-1 .anim')"
    assert _eval(b, sid, f"{anim} !== null && document.getElementById('run-1').open")
    first = _eval(b, sid, f"+{anim}.dataset.frame")
    assert first == _eval(b, sid, f"+{anim}.querySelector('input[type=range]').max") > 5
    _eval(b, sid, f"{anim}.querySelector('button.play').click()")
    # it wrapped around from the last frame (a frame below the last; not "=== 1": on a loaded
    # machine the poll can miss the 400 ms that frame 1 is shown)
    assert _wait(b, sid, f"+{anim}.dataset.frame < {first}", 5)
    _eval(b, sid, f"{anim}.querySelector('button.play').click()")  # pause
    time.sleep(0.5)
    stopped = _eval(b, sid, f"+{anim}.dataset.frame")
    time.sleep(0.6)
    assert _eval(b, sid, f"+{anim}.dataset.frame") == stopped
    label = _eval(b, sid, f"{anim}.querySelector('.frame-label').textContent")
    assert label.startswith("step ") and "eval" in label
    # scrub to the best eval: the label says so
    best = _eval(b, sid, "qganReport.data.runs[1].samples.best")
    k = _eval(b, sid, f"qganReport.data.runs[1].samples.steps.indexOf({best})")
    _eval(b, sid, f"""(() => {{ const s = {anim}.querySelector('input[type=range]');
        s.value = {k}; s.dispatchEvent(new Event('input')); }})()""")
    assert _eval(b, sid, f"{anim}.querySelector('.frame-label').textContent").endswith(
        ": the best eval")


def test_filter_hides_non_matching_runs(page):
    b, sid = page
    hidden = """Array.from(document.querySelectorAll('details.run'))
        .sort((a, b) => a.dataset.run - b.dataset.run).map(d => d.hidden)"""
    shown = "qganReport.overlays[0].u.series.slice(1).map(s => s.show)"
    assert _eval(b, sid, hidden) == [False] * 4
    _eval(b, sid, """(() => { const f = document.getElementById('filter');
        f.value = 'collapsed'; f.dispatchEvent(new Event('input')); })()""")
    assert _eval(b, sid, hidden) == [False, True, True, True]  # only lr 0.2 collapsed
    assert _eval(b, sid, "document.getElementById('keep-name').hidden") is False
    assert _eval(b, sid, "Array.from(document.querySelectorAll('#others li'))"
                         ".filter(li => !li.hidden).length") == 1
    assert _eval(b, sid, shown) == [True, False, False, False]
    legend = """Array.from(document.querySelectorAll('#overlay-0 .u-legend tr.u-series'))
        .slice(1).map(tr => tr.hidden)"""
    assert _eval(b, sid, legend) == [False, True, True, True]
    assert _eval(b, sid, "document.getElementById('filter-count').textContent") == \
        "1 of 4 runs shown"
    rows = _eval(b, sid, """Array.from(document.querySelectorAll('#sweep-table tbody tr'))
        .filter(r => !r.hidden).length""")
    assert rows == 1
    _eval(b, sid, """(() => { const f = document.getElementById('filter');
        f.value = ''; f.dispatchEvent(new Event('input'));
        document.getElementById('problems-only').click(); })()""")
    problems = _eval(b, sid, "Array.from(document.querySelectorAll('details.run'))"
                             ".filter(d => !d.hidden).map(d => d.querySelector('.v').textContent)")
    assert problems and "healthy" not in problems
    _eval(b, sid, "document.getElementById('problems-only').click()")
    assert _eval(b, sid, hidden) == [False] * 4
    # a verdict count in the card sets the filter
    _eval(b, sid, "document.querySelector('#verdict-counts button[data-verdict=collapsed]')"
                  ".click()")
    assert _eval(b, sid, "document.getElementById('filter').value") == "collapsed"
    assert _eval(b, sid, hidden) == [False, True, True, True]
    _eval(b, sid, """(() => { const f = document.getElementById('filter');
        f.value = ''; f.dispatchEvent(new Event('input')); })()""")


def test_finding_link_opens_run_and_marks_range(page):
    b, sid = page
    link = "document.querySelector('#run-0 a.goto[data-panel=modes][data-a]')"
    assert _eval(b, sid, "document.getElementById('run-0').open") is False
    _eval(b, sid, f"{link}.click()")
    assert _eval(b, sid, "document.getElementById('run-0').open") is True
    active = _eval(b, sid, """qganReport.built[0].modes.map(c =>
        c.shade.filter(s => s[3]).map(s => [s[0], s[1]]))""")
    # every chart of the modes panel: coverage, high-quality samples, diversity
    assert active == [[[200, 300]], [[200, 300]], [[200, 300]]]



def test_advice_links_to_its_panel_with_the_range_marked(page):
    b, sid = page
    advice = _eval(b, sid, """Array.from(document.querySelectorAll('#run-0 ol.advice a.goto'))
        .map(a => [a.dataset.panel, +a.dataset.a, +a.dataset.b, a.getAttribute('href')])""")
    assert advice and all(h == f"#run-0-{p}" for p, _, _, h in advice)
    panel, lo, hi, _ = advice[0]
    _eval(b, sid, "document.querySelector('#run-0 ol.advice a.goto').click()")
    marked = _eval(b, sid, f"""qganReport.built[0][{json.dumps(panel)}].map(c =>
        c.shade.filter(s => s[3]).map(s => [s[0], s[1]]))""")
    assert marked and all(m == [[lo, hi]] for m in marked)
    # only that range is marked now: the finding link's mark was cleared
    others = _eval(b, sid, f"""Object.entries(qganReport.built[0]).filter(e => e[0] !==
        {json.dumps(panel)}).flatMap(e => e[1]).filter(c => c.shade.some(s => s[3])).length""")
    assert others == 0


def test_table_sorts(page):
    b, sid = page
    col = """Array.from(document.querySelectorAll('#sweep-table tbody tr'))
             .map(r => parseFloat(r.cells[4].getAttribute('data-v')))"""
    _eval(b, sid, "document.querySelectorAll('#sweep-table th')[4].click()")
    asc = _eval(b, sid, col)
    assert asc == sorted(asc) and len(asc) == 4
    _eval(b, sid, "document.querySelectorAll('#sweep-table th')[4].click()")
    assert _eval(b, sid, col) == sorted(asc, reverse=True)


def test_damaged_runs_render_without_errors(tmp_path):
    """Runs with no evals, no samples, a corrupt steps part or only run.json: every section
    opens, every chart builds or says "no data", and the page throws nothing."""
    root = tmp_path / "exp"
    # classical generators: no Fock trace in any run (an all-empty overlay metric)
    write_experiment(root, [Plan(name="ok", steps=120, quantum=False),
                            Plan(name="crashed", crash_at=10, samples=False, quantum=False),
                            Plan(name="corrupt", steps=120, samples=False, part_rows=40,
                                 quantum=False),
                            Plan(name="empty", steps=60, samples=False, quantum=False)])
    corrupt_part(root / "task-002")
    for table in ("steps", "evals", "events"):
        shutil.rmtree(root / "task-003" / schema.METRICS_DIR / table)
    report = write_report(diagnose_path(root), root / "report.html")
    with _open(report) as (b, sid):
        _eval(b, sid, "document.querySelectorAll('details.run').forEach(d => { d.open = true; })")
        assert _wait(b, sid, "Object.keys(qganReport.built).length === 4")
        nodata = _eval(b, sid, """Array.from(document.querySelectorAll('#run-3 .chart'))
            .map(c => c.textContent)""")
        assert nodata and set(nodata) == {"no data"}
        for sel in ("#overlay-0", "#overlay-1"):
            box = _box(b, sid, f"{sel} .u-over")
            _mouse(b, sid, "mouseMoved", box["x"] + box["w"] / 2, box["y"] + box["h"] / 2)
        # every overlay metric, linear and log, including the empty Fock trace
        metrics = _eval(b, sid, "Array.from(document.querySelectorAll("
                                "'#overlay-1 select.metric option')).map(o => o.value)")
        assert "fock_trace_min" in metrics
        for m in metrics:
            _eval(b, sid, f"""(() => {{
                const s = document.querySelector('#overlay-1 select.metric');
                s.value = {json.dumps(m)}; s.dispatchEvent(new Event('change'));
                document.querySelector('#overlay-1 input.log').click(); }})()""")
        assert not _errors(b)


def test_critic_panel_shades_the_adversarial_phases(tmp_path):
    """The balance phases (analysis) reach the critic chart as background bands in their
    colours (reports/colors.py), behind the findings' red bands."""
    from reports.colors import PHASE_COLORS
    from qgan.vocabulary import FindingKind
    root = tmp_path / "exp"
    write_experiment(root, [Plan(name="dd", steps=300, d_dominant=(100, 199), quantum=False)])
    report = write_report(diagnose_path(root), root / "report.html")
    with _open(report) as (b, sid):
        _eval(b, sid, "document.getElementById('run-0').open = true")
        assert _wait(b, sid, "!!qganReport.built[0]")
        shade = _eval(b, sid, "qganReport.built[0].critic[0].shade.map(s => s.slice(0, 3))")
        assert [100, 199, PHASE_COLORS[FindingKind.D_DOMINANCE]] in shade
        assert _errors(b) == []


def test_samples_between_the_modes_reach_the_page(tmp_path):
    """A run whose samples sit 14.5 % off every mode (papers' HQ 0.855, all modes covered):
    the between_modes finding and its advice are on the page, its link marks the range on
    the high-quality chart, which draws the papers' HQ under the dashed 1 - off_mode_max."""
    root = tmp_path / "exp"
    write_experiment(root, [Plan(name="band", steps=300, hq=0.9, samples=False)])
    report = write_report(diagnose_path(root), root / "report.html")
    with _open(report) as (b, sid):
        advice = _eval(b, sid, """Array.from(document.querySelectorAll('#run-0 ol.advice li'))
            .map(li => li.textContent)""")
        assert any("Raise generator.cutoff: samples stay between the modes" in t
                   for t in advice)
        link = "document.querySelector('#run-0 table.findings a.goto[data-panel=modes]')"
        assert _eval(b, sid, f"{link}.textContent") == "between_modes"
        row = _eval(b, sid, f"{link}.closest('tr').textContent")
        assert "14.5% of the samples lie off every mode" in row and "generator.cutoff" in row
        a, z = _eval(b, sid, f"[+{link}.dataset.a, +{link}.dataset.b]")
        _eval(b, sid, f"{link}.click()")
        assert _wait(b, sid, "!!qganReport.built[0]")
        hq = _eval(b, sid, """(() => { const c = qganReport.built[0].modes[1];
            return [c.hline, c.series.map(s => s.label), c.series[0].y.slice(-1)[0],
                    c.shade.filter(s => s[3]).map(s => [s[0], s[1]])]; })()""")
        assert hq == [0.9, ["HQ (papers: 3 std)", "HQ (loose: 3 std x sqrt(d))"], 0.855,
                      [[a, z]]]
        assert _errors(b) == []
