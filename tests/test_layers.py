"""The package stack as a contract: qgan, then analysis, then reports, then jobs.

Read from the source (every import, at module level and inside functions): no import points
up the stack, the module graph has no circles, and an import inside a function is deliberate
lazy loading that says why (`# lazy: ...`), except in command modules, whose work loads only
when the command runs. Run as processes: the TensorFlow-free side stays free of TensorFlow,
each layer's command line offers its own commands, and the pre-0.2 module path still starts.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("qgan", "analysis", "reports", "jobs")  # bottom to top
COMMANDS = {"qgan": ["config", "train", "sample"], "analysis": ["diagnose"],
            "reports": ["report", "figures", "export"],
            "jobs": ["submit", "status", "cancel", "resubmit", "extend", "drill"]}
HEAVY = ("tensorflow", "keras", "strawberryfields")


def _modules() -> dict[str, Path]:
    found = {}
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _target(module: str, node: ast.ImportFrom | ast.Import, name: str) -> str | None:
    """The project module an import loads (a submodule when `from pkg import sub`)."""
    if isinstance(node, ast.Import):
        base = name
    else:
        package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
        for _ in range(max(node.level - 1, 0)):
            package = package.rpartition(".")[0]
        base = (f"{package}.{node.module}" if node.module else package) if node.level \
            else node.module
        if f"{base}.{name}" in MODULES:
            return f"{base}.{name}"
    return base if base in MODULES else None


def _imports() -> list[tuple[str, str, bool, str]]:
    """(importer, imported project module, inside a function, source line) for every import."""
    edges = []
    for module, path in MODULES.items():
        source = path.read_text()
        lines = source.splitlines()
        tree = ast.parse(source)
        in_function = {id(sub) for fn in ast.walk(tree)
                       if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
                       for sub in ast.walk(fn)}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    target = _target(module, node, alias.name)
                    edges.append((module, target or "", id(node) in in_function,
                                  lines[node.lineno - 1]))
    return edges


def _layer(module: str) -> int:
    return LAYERS.index(module.split(".")[0])


def test_no_import_points_up_the_stack():
    upward = sorted(f"{a} -> {b}" for a, b, _, _ in _imports() if b and _layer(b) > _layer(a))
    assert upward == []


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []
    for start in graph:
        if start in index:
            continue
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        work = [(start, iter(sorted(graph[start])))]
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while not component or component[-1] != node:
                        component.append(stack.pop())
                        on_stack.discard(component[-1])
                    if len(component) > 1:
                        circles.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return circles


def test_the_module_graph_has_no_circles_counting_imports_inside_functions():
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for a, b, _, _ in _imports():
        if b and b != a:
            graph[a].add(b)
    assert _circles(graph) == []
    # the check sees a circle when there is one: plant the edge issue 23 removed (the local
    # backend importing the queue module to start it) and the circle is back
    graph["jobs.schedulers.local"].add("jobs.schedulers.local_queue")
    assert _circles(graph) == [["jobs.progress", "jobs.prune", "jobs.schedulers",
                                "jobs.schedulers.local", "jobs.schedulers.local_queue",
                                "jobs.task", "jobs.verdicts"]]


def test_an_import_inside_a_function_is_lazy_loading_and_says_why():
    unexplained = []
    for module, path in MODULES.items():
        source = path.read_text()
        lines = source.splitlines()
        for fn in ast.walk(ast.parse(source)):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)) \
                        and ".commands." not in f"{module}." \
                        and "lazy:" not in lines[node.lineno - 1]:
                    unexplained.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert sorted(set(unexplained)) == []


def _python(code: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_analysis_reports_status_and_cancel_never_load_tensorflow(tmp_path):
    """The postmortem and the job layer's status and cancel paths run on a login node or a
    laptop without paying for (or having) TensorFlow."""
    code = f"""
import json, sys
sys.path.insert(0, {str(ROOT / "tests")!r})
from pathlib import Path
from synthetic import Plan, write_experiment
import analysis, analysis.commands.diagnose, reports, reports.commands.report
from jobs import ledger
from jobs.cli import main
root = write_experiment(Path(sys.argv[1]), [Plan(name="r0", steps=100, samples=False),
                                            Plan(name="r1", steps=100, samples=False)])
