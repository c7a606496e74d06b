"""Configuration of the simulated precision-insertion arm (:class:`PegInsertionEnv`).

Units are in the field names or comments: metres and radians inside the simulator, millimetres and
degrees where a person sets a tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlt_ros.core.config_fields import ConfigMixin

START_MODES = ("home", "pre_critical")


@dataclass
class SimConfig(ConfigMixin):
    """Everything that defines the simulated task; one instance per environment."""

    control_hz: float = 50.0  # rate of actions (joint-position targets) and observations, Hz
    physics_timestep_s: float = 0.002  # MuJoCo integration step, s (must divide 1/control_hz)
    image_size: int = 64  # side of the square RGB camera images, pixels (e.g. 64 or 224)
    camera_names: tuple[str, ...] = ("base", "wrist")  # cameras rendered into obs["images"], subset of base/wrist
    socket_nominal_xy_m: tuple[float, float] = (0.40, 0.0)  # socket centre before randomisation, m (arm base frame)
    socket_xy_range_mm: float = 8.0  # socket x and y each drawn uniformly in +-this around nominal, mm
    socket_yaw_range_deg: float = 5.0  # socket yaw drawn uniformly in +-this, degrees
    clearance_mm: float = 0.4  # gap between plug and socket wall on each side, mm (<= 0.5)
    chamfer_mm: float = 1.5  # 45-degree chamfer at the socket mouth, mm (funnels small lateral errors)
    socket_depth_mm: float = 15.0  # depth of the socket cavity, mm
    plug_width_mm: float = 12.0  # plug cross-section, long side, mm (rectangular: yaw matters)
    plug_thickness_mm: float = 6.0  # plug cross-section, short side, mm
    plug_length_mm: float = 30.0  # plug length sticking out of the gripper, mm
    success_depth_mm: float = 12.0  # insertion depth counted as fully inserted, mm (< socket_depth_mm)
    friction: float = 0.3  # sliding friction coefficient between plug and socket
    critical_distance_mm: float = 15.0  # critical phase starts when the plug tip is this close to the socket mouth, mm (or on first contact)
    episode_time_s: float = 20.0  # time limit of one episode, s (truncated after it)
    start: str = "home"  # initial arm state: "home" (full task) or "pre_critical" (hovering just above the socket)
    initial_joint_noise_rad: float = 0.02  # uniform noise on the initial joint positions, rad
    pre_critical_height_mm: float = 25.0  # tip height above the socket mouth for start="pre_critical", mm
    pre_critical_xy_noise_mm: float = 3.0  # lateral error of the pre_critical start pose, +- mm
    rate_limit_targets: bool = True  # clip each new target to the previous one +- max joint velocity * control dt
    instruction: str = "insert the peg into the socket"  # language instruction of the task
    seed: int = 0  # seed of the first reset when reset() is called without a seed

    def __post_init__(self) -> None:
        if self.control_hz <= 0:
            raise ValueError(f"SimConfig.control_hz must be > 0, got {self.control_hz}")
        if self.physics_timestep_s <= 0:
            raise ValueError(f"SimConfig.physics_timestep_s must be > 0, got {self.physics_timestep_s}")
        ratio = 1.0 / (self.control_hz * self.physics_timestep_s)
        if ratio < 1 or abs(ratio - round(ratio)) > 1e-6:
            raise ValueError(
                f"SimConfig: 1/control_hz ({1 / self.control_hz} s) must be a whole multiple of "
                f"physics_timestep_s ({self.physics_timestep_s} s)"
            )
        if not 16 <= int(self.image_size) <= 1024:
            raise ValueError(f"SimConfig.image_size must be in [16, 1024] pixels, got {self.image_size}")
        self.camera_names = tuple(self.camera_names)
        bad = [c for c in self.camera_names if c not in ("base", "wrist")]
        if bad or not self.camera_names:
            raise ValueError(f"SimConfig.camera_names must be a non-empty subset of ('base', 'wrist'), got {self.camera_names}")
        self.socket_nominal_xy_m = tuple(float(v) for v in self.socket_nominal_xy_m)
        if len(self.socket_nominal_xy_m) != 2:
            raise ValueError(f"SimConfig.socket_nominal_xy_m needs 2 values (x, y), got {self.socket_nominal_xy_m}")
        if not 0.25 <= self.socket_nominal_xy_m[0] <= 0.48 or abs(self.socket_nominal_xy_m[1]) > 0.2:
            raise ValueError(f"SimConfig.socket_nominal_xy_m {self.socket_nominal_xy_m} is outside the arm's workspace (x 0.25..0.48, |y| <= 0.2)")
        if not 0 <= self.socket_xy_range_mm <= 30:
            raise ValueError(f"SimConfig.socket_xy_range_mm must be in [0, 30], got {self.socket_xy_range_mm}")
        if not 0 <= self.socket_yaw_range_deg <= 30:
            raise ValueError(f"SimConfig.socket_yaw_range_deg must be in [0, 30], got {self.socket_yaw_range_deg}")
        if not 0.05 <= self.clearance_mm <= 0.5:
            raise ValueError(f"SimConfig.clearance_mm must be in [0.05, 0.5] mm per side, got {self.clearance_mm}")
        if not 0 <= self.chamfer_mm <= 4:
            raise ValueError(f"SimConfig.chamfer_mm must be in [0, 4], got {self.chamfer_mm}")
        if not 5 <= self.socket_depth_mm <= 25:
            raise ValueError(f"SimConfig.socket_depth_mm must be in [5, 25], got {self.socket_depth_mm}")
        if not 0 < self.success_depth_mm < self.socket_depth_mm:
            raise ValueError(f"SimConfig.success_depth_mm must be in (0, socket_depth_mm={self.socket_depth_mm}), got {self.success_depth_mm}")
        if not (2 <= self.plug_thickness_mm <= self.plug_width_mm <= 30):
            raise ValueError("SimConfig: need 2 <= plug_thickness_mm <= plug_width_mm <= 30")
        if not self.socket_depth_mm + 5 <= self.plug_length_mm <= 60:
            raise ValueError(f"SimConfig.plug_length_mm must be in [socket_depth_mm + 5, 60], got {self.plug_length_mm}")
        if not 0 <= self.friction <= 2:
            raise ValueError(f"SimConfig.friction must be in [0, 2], got {self.friction}")
        if self.critical_distance_mm <= 0:
            raise ValueError(f"SimConfig.critical_distance_mm must be > 0, got {self.critical_distance_mm}")
        if self.episode_time_s <= 0:
            raise ValueError(f"SimConfig.episode_time_s must be > 0, got {self.episode_time_s}")
        if self.start not in START_MODES:
            raise ValueError(f"SimConfig.start must be one of {START_MODES}, got {self.start!r}")
        if not 0 <= self.initial_joint_noise_rad <= 0.2:
            raise ValueError(f"SimConfig.initial_joint_noise_rad must be in [0, 0.2], got {self.initial_joint_noise_rad}")
        if not 5 <= self.pre_critical_height_mm <= 100:
            raise ValueError(f"SimConfig.pre_critical_height_mm must be in [5, 100], got {self.pre_critical_height_mm}")
        if not 0 <= self.pre_critical_xy_noise_mm <= 10:
            raise ValueError(f"SimConfig.pre_critical_xy_noise_mm must be in [0, 10], got {self.pre_critical_xy_noise_mm}")

    @property
    def control_dt(self) -> float:
        """Seconds per control step."""
        return 1.0 / self.control_hz

    @property
    def substeps(self) -> int:
        """Physics steps per control step."""
        return int(round(1.0 / (self.control_hz * self.physics_timestep_s)))

    @property
    def max_episode_steps(self) -> int:
        """Control steps before truncation."""
        return int(round(self.episode_time_s * self.control_hz))

