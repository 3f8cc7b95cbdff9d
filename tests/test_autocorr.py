"""Error bars of correlated means (hqc_qiskit.autocorr) against AR(1) processes, whose tau is known exactly."""

import numpy as np
import pytest

from hqc_qiskit.autocorr import MIN_TAUS_FOR_TRUST, averages, series_stats
from hqc_qiskit.errors import HQCError


def ar1(phi: float, n: int, rng: np.random.Generator, chains: int = 1) -> np.ndarray:
    """x_t = phi x_{t-1} + e_t, stationary start; integrated autocorrelation time (1 + phi) / (1 - phi). (chains, n)"""
    x = np.empty((chains, n))
    x[:, 0] = rng.normal(size=chains) / np.sqrt(1 - phi ** 2)
    e = rng.normal(size=(chains, n))
    for t in range(1, n):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    return x


def test_tau_of_an_ar1_process_and_the_stride_in_steps():
    phi = 0.8   # tau = 9 samples
    x = ar1(phi, 200_000, np.random.default_rng(0))[0]
    s = series_stats(x, stride_steps=10)
    assert s.tau_steps / 10 == pytest.approx((1 + phi) / (1 - phi), rel=0.1)
    assert s.n_effective == pytest.approx(len(x) / 9, rel=0.1) and s.trusted
    assert s.stderr == pytest.approx(x.std() * np.sqrt(9 / len(x)), rel=0.1)


def test_stderr_matches_the_spread_of_independent_chains():
    """The error bar of one chain predicts how much the means of independent chains scatter (naive sigma/sqrt(N)
    would be 3x too small here)."""
    rng = np.random.default_rng(1)
    chains = ar1(0.8, 2000, rng, chains=400)
    stats = [series_stats(c) for c in chains]
    spread = np.std([s.mean for s in stats])
    predicted = np.sqrt(np.mean([s.stderr ** 2 for s in stats]))
    assert predicted == pytest.approx(spread, rel=0.15)
    naive = np.mean([c.std() / np.sqrt(len(c)) for c in chains])
    assert naive < 0.5 * spread


def test_pooled_chains_give_tau_and_count_every_sample():
    chains = ar1(0.8, 5000, np.random.default_rng(4), chains=8)
    s = series_stats(chains, stride_steps=2)
    assert s.tau_steps / 2 == pytest.approx(9.0, rel=0.1)
    assert s.n_samples == chains.size and s.mean == pytest.approx(chains.mean())
    assert s.stderr == pytest.approx(chains.std() * np.sqrt(s.tau_steps / 2 / chains.size))


def test_white_noise_has_tau_one_and_short_chains_are_flagged():
    x = np.random.default_rng(2).normal(size=5000)
    s = series_stats(x)
    assert s.tau_steps == pytest.approx(1.0, abs=0.2) and s.trusted
    short = series_stats(ar1(0.95, 400, np.random.default_rng(3))[0])
    assert short.n_effective < MIN_TAUS_FOR_TRUST and not short.trusted


def test_constant_and_bad_series():
    s = series_stats(np.full(10, -5.2))
    assert s.mean == pytest.approx(-5.2) and (s.stderr, s.tau_steps) == (0.0, 1.0)
    with pytest.raises(HQCError, match="NaN or infinite"):
        series_stats([1.0, np.nan, 2.0])
    with pytest.raises(HQCError, match="at least 2 samples"):
        series_stats([1.0])
    with pytest.raises(HQCError, match="stride"):
        series_stats([1.0, 2.0], stride_steps=0)
    out = averages({"ok": [1.0, 2.0, 3.0], "unstable": [1.0, np.inf], "empty": []}, 5)
    assert out["ok"]["mean"] == 2.0 and out["ok"]["tau_steps"] >= 5 and out["unstable"] is None and out["empty"] is None


def test_batch_means_flag_the_error_bar_of_an_oscillating_npt_density():
    """The committed NPT MD run at 10 GPa (runs/density/npt/zbl_p10): the density oscillates with the barostat,
    emcee's window stops in a trough of the running sum, and batch means put the error bar 1.8x higher: flagged.
    Its E_pot, and AR(1) series whose tau the estimator gets right, are not flagged."""
    from hqc_qiskit.autocorr import SUSPECT_RATIO, error_bar_check
    from hqc_qiskit.runlog import read_rows
    from tests.conftest import ROOT

    rows = read_rows(ROOT / "runs" / "density" / "npt" / "zbl_p10" / "md_log.csv")
    tail = rows[len(rows) // 5:]
    series = {name: [r[name] for r in tail] for name in ("density_g_cm3", "E_pot_eV")}
    check = error_bar_check(series, averages(series, 20))
    assert check["density_g_cm3"]["suspect"] and check["density_g_cm3"]["ratio"] > SUSPECT_RATIO
    assert check["density_g_cm3"]["blocks"] == 10 and not check["E_pot_eV"]["suspect"]
    rng = np.random.default_rng(3)
    for phi in (0.0, 0.5, 0.9):
        x = {"x": ar1(phi, 20_000, rng)[0]}
        assert not error_bar_check(x, averages(x, 1))["x"]["suspect"], phi
    short = {"x": list(range(15))}
    assert error_bar_check(short, averages(short, 1)) == {}       # fewer than 2 samples per block: no opinion
