"""The collapse monitor's decisions over a sequence of evals (pure objects, no training)."""

from __future__ import annotations

from qgan.config import MonitorConfig
from qgan.monitors import CollapseMonitor


def _row(ratio: float) -> dict:
    return {"sample_var_ratio": ratio, "modes_covered": 1, "n_modes": 2}


def _run(monitor: CollapseMonitor, ratios: list[float]) -> list[list[str]]:
    return [[d.kind for d in monitor.observe_eval(25 * (i + 1), _row(r))]
            for i, r in enumerate(ratios)]


def test_an_untrained_generator_is_not_collapsed():
    """Starting narrow (ratio 0.025, as an MLP generator at a small rate does) is not a
    collapse: no action, no stop, however long it lasts."""
    m = CollapseMonitor(MonitorConfig(collapse_var_ratio=0.05, collapse_action="lr"))
    assert _run(m, [0.025, 0.03, 0.04, 0.02, 0.03, 0.04]) == [[]] * 6
    assert (m.active, m.actions, m.peak_ratio) == (False, 0, 0.04)


def test_a_drop_after_diversity_is_acted_on_then_stops_the_run():
    m = CollapseMonitor(MonitorConfig(collapse_var_ratio=0.05, collapse_action="lr",
                                      stop_on_critical=True))
    got = _run(m, [0.02, 0.4, 0.8, 0.01, 0.01, 0.02, 0.01])
    assert got == [[], [], [], ["collapse_detected", "recovery_action"], [], [], ["early_stop"]]
    assert (m.onset_step, m.actions) == (100, 1)


def test_recovery_ends_the_episode_and_state_survives_a_checkpoint():
    cfg = MonitorConfig(collapse_var_ratio=0.05, collapse_action="none")
    m = CollapseMonitor(cfg)
    assert _run(m, [0.3, 0.01]) == [[], ["collapse_detected"]]
    resumed = CollapseMonitor(cfg)
    resumed.load_state_dict(m.state_dict())
    assert resumed.observe_eval(75, _row(0.2))[0].kind == "collapse_ended"
    # a checkpoint written before the monitor had `peak_ratio` loads armed, as it was then
    old = CollapseMonitor(cfg)
    old.load_state_dict({k: v for k, v in m.state_dict().items() if k != "peak_ratio"})
    assert old.peak_ratio == 0.1 and old.active and old.observe_eval(75, _row(0.01)) == []


def test_early_stopping_takes_the_metric_direction_from_the_vocabulary():
    """early_stop_mode = 'auto' (the default): w1_mean must fall, mode_balance must rise."""
    from qgan.monitors import EarlyStopping

    def stops(metric: str, values: list[float], mode: str = "auto") -> list[int]:
        m = EarlyStopping(MonitorConfig(early_stop_metric=metric, early_stop_mode=mode,
                                        patience=2, min_delta=0.0))
        return [i for i, v in enumerate(values)
                if m.observe_eval(i, {metric: v})]

    falling = [0.9, 0.5, 0.3, 0.2, 0.1]
    assert stops("w1_mean", falling) == []  # improving every eval
    assert stops("mode_balance", falling) == [2, 3, 4]  # worse every eval: stop at patience
    assert stops("mode_balance", falling, mode="min") == []  # an explicit mode still wins
