"""How the compiled simulators run a program: its instructions grouped into fused steps.

Why it exists: the compiled backends (compiled.py, total.py) do not apply one instruction at a
time. Exact algebra, decided once here in pure Python, makes them cheaper:
- Diagonal gates (rotation, Kerr) are fused into a neighbouring non-diagonal single-mode gate
  of their mode (`Fused`: post-diagonals @ dense @ pre-diagonals): a per-sample one into the
  previous gate (a rotation by the input joins its upload), a batch-shared one into the
  nearest gate that stays batch-shared (so it never turns shared matrices into per-sample
  ones). This reproduces the hand-fused S @ R1 and K @ D @ R2 of the CV-QNN layer.
- The gates acting on the vacuum before the first two-mode gate are not applied: each mode's
  first fused group there is its initial column (`Schedule.columns`; diagonals before the
  dense gate act on the vacuum as 1), the state is their product.
- Within a run of single-mode instructions the fused groups are applied in rank order (every
  mode's first group, then every mode's second, ...), which is the program's order of the
  non-commuting ones.
The backends build all groups of one `signature` (the same kinds in the same roles) at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from .program import KINDS, Const, Gate, Input, Weight


@dataclass(frozen=True)
class Fused:
    """Single-mode instructions of one mode, as one matrix: post @ dense @ pre, where pre and
    post are diagonal (instruction indices; dense None: diagonal gates only)."""
    mode: int
    pre: tuple[int, ...]
    dense: int | None
    post: tuple[int, ...]

    def components(self) -> list[tuple[str, int]]:
        """(role, instruction index) in a fixed order: pre..., dense, post...."""
        out = [("pre", i) for i in self.pre]
        if self.dense is not None:
            out.append(("dense", self.dense))
        return out + [("post", i) for i in self.post]


@dataclass(frozen=True)
class Pair:
    """A two-mode instruction, applied on its own."""
    index: int
    modes: tuple[int, ...]


Step = Union[Fused, Pair]


@dataclass(frozen=True)
class Schedule:
    columns: tuple[Fused | None, ...]  # per mode: the group acting on its vacuum, or None
    steps: tuple[Step, ...]


def per_sample(prog: tuple[Gate, ...], group: Fused) -> bool:
    return any(prog[i].per_sample for _, i in group.components())


def signature(prog: tuple[Gate, ...], group: Fused) -> tuple:
    """What decides how a group is built: its components' roles, kinds and per-sample-ness."""
    return tuple((role, prog[i].kind, prog[i].per_sample) for role, i in group.components())


def key(prog: tuple[Gate, ...], group: Fused) -> tuple:
    """Groups of equal keys have equal matrices (whatever their mode)."""
    return tuple((role, prog[i].kind, prog[i].params) for role, i in group.components())


def _fuse_mode(prog: tuple[Gate, ...], mode: int, indices: list[int]) -> list[Fused]:
    """The fused groups of one mode's single-mode instructions in a run (module docstring)."""
    dense = [i for i in indices if not KINDS[prog[i].kind].diagonal]
    if not dense:
        return [Fused(mode, tuple(indices), None, ())]
    shared = {d: not prog[d].per_sample for d in dense}  # the group stays batch-shared
    pre: dict[int, list[int]] = {d: [] for d in dense}
    post: dict[int, list[int]] = {d: [] for d in dense}
    diagonal = [i for i in indices if i not in shared]
    # per-sample diagonals join the previous dense gate (else the next), which they make
    # per-sample; then each batch-shared one joins the nearest batch-shared group (the next
    # one on a tie), else the previous dense gate, else the next
    for i in sorted(diagonal, key=lambda i: not prog[i].per_sample):
        prev = max((d for d in dense if d < i), default=None)
        nxt = min((d for d in dense if d > i), default=None)
        if prog[i].per_sample:
            target = prev if prev is not None else nxt
            shared[target] = False
        else:
            ok_prev = prev is not None and shared[prev]
            ok_next = nxt is not None and shared[nxt]
            if ok_next and (not ok_prev or nxt - i <= i - prev):
                target = nxt
            else:
                target = prev if prev is not None else nxt
        (pre if target > i else post)[target].append(i)
    return [Fused(mode, tuple(sorted(pre[d])), d, tuple(sorted(post[d]))) for d in dense]