ledger.update_experiment(root, lambda exp: (
    ledger.record_submission(exp, ["task-000"], "test", 1.0),
    ledger.record_job(exp, "task-000", "999999999", {{"process": {{"start": 1, "cmdline": "x"}}}})))
codes = [main(["status", str(root)]), main(["status", str(root), "--json"]),
         main(["cancel", str(root)]), main(["diagnose", str(root)])]
print(json.dumps({{"codes": codes, "loaded": sorted(m for m in sys.modules
                                                   if m.split(".")[0] in {HEAVY!r})}}))
"""
    done = _python(code, str(tmp_path / "exp"))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # status twice; cancel finds the recorded job already ended; diagnose exits 1 when the
    # synthetic runs' findings include errors, 0 otherwise: either way it ran to the end
    assert result["codes"][:3] == [0, 0, 0] and result["codes"][3] in (0, 1)
    assert result["loaded"] == []


@pytest.mark.parametrize("entry,layers", [
    ("jobs.cli", LAYERS), ("qgan", ("qgan",)), ("reports", ("analysis", "reports"))])
def test_each_command_line_offers_its_layers_commands(entry, layers):
    done = subprocess.run([sys.executable, "-m", entry, "--help"], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    listed = re.findall(r"^    (\w+)", done.stdout, flags=re.M)
    assert listed == [c for layer in layers for c in COMMANDS[layer]]


def test_python_m_qgan_loads_no_layer_above_it(tmp_path):
    """What the job layer starts for every attempt (`python -m qgan train`) imports the
    training layer only."""
    code = """
import runpy, sys
sys.argv = ["qgan", "config", "--default"]
try:
    runpy.run_module("qgan", run_name="__main__")
except SystemExit as exc:
    assert exc.code == 0, exc.code
print("upper layers loaded:", *sorted({m.split(".")[0] for m in sys.modules} & {"analysis", "reports", "jobs"}))
"""
    done = _python(code)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[train]" in done.stdout  # the default config was printed
    assert done.stdout.strip().splitlines()[-1] == "upper layers loaded:"


def test_the_pre_0_2_module_path_still_starts_a_job(tmp_path):
    """An attempt submitted by 0.1.0 runs `python -m jobs.cli train ...`: a SLURM job requeued
    after an upgrade must still start (the shim stays through the 0.2 releases)."""
    config = tmp_path / "bad.toml"
    config.write_text("[train]\nsteps = -1\n")
    done = subprocess.run([sys.executable, "-m", "jobs.cli", "train", str(config),
                           "--run-dir", str(tmp_path / "run")], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("qgan train: error:") and "train.steps" in done.stderr
    assert not (tmp_path / "run").exists()


def test_status_with_warm_diagnosis_caches_loads_no_pandas(tmp_path):
    """`qgan status` refreshes every few seconds on 1,000 runs: once each run's diagnosis is
    cached, its live verdicts come from the caches alone, without pandas, scipy or the
    run loader behind the diagnoses (importing them cost more than the rest of a refresh). The first refresh diagnoses (in worker processes) and fills the caches."""
    code = f"""
import json, subprocess, sys
sys.path.insert(0, {str(ROOT / "tests")!r})
from pathlib import Path
from synthetic import Plan, write_experiment
root = write_experiment(Path(sys.argv[1]), [Plan(name=f"r{{i}}", steps=100, samples=False)
                                            for i in range(5)])
probe = '''
import json, sys
from jobs.cli import main
code = main(["status", sys.argv[1], "--json"])
print(json.dumps({{"code": code, "loaded": sorted(m for m in ("pandas", "scipy",
        "analysis.rundata", "analysis.rundiagnose") if m in sys.modules)}}))
'''
runs = [subprocess.run([sys.executable, "-c", probe, str(root)], capture_output=True,
                       text=True) for _ in range(2)]
print(json.dumps([json.loads(r.stdout.strip().splitlines()[-1]) for r in runs]))
"""
    done = _python(code, str(tmp_path / "exp"))
    assert done.returncode == 0, done.stderr[-3000:]
    first, warm = json.loads(done.stdout.strip().splitlines()[-1])
    assert first["code"] == 0  # the runs were diagnosed in worker processes, and cached
    assert sorted(p.parent.name for p in (tmp_path / "exp").glob("*/.diagnosis-cache.json")) \
        == [f"task-00{i}" for i in range(5)]
    assert warm == {"code": 0, "loaded": []}
