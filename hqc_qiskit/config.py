"""Typed run configuration: YAML in, validated with pydantic, saved resolved next to the results.

Relative paths in a YAML file are relative to that file's folder; paths given with ``--override``
are relative to the current directory. Unknown keys are errors (a typo must not be ignored).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError

PAPER_HIDDEN_IRREPS = "64x0e + 64x0o + 64x1o + 64x1e + 8x2o + 8x2e"


class _Strict(BaseModel):
    # unknown keys are errors; so are NaN and infinities in any number (pydantic would accept them)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class DataConfig(_Strict):
    """Either ``train``/``val``/``test`` files, or one ``file`` split with ``split`` sizes and ``split_seed``."""

    file: Optional[Path] = None
    split: Optional[list[int]] = None
    split_seed: int = 0
    train: Optional[Path] = None
    val: Optional[Path] = None
    test: Optional[Path] = None
    energy_key: str = "energy"
    forces_key: str = "forces"
    stress_key: str = "stress"
    max_train: Optional[int] = Field(None, ge=1, description="use only the first N training frames (quick runs); "
                                     "null: all")
    max_val: Optional[int] = Field(None, ge=1, description="use only the first N validation frames; null: all")

    @model_validator(mode="after")
    def _one_source(self):
        if self.file is None and self.train is None:
            raise ValueError("give either data.file (with data.split) or data.train/data.val")
        if self.file is not None and self.train is not None:
            raise ValueError("give data.file or data.train, not both")
        if self.file is not None and (self.split is None or len(self.split) not in (2, 3)):
            raise ValueError("data.file needs data.split: [n_train, n_val] or [n_train, n_val, n_test]")
        return self


class ClassicalReadoutConfig(_Strict):
    kind: Literal["classical"] = "classical"
    hidden: int = Field(32, ge=1)


class QuantumReadoutConfig(_Strict):
    kind: Literal["quantum"] = "quantum"
    ansatz: str = "cz"
    engine: Literal["exact", "qnn", "noisy"] = Field(
        "exact", description="'exact' (the training engine), 'qnn' (EstimatorQNN + TorchConnector, same numbers, no "
        "force training) or 'noisy' (the noisy expectation values of noise_backend: noise-aware training, of the "
        "classical part, and of the circuit weights with train_circuit_weights, docs/hardware.md)")
    n_qubits: int = Field(8, ge=1)
    n_layers: int = Field(3, ge=0)
    angle_scale: float = Field(1.0, description="embedding angle = angle_scale * Linear(scalars); 1 is the paper's model")
    noise_backend: Optional[str] = Field(None, description="engine 'noisy' only: aer-noise:<model>[@<profile>]")
    noise_scale: float = Field(1.0, gt=0, description="engine 'noisy' only: factor on the noise model's error rates")
    train_circuit_weights: bool = Field(
        False, description="engine 'noisy' only: train the circuit weights through the noise too (exact gradients "
        "from the observables evolved backwards, quantum/heisenberg.py); default False keeps them as trained")

    @model_validator(mode="after")
    def _noise_only_for_noisy(self):
        if self.engine == "noisy" and not (self.noise_backend or "").startswith("aer-noise:"):
            raise ValueError("engine 'noisy' needs noise_backend: aer-noise:<model>[@<profile>] "
                             f"(got {self.noise_backend!r})")
        if self.engine != "noisy" and (self.noise_backend is not None or self.noise_scale != 1.0
                                       or self.train_circuit_weights):
            raise ValueError(f"noise_backend, noise_scale and train_circuit_weights are for engine 'noisy', not "
                             f"{self.engine!r} (engines 'exact' and 'qnn' always train the circuit weights)")
        return self

    @field_validator("ansatz")
    @classmethod
    def _known(cls, v):
        from .quantum.circuits import ansatz_names

        if v not in ansatz_names():
            raise ValueError(f"unknown ansatz {v!r}; choose one of {ansatz_names()}")
        return v


class ModelConfig(_Strict):
    species: list[str] = ["Si"]
    cutoff: float = Field(4.5, gt=0, description="Å")
    n_radial: int = Field(8, ge=1)
    envelope_p: int = Field(2, ge=1)
    lmax: int = Field(3, ge=0)
    embedding_dim: int = Field(64, ge=1)
    hidden_irreps: str = PAPER_HIDDEN_IRREPS
    n_layers: int = Field(5, ge=1)
    radial_mlp: list[Annotated[int, Field(ge=1)]] = [64, 64]
    avg_num_neighbors: float = Field(25.0, gt=0)
    reference_energies: Union[dict[str, float], Literal["fit", "fit_residual"]] = Field(
        "fit", description="eV per atom of each element, 'fit' (least squares on the training set) or "
        "'fit_residual' (least squares on the training labels minus the untrained model's energies, so training "
        "starts without an energy offset)"
    )
    readout: Union[ClassicalReadoutConfig, QuantumReadoutConfig] = Field(default_factory=ClassicalReadoutConfig, discriminator="kind")
    dtype: Literal["float32", "float64"] = "float32"
    tensor_product: Literal["grouped", "split", "e3nn"] = Field(
        "grouped",
        description="implementation of the interaction layer (all give the same numbers): 'grouped' (fastest on "
        "CPU: one batched product per input block of the edge tensor product, fused linears), 'split' (one product "
        "per path, the session-3 default) or 'e3nn' (e3nn's own modules, the reference)",
    )

    pair_repulsion: Optional[Literal["zbl"]] = Field(
        None, description="'zbl': add the ZBL screened nuclear repulsion, switched off smoothly at the sum of the "
        "covalent radii (2.22 Å for Si), to the learned energy, so that close pairs the data never showed are "
        "repelled (model/pair_repulsion.py); null: none, the paper's model")

    @model_validator(mode="after")
    def _pair_repulsion_within_cutoff(self):
        if self.pair_repulsion == "zbl":
            from ase.data import atomic_numbers, covalent_radii

            unknown = [s for s in self.species if s not in atomic_numbers]
            if unknown:
                raise ValueError(f"pair_repulsion 'zbl' needs element symbols as species; unknown: {unknown}")
            reach = 2 * max(covalent_radii[atomic_numbers[s]] for s in self.species)
            if reach > self.cutoff:
                raise ValueError(f"pair_repulsion 'zbl' reaches {reach:.2f} Å (twice the largest covalent radius), "
                                 f"beyond the cutoff {self.cutoff} Å; raise model.cutoff")
        return self

    @field_validator("hidden_irreps")
    @classmethod
    def _irreps(cls, v):
        from e3nn import o3

        try:
            irreps = o3.Irreps(v)
        except Exception as exc:
            raise ValueError(f"cannot parse irreps {v!r}: {exc}") from None
        if not any(ir == o3.Irrep("0e") for _, ir in irreps):
            raise ValueError("hidden_irreps needs scalars (0e) for the readouts")
        return v


class SchedulerConfig(_Strict):
    factor: float = Field(0.9, gt=0, lt=1)
    patience: int = Field(50, ge=0)


class TrainConfig(_Strict):
    batch_size: int = Field(20, ge=1)
    micro_batch_size: Optional[int] = Field(
        None, ge=1, description="structures per forward/backward pass: each optimizer batch is trained in passes of "
        "this many and their gradients added up (the same step as one pass, up to float rounding), and validation "
        "predicts in batches of this size. Less memory, and faster on a CPU for wide models (the paper's config: "
        "about 2x at 4; docs/performance.md section 11); null: the whole batch in one pass")
    max_epochs: int = Field(100, ge=1)
    lr: float = Field(0.01, gt=0)
    amsgrad: bool = True
    weight_decay: float = Field(0.005, ge=0)
    decoupled_weight_decay: bool = Field(
        False, description="false: L2 added to the gradient before Adam's scaling (the paper's code); "
        "true: decay applied to the weights directly (AdamW)")
    energy_weight: float = Field(1.0, ge=0)
    forces_weight: float = Field(100.0, ge=0)
    stress_weight: float = Field(0.0, ge=0, description="weight of MSE(stress components) in (eV/Å^3)^2, over the "
                                 "frames that carry a stress label (at least one training frame must)")
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    ema_decay: Optional[float] = Field(0.99, ge=0, lt=1, description="null disables the EMA")
    ema_warmup: bool = Field(False, description="EMA decay min(ema_decay, (1 + n) / (10 + n)) after n updates "
                             "(torch_ema's use_num_updates, as MACE and NequIP): the EMA follows the model early on")
    warmup_steps: int = Field(0, ge=0, description="learning rate rises linearly to lr over this many steps "
                              "(Adam's first steps move every weight by about lr and throw the energy off by eV/atom)")
    grad_clip_norm: Optional[float] = Field(
        None, gt=0, description="clip the global gradient norm to this before each step "
        "(torch.nn.utils.clip_grad_norm_; MACE clips at 10); null: no clipping, as in the paper")
    early_stopping_patience: Optional[int] = Field(None, ge=1, description="epochs without val improvement")
    max_minutes: Optional[float] = Field(None, gt=0, description="stop (checkpointed, resumable) after this wall time")
    device: str = "auto"
    eval_every: int = Field(1, ge=1)
    plot_every_minutes: Optional[float] = Field(
        5.0, ge=0, description="redraw learning_curve.png during training at most this often (0: every epoch; "
        "null: only at the end)")
    num_threads: Optional[int] = Field(None, ge=1)
    flush_denormals: bool = Field(
        True, description="on a CPU, treat subnormal floats (below 1.2e-38 in float32) as zero for the whole process: "
        "trained models produce them in their backward pass, and x86 CPUs are many times slower on them "
        "(benchmarks/denormals.py); false: IEEE subnormals")
    init_from: Optional[Path] = Field(
        None, description="start from the weights of this run directory's best model (or a .pt checkpoint) instead "
        "of a random initialisation; same architecture; reference energies are kept (fine-tuning, noise-aware "
        "training)")

    @model_validator(mode="after")
    def _some_loss(self):
        if self.energy_weight == 0 and self.forces_weight == 0 and self.stress_weight == 0:
            raise ValueError("energy_weight, forces_weight and stress_weight are all 0: nothing to train on")
        return self

    @property
    def pass_size(self) -> int:
        """Structures per forward/backward pass (and per validation/test prediction batch): micro_batch_size, at
        most batch_size; batch_size when it is unset."""
        return min(self.micro_batch_size or self.batch_size, self.batch_size)


class RunConfig(_Strict):
    name: str
    seed: int = 0
    output_dir: Optional[Path] = None
    data: DataConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)

    @model_validator(mode="after")
    def _noisy_needs_source(self):
        if getattr(self.model.readout, "engine", None) == "noisy" and self.train.init_from is None:
            raise ValueError("model.readout.engine 'noisy' keeps the circuit weights of a trained model: set "
                             "train.init_from to that run (or use `hqc-qiskit noise-aware RUN --backend ...`)")
        return self

    def run_dir(self) -> Path:
        return self.output_dir if self.output_dir is not None else Path("runs") / self.name


_PATH_KEYS = (("data", "file"), ("data", "train"), ("data", "val"), ("data", "test"), ("output_dir",), ("train", "init_from"))


def _set_dotted(tree: dict, dotted: str, value) -> None:
    node = tree
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {part!r} is not a section")
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, object]:
    """``key.sub=value`` with the value read as YAML (``3``, ``0.1``, ``[1, 2]``, ``null``, ``cz``)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: cannot read value ({exc})") from None
    return key.strip(), value


