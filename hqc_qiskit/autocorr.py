"""Means of correlated time series (MD and MC logs) with honest error bars.

Successive MD frames and MC states are correlated, so the naive standard error sigma/sqrt(N) of a mean is too
small by sqrt(tau), where tau is the integrated autocorrelation time (var(mean) = sigma^2 tau / N). tau comes from
emcee's estimator (Sokal's automatic window on the FFT autocorrelation), the usual choice for MCMC chains; this
module only converts between samples and steps and flags chains too short to trust it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from emcee.autocorr import integrated_time

from .errors import HQCError

# emcee's rule of thumb: tau is trustworthy from about 50 autocorrelation times of chain
MIN_TAUS_FOR_TRUST = 50.0


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
