# Environment for running rlt_ros from .venv without a ROS install (sourced by the Makefile).
# The venv is the ament prefix of the PyPI ROS wheels; Fast DDS gets a shared-memory segment large
# enough for camera images (the default ~512 KB segment drops 640x480 frames).
_rlt_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_rlt_venv="${VENV:-.venv}"; case "$_rlt_venv" in /*) ;; *) _rlt_venv="$_rlt_root/$_rlt_venv";; esac
export AMENT_PREFIX_PATH="${AMENT_PREFIX_PATH:-$_rlt_venv}"
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$_rlt_root/config/fastdds_shm.xml}"
export MUJOCO_GL="${MUJOCO_GL:-egl}"
export PYTHONPATH="$_rlt_root${PYTHONPATH:+:$PYTHONPATH}"
unset _rlt_root _rlt_venv