def _map_paths(raw: dict, fn) -> None:
    """Replace each path field of the raw config dict (those in _PATH_KEYS that are set) by fn(value)."""
    for keys in _PATH_KEYS:
        node = raw
        for k in keys[:-1]:
            node = node.get(k) or {}
        if node.get(keys[-1]) is not None:
            node[keys[-1]] = fn(node[keys[-1]])


def load_config(path: str | Path | None = None, overrides: list[str] = (), raw: dict | None = None) -> RunConfig:
    """Read, resolve paths, apply overrides, validate. Errors name the file and the bad key."""
    if raw is None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"{path}: config file does not exist")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
        base = path.parent
        raw.setdefault("output_dir", str(Path(raw.get("name", path.stem))))
        _map_paths(raw, lambda value: str(base / value))
    for text in overrides:
        key, value = parse_override(text)
        _set_dotted(raw, key, value)
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(f"{path or 'config'}: invalid configuration\n  " + "\n  ".join(lines)) from None


def save_config(config: RunConfig, path: str | Path) -> None:
    """Write ``config`` as YAML that ``load_config(path)`` reads back to the same files: relative paths
    are rewritten relative to ``path``'s folder (they are relative to the current directory in memory)."""
    path = Path(path)
    raw = config.model_dump(mode="json")
    _map_paths(raw, lambda value: value if Path(value).is_absolute() else os.path.relpath(value, path.parent))
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
