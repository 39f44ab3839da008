"""Postmortem at scale: load + diagnose + render time and peak memory for a synthetic sweep,
then the page in headless Chromium: first paint, charts ready, scrolling, opening a run.

    .venv/bin/python benchmarks/report_scale.py [--runs 64] [--steps 10000] [--samples]
    .venv/bin/python benchmarks/report_scale.py --runs 256 --browser   # + Chromium figures
    .venv/bin/python benchmarks/report_scale.py --against /tmp/old   # side by side

Each measurement runs in a fresh subprocess so that peak RSS (ru_maxrss) belongs to it alone.
`--against DIR` measures the `analysis`/`reports` code of another checkout (e.g.
`mkdir /tmp/old && git archive HEAD analysis reports qgan | tar -x -C /tmp/old`) on the very
same sweep, right before this tree's code, and prints both side by side: the only fair
before/after on a machine whose load changes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE_ENV = "REPORT_SCALE_CODE"  # --against: the other checkout, first on sys.path
# Module level on purpose: a spawned figure worker re-runs this module as __mp_main__, and
# must import the same checkout's packages as its parent.
sys.path[:0] = [p for p in (os.environ.get(CODE_ENV), str(ROOT), str(ROOT / "tests")) if p]


def _child(root: str, out: str, mode: str = "serial") -> None:
    from analysis import diagnose_experiment, load
    from reports import write_report

    t0, c0 = time.perf_counter(), time.process_time()
    if mode == "serial":  # one process, no diagnosis cache: the code before issue 24
        exp = load(root)
        t1, c1 = time.perf_counter(), time.process_time()
        d = diagnose_experiment(exp, cache=False)
    else:  # issue 24: `qgan report`'s path: each run's diagnosis and report part from its
        # cache; the runs that changed loaded and diagnosed in worker processes (JSON back)
        from reports.render import diagnose_for_report
        d = diagnose_for_report(root)
        t1, c1 = time.perf_counter(), time.process_time()  # load is inside diagnose here
    t2, c2 = time.perf_counter(), time.process_time()
    k = resource.getrusage(resource.RUSAGE_CHILDREN)
    workers_cpu = k.ru_utime + k.ru_stime  # the parallel load + diagnose processes
    write_report(d, out)
    t3, c3 = time.perf_counter(), time.process_time()
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = {"load_cpu_s": c1 - c0 + workers_cpu, "diagnose_cpu_s": c2 - c1,
           "render_cpu_s": c3 - c2 + kids.ru_utime + kids.ru_stime - workers_cpu}
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"mode": mode, "load_s": t1 - t0, "diagnose_s": t2 - t1, "render_s": t3 - t2,
                      "total_s": t3 - t0, **cpu, "peak_rss_mb": self_rss,
                      "peak_worker_rss_mb": kids_rss, "findings": len(d.all_findings()),
                      "report_mb": Path(out).stat().st_size / 1e6}))


def _measure(root: Path, out: Path, code: Path | None, mode: str = "serial") -> dict:
    cmd = [sys.executable, __file__, "--child", str(root), str(out), mode]
    env = {k: v for k, v in os.environ.items() if k != CODE_ENV}
    if code is not None:
        env[CODE_ENV] = str(code)
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True,
                                     env=env).stdout)


# In the page: paint entries, then scroll to the bottom in 40 steps, one per animation frame,
# and time the frames; then open the first closed run section and time its charts' build.
PAGE_PROBE = """(async () => {
  const paint = Object.fromEntries(performance.getEntriesByType('paint')
                                   .map(e => [e.name, e.startTime]));
  const nav = performance.getEntriesByType('navigation')[0];
  const frames = [];
  const H = document.documentElement.scrollHeight - innerHeight;
  let t = performance.now();
  for (let k = 1; k <= 40; k++) {
    scrollTo(0, H * k / 40);
    await new Promise(r => requestAnimationFrame(r));
    const now = performance.now(); frames.push(now - t); t = now;
  }
  frames.sort((a, b) => a - b);
  const closed = document.querySelector('details.run:not([open])');
  const t0 = performance.now();
  if (closed) closed.open = true;
  await new Promise(r => setTimeout(r, 0));
  const open_ms = performance.now() - t0;
  return {first_paint_ms: paint['first-paint'], first_contentful_paint_ms:
          paint['first-contentful-paint'], load_event_ms: nav.loadEventEnd,
          scroll_frame_median_ms: frames[20], scroll_frame_max_ms: frames[39],
          page_height_px: H + innerHeight, open_run_ms: open_ms,
          js_heap_mb: performance.memory ? performance.memory.usedJSHeapSize / 1e6 : null};
})()"""


def browser_figures(report: Path) -> dict:
    """Open the report in headless Chromium (tests/test_report_browser.py's CDP client) at a
    1280x900 viewport, device scale 2, and measure paint, scrolling and opening a run."""
    from test_report_browser import Browser, _chromium

    with tempfile.TemporaryDirectory() as profile:
        b = Browser(_chromium(), profile)
        try:
            target = b.send("Target.createTarget", url="about:blank")["targetId"]
            sid = b.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            b.send("Page.enable", session=sid)
            b.send("Emulation.setDeviceMetricsOverride", session=sid, width=1280, height=900,
                   deviceScaleFactor=2, mobile=False)
            t = time.perf_counter()
            b.send("Page.navigate", session=sid, url=report.as_uri())
            b.wait_event("Page.loadEventFired", timeout=120)
            wall = time.perf_counter() - t
            r = b.send("Runtime.evaluate", session=sid, expression=PAGE_PROBE,
                       awaitPromise=True, returnByValue=True, timeout=120)
            return {"browser_load_wall_s": wall, **r["result"]["value"]}
        finally:
            b.close()


def _table(results: dict[str, dict]) -> str:
    names = list(results)
    lines = ["| measure | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for key in next(iter(results.values())):
        vals = [results[n][key] for n in names]
        lines.append(f"| {key} | " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v)
                                               for v in vals) + " |")
    return "\n".join(lines)


def _touch_one_run(root: Path) -> None:
    """One run gains a part (as a running trainer's next flush would): a copy of its newest
    steps part under a new name, so only that run's diagnosis key changes."""
    import shutil
    run = sorted(p for p in root.iterdir() if p.is_dir())[0]
    parts = sorted((run / "metrics" / "steps").rglob("part-*.parquet"))
    shutil.copy(parts[-1], parts[-1].with_name("part-999999.parquet"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--samples", action="store_true",
                    help="write sample files at every eval (the samples animation)")
    ap.add_argument("--browser", action="store_true",
                    help="also open the report in headless Chromium (first paint, scroll)")
    ap.add_argument("--against", type=Path, metavar="DIR",
                    help="also measure the analysis/reports code of this checkout")
    ap.add_argument("--cache", action="store_true",
                    help="issue 24: measure the parallel, cached path cold (no cache), warm "
                         "(nothing changed) and after one run gained a part, beside serial")
    ap.add_argument("--sweep", type=Path, metavar="DIR",
                    help="keep the synthetic sweep in DIR: written there when DIR does not "
                         "exist, else reused as it is (its diagnosis caches removed first; "
                         "writing 1,000 runs takes minutes)")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(*args.child)
        return
    from qgan import schema
    from synthetic import sweep_plans, write_experiment

    with tempfile.TemporaryDirectory() as tmp:
        root = args.sweep or Path(tmp) / "sweep"
        if root.exists():
            for cached in root.glob(f"*/{schema.DIAGNOSIS_CACHE_FILE}"):
                cached.unlink()
            print(f"reusing the sweep in {root}", file=sys.stderr)
        else:
            t = time.perf_counter()
            write_experiment(root, sweep_plans(args.runs, args.steps, args.samples))
            print(f"wrote {args.runs} x {args.steps} synthetic sweep in "
                  f"{time.perf_counter() - t:.1f} s", file=sys.stderr)
        results = {}
        if args.against is not None:
            results[f"before ({args.against})"] = _measure(root, Path(tmp) / "before.html",
                                                          args.against.resolve())
        if args.cache:
            results["serial, uncached"] = _measure(root, Path(tmp) / "serial.html", None)
            results["parallel, cold"] = _measure(root, Path(tmp) / "cold.html", None, "cached")
            results["parallel, warm"] = _measure(root, Path(tmp) / "warm.html", None, "cached")
            _touch_one_run(root)
            results["one run changed"] = _measure(root, Path(tmp) / "one.html", None, "cached")
        else:
            results["this tree"] = _measure(root, Path(tmp) / "report.html", None)
        if args.browser and "this tree" in results:
            results["this tree"] |= browser_figures(Path(tmp) / "report.html")
        if args.browser and "parallel, warm" in results:
            results["parallel, warm"] |= browser_figures(Path(tmp) / "warm.html")
    for r in results.values():
        r |= {"runs": args.runs, "steps": args.steps}
    if len(results) == 1:
        print(json.dumps(next(iter(results.values())), indent=2))
    else:
        print(json.dumps(results, indent=2))
        print(_table(results))


if __name__ == "__main__":
    main()
