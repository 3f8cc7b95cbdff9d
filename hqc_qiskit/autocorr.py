"""Means of correlated time series (MD and MC logs) with honest error bars.

Successive MD frames and MC states are correlated, so the naive standard error sigma/sqrt(N) of a mean is too
small by sqrt(tau), where tau is the integrated autocorrelation time (var(mean) = sigma^2 tau / N). tau comes from
emcee's estimator (Sokal's automatic window on the FFT autocorrelation), the usual choice for MCMC chains; this
module only converts between samples and steps and flags chains too short to trust it. Batch means over contiguous
blocks give a second opinion (``error_bar_check``): the automatic window can stop early on an oscillating
autocorrelation function (the volume under a barostat), and then the error bar is too small.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import HQCError

# emcee's rule of thumb: tau is trustworthy from about 50 autocorrelation times of chain
MIN_TAUS_FOR_TRUST = 50.0
# the second opinion: batch means over this many blocks; an error bar below 1 / SUSPECT_RATIO of theirs is suspect
# (with 10 blocks the batch stderr itself scatters by about 24%, so an honest error bar is flagged about 2% of the time)
BATCH_BLOCKS = 10
SUSPECT_RATIO = 1.5


@dataclass(frozen=True)
class SeriesStats:
    """Mean of a correlated series with its standard error; tau and lengths in steps of the simulation."""

    mean: float
    stderr: float  # sigma * sqrt(tau / n): the standard error of the mean
    std: float  # standard deviation of the samples
    tau_steps: float  # integrated autocorrelation time in simulation steps (>= the sampling stride)
    n_samples: int
    n_effective: float  # independent samples the series is worth, n * stride / tau = chain length / tau
    trusted: bool  # n_effective >= MIN_TAUS_FOR_TRUST; below, tau (and the stderr) are rough

    def as_dict(self) -> dict:
        return asdict(self)


def series_stats(values, stride_steps: float = 1.0) -> SeriesStats:
    """Statistics of ``values`` (N,) sampled every ``stride_steps`` simulation steps (discard equilibration first),
    or of independent chains of the same process, (C, N): tau from their averaged autocorrelation function, the
    mean and its error over all C x N samples (n_samples and n_effective count all chains)."""
    x = np.asarray(values, float)
    if x.ndim not in (1, 2) or x.shape[-1] < 2 or x.size == 0:
        raise HQCError(f"a mean with an error bar needs a series (N,) or chains (C, N) of at least 2 samples; "
                       f"got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise HQCError("the series has NaN or infinite values; cannot average it")
    if not stride_steps > 0:
        raise HQCError(f"the sampling stride must be > 0 steps; got {stride_steps}")
    n, std = x.size, float(x.std())
    if np.ptp(x) == 0.0:  # a constant series (a collapsed model, a frozen chain): no fluctuation to correlate
        std, tau_samples = 0.0, 1.0   # (x.std() can be 1e-16 from rounding the mean)
    else:
        # imported here: emcee brings scipy.stats (0.55 s), which every hqc-qiskit command paid at start (cli_sim
        # reads MIN_TAUS_FOR_TRUST from this module)
        from emcee.autocorr import integrated_time

        # emcee wants (steps, chains); tol=0: the length check is ours (trusted), not a warning on the log
        tau_samples = max(1.0, float(integrated_time(x.reshape(-1, x.shape[-1]).T, tol=0)[0]))
    return SeriesStats(mean=float(x.mean()), stderr=std * float(np.sqrt(tau_samples / n)), std=std,
                       tau_steps=tau_samples * stride_steps, n_samples=n, n_effective=n / tau_samples,
                       trusted=n / tau_samples >= MIN_TAUS_FOR_TRUST)


def averages(series: dict[str, list[float]], stride_steps: float) -> dict[str, dict | None]:
    """``series_stats`` of each named series for a run summary; None for one too short or not finite (an unstable
    run's last rows), so that writing a summary never fails on its statistics."""
    out: dict[str, dict | None] = {}
    for name, values in series.items():
        try:
            out[name] = series_stats(values, stride_steps).as_dict()
        except HQCError:   # series_stats' own checks decide what cannot be averaged
            out[name] = None
    return out


def block_average(values, n_blocks: int = 5) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean over axis 0 of a time series (F, ...) and its standard error from contiguous blocks
    (fewer blocks if fewer frames; NaN error with one). Returns (mean, stderr, blocks used)."""
    values = np.asarray(values, float)
    n_blocks = max(1, min(n_blocks, len(values)))
    blocks = np.stack([b.mean(axis=0) for b in np.array_split(values, n_blocks)])
    err = blocks.std(axis=0, ddof=1) / np.sqrt(n_blocks) if n_blocks > 1 else np.full(values.shape[1:], np.nan)
    return values.mean(axis=0), err, n_blocks


def error_bar_check(series: dict[str, list[float]], stats: dict[str, dict | None], n_blocks: int = BATCH_BLOCKS) -> dict:
    """Batch means as a second opinion on each average of ``averages(series, ...)`` (``stats``): {name: {blocks,
    stderr (batch means), ratio (that / the autocorrelation stderr), suspect (ratio > SUSPECT_RATIO)}}. A series with
    fewer than 2 x n_blocks samples, without stats or with a zero error bar is left out. Blocks shorter than the
    correlations make the batch stderr too small too, so a ratio below 1 says nothing; above SUSPECT_RATIO the
    autocorrelation estimate missed a correlation longer than its window (docs/simulation.md "Error bars of
    averages")."""
    out = {}
    for name, values in series.items():
        st = stats.get(name)
        if st is None or not st["stderr"] > 0 or len(values) < 2 * n_blocks:
            continue
        _, err, used = block_average(values, n_blocks)
        ratio = float(err) / st["stderr"]
        out[name] = {"blocks": used, "stderr": float(err), "ratio": ratio, "suspect": ratio > SUSPECT_RATIO}
    return out
