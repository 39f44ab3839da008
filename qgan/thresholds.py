"""Every health threshold, in one place, each with where its value comes from.

TF-free (schema layer): the trainer's monitors and log line, `qgan status` and `analysis` all
read these values, so a run called "leaking" in one place is called so everywhere. Where the
run config has a key for a threshold (`CONFIG_KEYS`), the config's default is this value and
analysis honours the run's own setting.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Threshold:
    value: float
    why: str


DEFAULTS: dict[str, Threshold] = {
    # ---- mode collapse (evals table) ----
    "collapse_var_ratio": Threshold(
        0.05, "generated/real total variance below this is collapse; same default as the "
              "trainer's monitor.collapse_var_ratio so report and monitor agree"),
    "collapse_pairwise_ratio": Threshold(
        0.1, "mean pairwise distance below 10% of the real data's: samples nearly identical "
             "(seed 004's 'std of distances < 0.1 x mean' low-diversity rule)"),
    "collapse_min_evals": Threshold(
        2, "consecutive collapsed evals before an episode counts; one eval can be a blip"),
    "recovery_window_evals": Threshold(
        3, "a recovery action 'worked' if collapse ends within this many evals after it"),
    "high_quality_min": Threshold(
        0.5, "fewer than half the samples within 3 sigma of a mode is poor quality (evidence)"),
    # ---- samples between the modes (evals table, mixture targets) ----
    "off_mode_max": Threshold(
        0.10, "more than 10% of the samples off every mode (1 - paper_hq_frac, the "
              "VEEGAN/PacGAN 3-std test) while every mode is covered: a band of samples "
              "bridging the modes (bimodal at the defaults plateaus at ~12%, 6% with "
              "encode_amplitude 2 at cutoff 24; BENCHMARKS.md 'the band limit')"),
    "off_mode_best_gap": Threshold(
        0.03, "the last evals' HQ must be within 3 points of the run's best stretch (the best "
              "median of as many consecutive evals): a generator that did better before is "
              "regressing or swinging, not at the limit of its map (the demo's learning rates "
              "x50 run: best 79 %, last 67 %), and raising its capacity is the wrong advice"),
    "off_mode_evals": Threshold(
        5, "the off-mode share is the median of this many last evals (the issue-9 stability "
           "goal's 'last five evals'); one noisy eval must not decide"),
    "off_mode_climb": Threshold(
        0.02, "HQ still climbing: the last evals' median is more than 2 points above the "
              "median of the evals before them; then training longer is the advice (the "
              "'improving' verdict), not a change of model. Within 2 points it has plateaued "
              "(bimodal: < 1 point from step ~1,500 to 3,000)"),
    # ---- non-finite episodes (steps table) ----
    "nan_merge_gap": Threshold(
        2, "non-finite steps at most this many steps apart are one episode"),
    "nan_precursor_steps": Threshold(
        50, "look-back window before an episode for precursors"),
    "nan_precursor_recent": Threshold(
        10, "the last N steps of the look-back are compared with its first half"),
    "nan_grad_growth": Threshold(
        10.0, "gradient norm grew by an order of magnitude before the NaN: exploding updates"),
    "nan_param_growth": Threshold(
        1.5, "parameter norm grew by 50%: displacement/squeezing running away (seed 002)"),
    "nan_trace_drop": Threshold(
        0.02, "Fock trace fell by 2 points: the state leaked past the cutoff"),
    # ---- gradient health (steps table) ----
    "grad_vanish": Threshold(
        1e-6, "global gradient norm below 1e-6 is vanishing (seed 004 GANMonitor)"),
    "grad_explode": Threshold(
        1e3, "global norm above 1e3, 100x the default clip_norm of 10: updates are pure clip "
             "direction and NaNs usually follow (seed 002: norms should stay < 10)"),
    "grad_live_warn": Threshold(
        0.8, "fewer than 80% of parameters with a finite non-zero gradient ('healthy gradient "
             "flow' line of seed 000)"),
    "grad_live_error": Threshold(
        0.1, "below 10% live parameters training is broken (seed 000 gradient_threshold)"),
    "grad_min_steps": Threshold(
        20, "a gradient pathology must last this many steps to count"),
    "grad_merge_gap": Threshold(
        5, "gaps of up to this many healthy steps do not split a gradient episode"),
    "clip_min_steps": Threshold(
        50, "clipped on every step for this long = clipping saturation (seed 002: 'all "
            "gradients clipped suggests LR too high')"),
    # ---- adversarial balance (steps table) ----
    "d_dominant_real": Threshold(0.95, "BCE: D(real) above this and ..."),
    "d_dominant_fake": Threshold(0.05, "... D(fake) below this = D dominates (seed 004)"),
    "g_dominant_real": Threshold(0.6, "BCE: D(real) below this and ..."),
    "g_dominant_fake": Threshold(0.4, "... D(fake) above this = G dominates, D too weak "
                                       "(seed 004)"),
    "equilibrium_tol": Threshold(
        0.1, "BCE: D(real) and D(fake) within 0.1 of 0.5 = equilibrium (seed 004 "
             "check_convergence)"),
    "critic_gap_dominant": Threshold(
        1.0, "WGAN: critic gap D(real)-D(fake) above 1 real-data std (per axis) = critic "
             "dominates: the W1 estimate says G is a whole std away"),
    "critic_gap_tol": Threshold(
        0.05, "WGAN: |gap| below 0.05 std = equilibrium; below -0.05 std = critic lags G"),
    "balance_min_steps": Threshold(50, "a balance phase must last this many steps"),
    "balance_merge_gap": Threshold(10, "noise of up to this many steps does not split a phase"),
    "osc_window": Threshold(500, "losses are checked for oscillation in windows of N steps"),
    "osc_smooth": Threshold(25, "moving-average width that removes step noise, keeps cycles"),
    "osc_ratio": Threshold(
        0.5, "smoothed/raw detrended spread above this: a slow cycle dominates the noise "
             "(white noise gives 1/sqrt(osc_smooth) = 0.2)"),
    "osc_min_crossings": Threshold(4, "at least 2 full cycles in the window"),
    "stagnation_frac": Threshold(0.3, "the last 30% of evals are the 'tail'"),
    "stagnation_rel_delta": Threshold(
        0.02, "the tail must improve the best w1_mean by 2% or the run stagnates"),
    "stagnation_min_evals": Threshold(6, "fewer evals than this: no stagnation verdict"),
    "w1_good_rel": Threshold(
        0.1, "final w1_mean below 0.1 real-data std per axis is good: a plateau there is "
             "convergence, not stagnation"),
    # ---- quality over the run (verdicts regressed / never_fit) ----
    "regress_ratio": Threshold(
        1.5, "final W1 (median of the last 3 evals) at least 1.5x the best W1: the run got "
             "clearly worse after its best (the demo's 0.22 -> 0.75 is 3.4x)"),
    "regress_min_gap": Threshold(
        0.05, "... and worse by at least 0.05 real-data std per axis, so that noise around a "
              "tiny W1 is not called a regression"),
    "never_fit_rel": Threshold(
        0.1, "the best W1 is not 10% below the first eval's: the generator never moved "
             "towards the data"),
    "never_fit_min_evals": Threshold(3, "fewer evals than this: no never-fit verdict"),
    # ---- live verdicts and pruning (analysis/live.py, jobs/prune.py) ----
    "live_grace_evals": Threshold(
        5, "while a run trains, a terminal verdict (leaking, never fit) is given only after "
           "this many evals: the first evals of a healthy run are noisy, and a generator that "
           "starts past the cutoff may still pull back inside it (a leak needs its end evals "
           "too, leak_end_evals)"),
    "prune_never_fit": Threshold(
        0, "1: --prune also stops never-fit runs after the grace. Off by default: in a sweep "
           "whose every run is weak the run to keep can be a never-fit one (measured: "
           "benchmarks/prune_sweep.py pruned the kept run), and the leak and divergence "
           "rules alone cannot stop it (analysis/keep.py keeps only trustworthy runs)"),
    "prune_leak_trace": Threshold(
        0.8, "the pruner stops a leaking run only when the evals at the leak's end sample from "
             "a Fock trace below this (20% of the probability lost, twice the error bar's "
             "10%): a healthy bimodal run dipped to 0.888 at step 1460 of 3000 and recovered "
             "to 0.95 with the sweep's best W1 (benchmarks/prune_sweep.py); the planted leaks "
             "sat at 0.08-0.73"),
    "prune_never_fit_frac": Threshold(
        0.25, "never-fit pruning (--prune-never-fit) waits for this fraction of train.steps "
              "too: a healthy bimodal run (benchmarks/prune_sweep.py) improves its W1 by 10% on "
              "its first eval only after ~200 steps, and reads never-fit until then"),
    "live_grace_frac": Threshold(
        0.1, "... and only after this fraction of train.steps: a run with dense evals is not "
             "judged on its first few hundred steps"),
    # ---- structure on any data (issue 20): modes, support, spread ----
    "mode_valley": Threshold(
        0.2, "two clusters of the data are one mode unless the density where they meet falls "
             "below 0.2 of the lower of their peaks (topological mode analysis on the data's "
             "k-NN graph, the fitted mixture as the density): two equal Gaussians must be "
             "4.3 std apart (ring8's neighbours are 5.1 apart); a curve whose density varies "
             "2x along it (a sine sampled uniformly in x: 0.45 at its slopes) stays one mode"),
    "mode_drop_weight": Threshold(
        0.05, "a data mode holding at least 5% of the data can be called dropped (smaller "
              "ones are within the noise of a 512-sample eval: 0.05 x 512 = 26 samples)"),
    "mode_drop_frac": Threshold(
        0.25, "... when the generator puts less than 1/4 of the mode's weight on it (the "
              "same 1/4 as modes_covered's n/(4K) for the built-in targets)"),
    "mode_skew_tv": Threshold(
        0.15, "total variation between the generated and the real mode weights above 0.15 "
              "is skewed (sampling noise of 512 samples over 8 modes is ~0.05; the issue's "
              "0.52/0.48/0.00 against 0.6/0.3/0.1 is 0.18)"),
    "support_rel_min": Threshold(
        0.8, "precision (mass on the data's support) or recall/coverage (support reached) "
             "below 0.8 x the value of a second real sample set of the same size: in 16-D "
             "real-vs-real precision is only ~0.8, so the level is relative, not absolute"),
    "spread_ratio": Threshold(
        1.25, "the median and the 90th percentile of the generated distance from the data's "
              "centre both more than 1.25x the real ones (too wide) or both below 1/1.25 "
              "(too narrow); a second real set of 512 samples stays within ~5%"),
    "tail_ratio_min": Threshold(
        0.6, "the 99th percentile of the generated distance from the data's centre below 0.6x "
             "the data's while the median is not: the tails are missing (a second real set "
             "of 512 from a Student-t(3) blob stays above 0.73x in 99 draws of 100)"),
    "structure_min_evals": Threshold(
        2, "consecutive evals a structure finding (dropped mode, skewed weights, support, "
           "spread) must hold; one eval can be a blip"),
    # ---- Fock leakage ----
    "leak_trace": Threshold(
        0.99, "state trace below 0.99: more than 1% probability past the cutoff "
              "(Strawberry Fields' guidance for a trustworthy truncation)"),
    "leak_trace_error": Threshold(0.9, "10% leaked: samples are simulation artefacts"),
    "leak_min_steps": Threshold(10, "leakage must last this many steps to count"),
    "leak_end_evals": Threshold(
        3, "a leak is an error only if the evals at its end (median of this many) still leak "
           "past leak_trace_error: the samples a researcher keeps are the evaluated "
           "generator's, not a training batch's"),
    # ---- job history ----
    "grace_seconds": Threshold(
        30, "SLURM KillWait default: time between SIGTERM and SIGKILL; one step plus one "
            "checkpoint must fit in it"),
    "lost_work_frac": Threshold(
        0.05, "more than 5% of computed steps thrown away is worth fixing"),
    # ---- sweeps ----
    "sweep_min_effect": Threshold(
        0.5, "|Spearman rho| (numeric) or eta^2 (categorical) of a hyperparameter against "
             "final w1_mean above this separates good from bad runs"),
    "sweep_max_p": Threshold(
        0.1, "permutation p-value of that effect: above this it may be chance (3 runs can "
             "never show an effect: every ordering has p >= 1/3); an effect is 'significant' "
             "when p <= sweep_max_p and effect >= sweep_min_effect"),
}

# run-config key -> the threshold it sets for that run (the config's default is the threshold's)
CONFIG_KEYS: dict[str, str] = {"monitor.collapse_var_ratio": "collapse_var_ratio"}


def collapsed(var_ratio, pairwise_ratio, th: dict[str, float] | None = None):
    """Mode collapse at an eval: the generated/real variance ratio or mean pairwise distance
    ratio below its threshold. The one definition: the trainer's monitor and analysis both
    call it (floats or numpy arrays; NaN never counts)."""
    th = th or defaults()
    return (var_ratio < th["collapse_var_ratio"]) | (pairwise_ratio < th["collapse_pairwise_ratio"])


def defaults() -> dict[str, float]:
    """Every threshold's default value by name."""
    return {k: t.value for k, t in DEFAULTS.items()}


def value(name: str) -> float:
    """The default value of a threshold (for the trainer and the job layer)."""
    return DEFAULTS[name].value
