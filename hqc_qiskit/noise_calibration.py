"""Fit a noise snapshot's scale to a device: how far its error rates have drifted since the snapshot.

A noise-aware model (``noise_aware``) is trained for one noise model, an ``aer-noise:<snapshot>@<profile>``
backend at ``noise_scale``; devices drift between calibrations. Here the model's own readout circuits, at
the inputs it produces on a structure, are measured on the device (any backend: ``ibm_<device>``,
``fake_<device>``, or an ``aer-noise:`` simulation standing in for one) and compared with the snapshot's
exact expectation values at scale s (every error rate times s, as ``noise_scale``):

    chi2(s) = sum_k r_k(s)^T (Sigma_k / S_k)^+ r_k(s),    r_k(s) = <Z>_measured,k - <Z>_snapshot,k(s)

with Sigma_k the measured per-shot covariance of circuit k's n values and S_k its shots (pseudo-inverse: a
qubit that always reads the same gives no information, not a division by zero). The fit minimises chi2 over
s (scipy's bounded Brent search after a scan that brackets the minimum), its standard error follows from the
curvature (chi2(s) - chi2_min = 1), and chi2_min against its degrees of freedom (p-value) says whether a
scaled snapshot describes the device at all: a large reduced chi2 means the device's noise differs in kind
(other qubits, other relative rates), not just in size, and a new snapshot is needed rather than a scale
(``hqc-qiskit noise-snapshot``).

Why hand-written (project science): the likelihood and the model family are this project's; the minimiser
and the chi2 distribution are scipy's.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .errors import ConfigError

#: noise scales scanned before the bounded minimisation (also the curve in the plot)
SCAN = np.linspace(0.0, 2.5, 11)
#: where the scan continues when its minimum is at its upper end
EXTENDED_SCAN = np.arange(3.0, 10.01, 0.5)
REPORT = "noise_calibration.json"
REPORT_PLOT = "noise_calibration.png"


def calibration_batch(model, frames: list, per_readout: int, rng: np.random.Generator):
    """The model's readout circuits on ``frames`` (its own inputs and weights), ``per_readout`` of each readout
    drawn at random without replacement (all when fewer): a :class:`~.quantum.backends.CircuitBatch`."""
    from .quantum.backends import CircuitBatch
    from .quantum.estimate import readout_problem

    if per_readout < 1:
        raise ConfigError(f"circuits per readout must be >= 1, got {per_readout}")
    problems = [readout_problem(model, atoms).batch for atoms in frames]
    groups = []
    for g in range(len(problems[0].groups)):
        x = np.concatenate([p.groups[g][0] for p in problems])
        keep = np.sort(rng.choice(len(x), size=min(per_readout, len(x)), replace=False))
        groups.append((x[keep], problems[0].groups[g][1]))
    first = problems[0]
    return CircuitBatch(first.ansatz, first.n_qubits, first.n_layers, groups)


def snapshot_expectations(noise_model: str, batch, scale: float) -> np.ndarray:
    """Exact noisy <Z_q> (K, n) of ``batch`` on the ``aer-noise:`` model ``noise_model`` at ``scale`` (no shots)."""
    from .quantum.backends import SimulatorBackend, make_backend
    from .quantum.simulate import z_signs

    backend = make_backend(noise_model, scale=scale)
    if not isinstance(backend, SimulatorBackend) or backend.spec is None:
        raise ConfigError(f"the noise model to calibrate must be an 'aer-noise:<model>[@<profile>]' backend, "
                          f"not {noise_model!r}")
    return backend.distributions(batch) @ z_signs(batch.n_qubits)


def _precisions(samples) -> tuple[np.ndarray, int]:
    """Per-circuit inverse covariance of the measured means (K, n, n) (pseudo-inverse) and the summed ranks."""
    if not np.all(np.isfinite(samples.shots)):
        raise ConfigError("calibration needs measured values with shots (a finite number per circuit); "
                          "the backend returned exact values")
    cov = samples.cov / samples.shots[:, None, None]
    scale = np.max(np.abs(cov), axis=(1, 2), keepdims=True)
    rcond = 1e-10
    inverse = np.linalg.pinv(cov, rcond=rcond, hermitian=True)
    ranks = np.linalg.matrix_rank(cov / np.where(scale > 0, scale, 1), tol=rcond, hermitian=True)
    return inverse, int(ranks.sum())


def chi2(measured: np.ndarray, precision: np.ndarray, predicted: np.ndarray) -> float:
    """sum_k r_k^T P_k r_k for measured and predicted means (K, n) and precisions P (K, n, n)."""
    r = measured - predicted
    return float(np.einsum("kq,kqr,kr->", r, precision, r))


def fit_scale(samples, batch, noise_model: str, scan: np.ndarray = SCAN) -> dict:
    """Least-squares noise scale of ``noise_model`` for the measured ``samples`` (:class:`ZSamples` of ``batch``).

    Returns the fitted scale and its standard error, chi2 at the fit and at scale 1 (the snapshot as it is),
    degrees of freedom, reduced chi2 and p-value, the scan (scale, chi2) and the RMS residuals (fit / shot
    noise). ``scan``: increasing scales, the first >= 0, continued by ``EXTENDED_SCAN`` when its minimum is at
    its upper end. Raises ConfigError when the minimum is at the end of that too (a device more than 10x noisier
    than the snapshot, or another noise model)."""
    from scipy import optimize, stats

    precision, rank = _precisions(samples)
    simulated: dict[float, np.ndarray] = {}   # each scale simulated once: for chi2 and for the report

    def expectations(s: float) -> np.ndarray:
        s = float(s)
        if s not in simulated:
            simulated[s] = snapshot_expectations(noise_model, batch, s)
        return simulated[s]

    def objective(s: float) -> float:
        return chi2(samples.mean, precision, expectations(s))

    values = np.array([objective(s) for s in scan])
    i = int(np.argmin(values))
    if i == len(scan) - 1 and scan[-1] < EXTENDED_SCAN[-1]:   # a strongly drifted device: look further out
        more = EXTENDED_SCAN[EXTENDED_SCAN > scan[-1]]
        scan, values = np.concatenate([scan, more]), np.concatenate([values, [objective(s) for s in more]])
        i = int(np.argmin(values))
    if i == len(scan) - 1:
        raise ConfigError(f"the best noise scale of {noise_model} is at the upper end of the scan ({scan[-1]:g}): the "
                          "device is much noisier than the snapshot; is it the right noise model?")
    left, right = scan[max(i - 1, 0)], scan[i + 1]
    best = optimize.minimize_scalar(objective, bounds=(left, right), method="bounded", options={"xatol": 1e-4})
    s = float(best.x)
    h = max(1e-3, 0.02 * s)
    lower = max(s - h, 0.0)
    curvature = (objective(lower + 2 * h) - 2 * objective(lower + h) + objective(lower)) / h**2
    stderr = float(np.sqrt(2.0 / curvature)) if curvature > 0 else float("inf")
    chi2_min = objective(s)
    dof = rank - 1
    predicted = expectations(s)
    shot_sd = np.sqrt(np.diagonal(samples.cov, axis1=1, axis2=2) / samples.shots[:, None])
    return {"noise_model": noise_model, "fitted_scale": s, "stderr": stderr, "chi2": chi2_min,
            "chi2_at_scale_1": objective(1.0), "dof": dof, "reduced_chi2": chi2_min / dof,
            "p_value": float(stats.chi2.sf(chi2_min, dof)),
            "rms_residual": float(np.sqrt(np.mean((samples.mean - predicted) ** 2))),
            "rms_shot_noise": float(np.sqrt(np.mean(shot_sd**2))),
            "scan": [[float(a), float(b)] for a, b in zip(scan, values)], "measured": samples.mean.tolist(),
            "predicted": predicted.tolist(), "predicted_at_scale_1": expectations(1.0).tolist()}


def calibrate(model, frames: list, backend, noise_model: str, shots: int, per_readout: int = 32,
              rng: np.random.Generator | None = None) -> dict:
    """Measure ``per_readout`` circuits of each readout of ``model`` on ``frames`` with ``shots`` shots each on
    ``backend`` (the device) and fit the scale of ``noise_model`` to them (:func:`fit_scale`)."""
    rng = rng if rng is not None else np.random.default_rng()
    if shots < 2:
        raise ConfigError(f"--shots must be >= 2 (each circuit's covariance comes from its own shots), got {shots}")
    mitigation = getattr(backend, "mitigation", None)
    if mitigation is not None and (mitigation.rem or mitigation.zne_scale_factors):
        raise ConfigError(f"calibration compares the raw device with the noise model; run it without mitigation "
                          f"(got {mitigation.label})")
    batch = calibration_batch(model, frames, per_readout, rng)
    start = time.time()
    samples = backend.run(batch, np.full(len(batch), float(shots)), rng)
    measured_s = time.time() - start
    out = fit_scale(samples, batch, noise_model)
    scale = getattr(backend, "scale", None) if getattr(backend, "spec", None) is not None else None
    out.update(backend=backend.name, backend_noise_scale=scale, backend_profile=getattr(backend, "profile", None),
               circuits_per_readout=per_readout, circuits=len(batch), shots_per_circuit=shots,
               total_shots=shots * len(batch), frames=len(frames), measure_seconds=measured_s, fit_seconds=time.time() - start - measured_s,
               qpu_seconds=samples.qpu_seconds)
    return out


def default_noise_model(model, noise_model: str | None) -> str:
    """``noise_model`` or, for a model with noisy readouts, the one it was trained for."""
    readout = model.config.readout
    if noise_model:
        return noise_model
    if readout.engine == "noisy":
        return readout.noise_backend
    raise ConfigError("this model's readouts are not noisy: name the snapshot to calibrate with --noise-model "
                      "aer-noise:<model>[@<profile>]")


def write_report(result: dict, out: str | Path) -> tuple[Path, Path]:
    """``out``/noise_calibration.json and .png (atomic JSON); returns both paths."""
    from .checkpoint import atomic_write_json
    from .plots import plot_noise_calibration

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(result, out / REPORT)
    plot_noise_calibration(result, out / REPORT_PLOT)
    return out / REPORT, out / REPORT_PLOT
