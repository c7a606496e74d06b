"""Make ``lerobot`` 0.4.4's policy code importable next to torch 2.13 (CPU) without its dataset stack.

Why: lerobot 0.4.4 pins torch<2.11, so rlt_ros installs it with ``pip install --no-deps`` (see
requirements/lerobot.txt) and only the packages its policies need at run time. But importing any
policy module pulls, at module level, packages used only by LeRobot's dataset/recording tools:
``lerobot.configs.policies -> lerobot.optim -> lerobot.datasets.utils`` imports datasets, pandas,
pyarrow, torchvision, ...; and transformers' SmolVLM processor module imports torchvision. PyPI's
torchvision wheels are CUDA builds whose compiled ops fail to register on a CPU-only torch, so
torchvision cannot simply be installed.

What: :func:`prepare_lerobot_import` puts a placeholder module into ``sys.modules`` for each of the
packages below that is missing (or, for torchvision, fails to import). A placeholder satisfies
what lerobot does with these packages at import time (``from datasets import Dataset``, type
annotations, decorators, ``pa.struct(...)`` in class bodies); its values are inert placeholder
classes, so a code path that really needs the package fails at its first real operation. The
inference path used by rlt_ros (SmolVLA/pi0 ``embed_prefix``, backbone forward, denoising, processor
pipelines) is covered by test/test_vla_lerobot.py. Where the real package imports fine (a full
LeRobot install on a GPU machine), nothing is replaced.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types

# packages that lerobot 0.4.4 / transformers import at module level but that SmolVLA/pi0 inference never calls
OPTIONAL_MODULES: tuple[str, ...] = (
    "torchvision", "datasets", "pandas", "pyarrow", "av", "diffusers", "gymnasium", "imageio",
    "serial", "deepdiff", "accelerate",
)

_stubbed: list[str] = []


class _StubMeta(type):
    def __getattr__(cls, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _StubMeta(name, (), {"_pkg": cls._pkg})

    def __call__(cls, *args, **kwargs):
        if len(args) == 1 and not kwargs and callable(args[0]) and not isinstance(args[0], _StubMeta):
            return args[0]  # used as a decorator at import time
        # lerobot also calls placeholders at import time (e.g. pyarrow.struct(...) in a class body):
        # return another placeholder; it is not a tensor/array, so real use fails at the first operation
        return _StubMeta(f"{cls.__name__}()", (), {"_pkg": cls._pkg})

    def __or__(cls, other):
        return cls

    def __ror__(cls, other):
        return cls

    def __getitem__(cls, item):
        return cls

    def __instancecheck__(cls, obj) -> bool:
        return False

    def __subclasscheck__(cls, sub) -> bool:
        return False


class _StubModule(types.ModuleType):
    def __init__(self, name: str, pkg: str):
        super().__init__(name)
        self.__path__ = []  # a package: submodules resolve through the finder below
        self.__spec__ = importlib.machinery.ModuleSpec(name, _FINDER, is_package=True)
        self._pkg = pkg

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _StubMeta(name, (), {"_pkg": self._pkg})


class _StubFinder:
    """Resolves ``import <stubbed>.<anything>`` to further placeholder modules."""

    roots: set[str] = set()

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.roots:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        return _StubModule(spec.name, spec.name.split(".")[0])

    def exec_module(self, module):
        return None


_FINDER = _StubFinder()


def _importable(name: str) -> bool:
    if importlib.util.find_spec(name) is None:
        return False
    if name != "torchvision":
        return True
    try:  # installed but built for another torch/CUDA: fails at import
        importlib.import_module(name)
        return True
    except Exception:  # noqa: BLE001 - any import failure means: not usable here
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
        return False


def prepare_lerobot_import() -> list[str]:
    """Install placeholders for missing optional packages (once); returns the names stubbed."""
    if _FINDER not in sys.meta_path:
        for name in OPTIONAL_MODULES:
            if name in sys.modules or _importable(name):
                continue
            _FINDER.roots.add(name)
            sys.modules[name] = _StubModule(name, name)
            _stubbed.append(name)
        sys.meta_path.append(_FINDER)
    return list(_stubbed)