def schedule(prog: tuple[Gate, ...], modes: int) -> Schedule:
    """The fused steps of `prog` on `modes` modes (module docstring)."""
    columns: list[Fused | None] = [None] * modes
    steps: list[Step] = []
    i = 0
    while i < len(prog):
        if len(prog[i].modes) > 1:
            steps.append(Pair(i, prog[i].modes))
            i += 1
            continue
        j = i
        while j < len(prog) and len(prog[j].modes) == 1:
            j += 1
        by_mode: dict[int, list[int]] = {}
        for k in range(i, j):
            by_mode.setdefault(prog[k].modes[0], []).append(k)
        groups = {m: _fuse_mode(prog, m, ks) for m, ks in sorted(by_mode.items())}
        if i == 0:  # the leading run acts on the vacuum
            for m, gs in groups.items():
                columns[m] = gs.pop(0)
        for rank in range(max((len(gs) for gs in groups.values()), default=0)):
            steps += [gs[rank] for gs in groups.values() if rank < len(gs)]
        i = j
    return Schedule(tuple(columns), tuple(steps))


def param_name(p: Weight | Input | Const) -> str:
    """The weight a parameter reads (or its source's kind): the compiled backends build
    the gates of one weight together."""
    return p.name if isinstance(p, Weight) else type(p).__name__


@dataclass(frozen=True)
class Layout:
    """Where the compiled backends keep each step's operator (pure bookkeeping, built once).

    kind_instrs: kind -> the batch-shared instructions `gates()` builds (outside the initial
    columns), ordered by weight (first appearance), row and column, so a layer weight is read
    by a reshape; row: instruction -> its row there. shared: signature -> its batch-shared
    groups (one stacked tensor each); sample: signature -> key -> a per-sample group (equal
    keys built once); sample_kinds: the kinds whose shared gates the per-sample groups read.
    steps: (step kind "pair" | "shared" | "sample", signature number, row, modes) in order.
    """
    kind_instrs: dict[str, list[int]]
    row: dict[int, int]
    shared: dict[tuple, list[Fused]]
    sample: dict[tuple, dict[tuple, Fused]]
    sample_kinds: frozenset[str]
    steps: tuple[tuple[str, int, int, tuple[int, ...]], ...]


def layout(prog: tuple[Gate, ...], sched: Schedule) -> Layout:
    """The `Layout` of a schedule."""
    folded = {i for g in sched.columns if g is not None for _, i in g.components()}
    used = [i for st in sched.steps for i in
            ([st.index] if isinstance(st, Pair) else [i for _, i in st.components()])
            if not prog[i].per_sample and i not in folded]
    names = list(dict.fromkeys(param_name(prog[i].params[0]) for i in used))

    def order(i: int) -> tuple:
        p = prog[i].params[0]
        where = (p.row, p.col) if isinstance(p, Weight) else (i, 0)
        return (names.index(param_name(p)), *where)

    kind_instrs: dict[str, list[int]] = {}
    for i in sorted(used, key=order):
        kind_instrs.setdefault(prog[i].kind, []).append(i)
    row = {i: r for ins in kind_instrs.values() for r, i in enumerate(ins)}
    shared: dict[tuple, list[Fused]] = {}
    sample: dict[tuple, dict[tuple, Fused]] = {}
    for st in sched.steps:
        if isinstance(st, Fused) and per_sample(prog, st):
            sample.setdefault(signature(prog, st), {}).setdefault(key(prog, st), st)
        elif isinstance(st, Fused):
            shared.setdefault(signature(prog, st), []).append(st)
    shared_ids = {sig: n for n, sig in enumerate(shared)}
    sample_ids = {sig: n for n, sig in enumerate(sample)}
    steps = []
    for st in sched.steps:
        if isinstance(st, Pair):
            steps.append(("pair", 0, row[st.index], st.modes))
        elif per_sample(prog, st):
            sig = signature(prog, st)
            steps.append(("sample", sample_ids[sig], list(sample[sig]).index(key(prog, st)),
                          (st.mode,)))
        else:
            sig = signature(prog, st)
            steps.append(("shared", shared_ids[sig], shared[sig].index(st), (st.mode,)))
    sample_kinds = frozenset(kind for sig in sample for _, kind, ps in sig if not ps)
    return Layout(kind_instrs, row, shared, sample, sample_kinds, tuple(steps))
