"""The collapse monitor's decisions over a sequence of evals (pure objects, no training)."""

from __future__ import annotations

from qgan import thresholds
from qgan.config import Config, GuardConfig, MonitorConfig
from qgan.monitors import (CollapseMonitor, DeadGradientWatch, EarlyStopping, Guard, LRController,
                           MonitorList)


def _row(ratio: float, pairwise: float = 1.0) -> dict:
    return {"sample_var_ratio": ratio, "modes_covered": 1, "n_modes": 2,
            "mean_pairwise_dist": pairwise, "real_mean_pairwise_dist": 1.0}


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


def test_the_monitor_uses_the_collapse_definition_of_analysis():
    """Samples nearly identical (pairwise distance 5% of the real data's) at a variance ratio
    above the limit are collapse for the monitor as for the postmortem (qgan.thresholds)."""
    m = CollapseMonitor(MonitorConfig(collapse_var_ratio=0.05, collapse_action="none"))
    got = [[d.kind for d in m.observe_eval(25 * (i + 1), _row(r, pw))]
           for i, (r, pw) in enumerate([(0.5, 0.9), (0.2, 0.05), (0.2, 0.5)])]
    assert got == [[], ["collapse_detected"], ["collapse_ended"]]


def test_monitor_limits_come_from_the_config():
    cfg = MonitorConfig(collapse_var_ratio=0.05, collapse_arm_factor=10.0,
                        collapse_action="lr", collapse_persist_evals=1)
    m = CollapseMonitor(cfg)
    assert _run(m, [0.3, 0.01]) == [[], []]  # 0.3 < 10 x 0.05: not armed yet
    assert _run(m, [0.6, 0.01, 0.01]) == [[], ["collapse_detected", "recovery_action"],
                                          ["early_stop"]]
    dead = DeadGradientWatch(MonitorConfig(dead_gradient_steps=3))
    got = [dead.observe_step(s, {"g_grad_live": 0.0}) for s in range(1, 5)]
    assert [len(d) for d in got] == [0, 0, 1, 0] and got[2][0].stop == "early_stop"


def test_lr_controller_uses_the_dominance_thresholds_of_analysis():
    cfg = MonitorConfig(lr_controller=True, lr_controller_factor=0.5, lr_controller_max=1)
    c = LRController(cfg, "bce")
    # D(real) 0.9, D(fake) 0.1: a gap of 0.8 is not yet dominance (0.95 / 0.05 in analysis)
    c.observe_step(1, {"d_real": 0.9, "d_fake": 0.1})
    assert c.observe_eval(1, {}) == []
    c.observe_step(2, {"d_real": 0.97, "d_fake": 0.02})
    (d,) = c.observe_eval(2, {})
    assert (d.kind, d.lr_scale) == ("lr_change", {"d": 0.5})
    c.observe_step(3, {"d_real": 0.99, "d_fake": 0.01})
    assert c.observe_eval(3, {}) == []  # lr_controller_max reached


def test_config_defaults_are_the_shared_thresholds():
    assert MonitorConfig().collapse_var_ratio == thresholds.value("collapse_var_ratio")
    for key, name in thresholds.CONFIG_KEYS.items():
        section, field = key.split(".")
        assert getattr(getattr(Config(), section), field) == thresholds.value(name)


def test_monitors_share_one_lifecycle():
    """Every monitor has both hooks (no-ops by default), and a MonitorList round-trips the
    state of all of them by name."""
    ms = MonitorList({"guard": Guard(GuardConfig()), "dead": DeadGradientWatch(MonitorConfig()),
                      "stop": EarlyStopping(MonitorConfig())})
    assert ms.observe_eval(1, {"w1_mean": 1.0}) == []
    ms.monitors["dead"].dead_streak = 7
    again = MonitorList({"guard": Guard(GuardConfig()), "dead": DeadGradientWatch(MonitorConfig()),
                         "stop": EarlyStopping(MonitorConfig())})
    again.load_state_dict(ms.state_dict())
    assert again.state_dict() == ms.state_dict() and again.monitors["dead"].dead_streak == 7
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
