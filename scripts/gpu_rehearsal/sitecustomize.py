"""Import guard of scripts/gpu_rehearsal.sh: a module that this machine has but the lent GPU machine would not is
refused, as it would be there. The GPU machine has the standard library, the packages of its image (DEVICE: import
names of the package list in the tool library's device/KINDS.md, read 2026-11-17) and the wheels that
scripts/gpu_wheels.sh puts in .whl/ (their top-level modules, read from the wheels' RECORD files)."""

import importlib.machinery
import os
import site
import sys
import zipfile

DEVICE = set("""
absl accelerate aiofiles aiohttp attrs certifi charset_normalizer click cloudpickle colorama contourpy coverage cpuinfo
cupy cycler cython Cython dateutil einops execnet filelock fontTools fsspec functorch google grpc h5py huggingface_hub
hypothesis idna imageio iniconfig jax jaxlib jinja2 joblib kiwisolver lightning llvmlite markdown markdown_it
markupsafe matplotlib mdurl mpl_toolkits mpmath nanobind networkx numba numpy onnx onnxruntime opt_einsum
opt_einsum_fx packaging pandas PIL pip pkg_resources pluggy protobuf psutil py pyarrow pybind11 pygments pyparsing
pytest pytest_benchmark pytest_cov pytest_mock pytest_timeout pytorch_lightning regex requests rich safetensors
scipy seaborn setuptools shellingham six skimage sklearn sortedcontainers statsmodels sympy tabulate tensorboard
threadpoolctl tokenizers torch torch_geometric torchaudio torchgen torchmetrics torchvision tqdm transformers triton
typer typing_extensions urllib3 wheel xarray xdist yaml zipp annotated_doc _pytest _distutils_hack distutils
""".split())
OURS = {"hqc_qiskit", "tests", "conftest", "_evidence", "sitecustomize"}


def _wheel_modules(folder: str) -> set[str]:
    names = set()
    for wheel in os.listdir(folder) if os.path.isdir(folder) else []:
        if wheel.endswith(".whl"):
            with zipfile.ZipFile(os.path.join(folder, wheel)) as zf:
                for entry in zf.namelist():
                    top = entry.split("/")[0]
                    if not top.endswith((".dist-info", ".data")):
                        names.add(top[:-3] if top.endswith(".py") else top.split(".")[0])
    return names


def _wheels() -> set[str]:
    """The wheels' modules: HQC_GPU_WHEEL_NAMES (their distribution names, for the test that has no .whl/; each of
    ours imports under its name with '-' as '_'), else the wheels in HQC_GPU_WHEELS (default .whl)."""
    if "HQC_GPU_WHEEL_NAMES" in os.environ:
        return {name.lower().replace("-", "_") for name in os.environ["HQC_GPU_WHEEL_NAMES"].split()}
    return _wheel_modules(os.environ.get("HQC_GPU_WHEELS", ".whl"))


ALLOWED = DEVICE | OURS | set(sys.stdlib_module_names) | _wheels()


SITE = tuple(site.getsitepackages())


def _installed_here(top: str) -> bool:
    """Whether ``top`` comes from this machine's installed packages (not the copied tree, not nowhere)."""
    spec = importlib.machinery.PathFinder.find_spec(top)
    places = [spec.origin or ""] + list(spec.submodule_search_locations or []) if spec else []
    return any(str(place).startswith(SITE) for place in places)


class _OnlyWhatTheGPUMachineHas:
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        # the tree's own modules (benchmarks' _common, ...) travel; one found nowhere is left to the normal
        # "not found" (optional imports probe for those)
        if top not in ALLOWED and _installed_here(top):
            raise ModuleNotFoundError(f"{name} is not on the GPU machine: add its wheel to scripts/gpu_wheels.sh", name=name)
        return None


sys.meta_path.insert(0, _OnlyWhatTheGPUMachineHas())
