"""The MuJoCo scene of the precision-insertion task, built in code as an MJCF string.

A 5-joint arm (base yaw, shoulder pitch, elbow pitch, wrist pitch, wrist roll) on a table holds a
rectangular plug pointing down; a socket block with a rectangular cavity (clearance per side
``clearance_mm``) and a 45-degree chamfer at its mouth is a mocap body, moved at every reset.

Geometry facts the inverse kinematics relies on are module constants (metres).
"""

from __future__ import annotations

import numpy as np

from rlt_ros.core.sim.configuration_sim import SimConfig

JOINT_NAMES: tuple[str, ...] = ("base_yaw", "shoulder_pitch", "elbow_pitch", "wrist_pitch", "wrist_roll")
JOINT_LOWER = np.array([-1.2, -0.6, 0.2, -0.4, -1.6])  # rad
JOINT_UPPER = np.array([1.2, 1.6, 2.6, 2.2, 1.6])  # rad
JOINT_MAX_VELOCITY = np.array([1.5, 1.5, 2.0, 2.5, 2.5])  # rad/s
# position-servo gains (N m / rad, N m s / rad): stiff enough to track, soft enough to comply in contact
JOINT_KP = np.array([300.0, 400.0, 300.0, 120.0, 40.0])
JOINT_KV = np.array([30.0, 40.0, 25.0, 8.0, 2.0])

SHOULDER_HEIGHT = 0.15  # shoulder pitch axis above the table, m
UPPER_ARM = 0.28  # shoulder -> elbow, m
FOREARM = 0.28  # elbow -> wrist pitch, m
WRIST_LINK = 0.04  # wrist pitch -> wrist roll / gripper, m
GRIPPER = 0.03  # wrist roll -> plug root, m
SOCKET_TOP_Z = 0.03  # height of the socket mouth above the table, m
PLUG_BEVEL = 0.0005  # 45-degree bevel around the plug's tip face, m (only with plug_mesh)
BASE_CAMERA_POS = (0.80, -0.40, 0.45)  # fixed scene camera, m
PLUG_PLAY = 0.0015  # lateral play of the plug in the fingers, +- m
PLUG_LATERAL_STIFFNESS = 1500.0  # spring holding the plug centred in the fingers, N/m
PLUG_LATERAL_DAMPING = 15.0  # N s/m
PLUG_YAW_PLAY = 0.06  # yaw play of the plug in the fingers, +- rad
PLUG_YAW_STIFFNESS = 0.4  # N m/rad


def tool_length(config: SimConfig) -> float:
    """Distance from the wrist-pitch axis to the plug tip along the tool axis, m."""
    return WRIST_LINK + GRIPPER + config.plug_length_mm / 1000.0


def _lookat_xyaxes(pos, target, up=(0.0, 0.0, 1.0)) -> str:
    """MJCF ``xyaxes`` for a camera at ``pos`` looking at ``target`` (MuJoCo cameras look along -z)."""
    pos, target, up = (np.asarray(v, dtype=float) for v in (pos, target, up))
    forward = target - pos
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    cam_up = np.cross(right, forward)
    return " ".join(f"{v:.6f}" for v in (*right, *cam_up))


def _box(name: str, pos, size, euler=(0.0, 0.0, 0.0), cls: str = "collide", rgba: str | None = None) -> str:
    p = " ".join(f"{v:.6f}" for v in pos)
    s = " ".join(f"{v:.6f}" for v in size)
    e = " ".join(f"{v:.6f}" for v in euler)
    color = f' rgba="{rgba}"' if rgba else ""
    return f'<geom name="{name}" class="{cls}" type="box" pos="{p}" size="{s}" euler="{e}"{color}/>'


def _prism(name: str, profile, extent: float, axis: str) -> str:
    """MJCF mesh asset: the 2-D ``profile`` [(u, z), ...] extruded over [-extent, extent] along ``axis``;
    u is x for axis="y" and y for axis="x"."""
    verts = []
    for u, z in profile:
        for w in (-extent, extent):
            verts.append((u, w, z) if axis == "y" else (w, u, z))
    flat = " ".join(f"{v:.6f}" for vert in verts for v in vert)
    return f'<mesh name="{name}" vertex="{flat}"/>'


def socket_parts(config: SimConfig) -> tuple[str, str]:
    """(mesh assets, geoms) of the socket block in its own frame (origin on the table under the cavity).

    Each side wall is ONE convex prism whose profile is the wall face plus the 45-degree mouth chamfer,
    so contacts see no internal edge between a chamfer and a wall (which would snag the plug)."""
    a = config.plug_width_mm / 2000.0 + config.clearance_mm / 1000.0  # cavity half-size along x, m
    b = config.plug_thickness_mm / 2000.0 + config.clearance_mm / 1000.0  # cavity half-size along y, m
    depth = config.socket_depth_mm / 1000.0
    ch = config.chamfer_mm / 1000.0
    top = SOCKET_TOP_Z
    width = 0.008 + ch  # wall thickness at the top including the chamfer, m
    floor_top = top - depth
    meshes, geoms = [], [_box("socket_floor", (0, 0, floor_top / 2), (a + width, b + width, floor_top / 2))]
    for side, half, extent, axis in (("x", a, b + width, "y"), ("y", b, a, "x")):
        for sign, tag in ((1.0, "p"), (-1.0, "n")):
            profile = [(half, floor_top), (half, top - ch), (half + ch, top), (half + width, top), (half + width, floor_top)]
            profile = [(sign * u, z) for u, z in profile]
            name = f"socket_wall_{tag}{side}"
            meshes.append(_prism(name, profile, extent, axis))
            geoms.append(f'<geom name="{name}" class="collide" type="mesh" mesh="{name}"/>')
    return "\n    ".join(meshes), "\n        ".join(geoms)


def plug_mesh(config: SimConfig) -> str:
    """MJCF mesh asset of the plug in its body frame: a rectangular bar along +z with a small bevel
    (``PLUG_BEVEL``) around its tip face, like a real connector."""
    w, t, length = config.plug_width_mm / 2000.0, config.plug_thickness_mm / 2000.0, config.plug_length_mm / 1000.0
    verts = []
    for z, dw in ((0.0, 0.0), (length - PLUG_BEVEL, 0.0), (length, PLUG_BEVEL)):
        verts += [(sx * (w - dw), sy * (t - dw), z) for sx in (-1, 1) for sy in (-1, 1)]
    flat = " ".join(f"{v:.6f}" for vert in verts for v in vert)
    return f'<mesh name="plug" vertex="{flat}"/>'


def build_mjcf(config: SimConfig) -> str:
    """The whole scene as an MJCF string."""
    size = int(config.image_size)
    plug_half = (config.plug_width_mm / 2000.0, config.plug_thickness_mm / 2000.0, config.plug_length_mm / 2000.0)
    plug_len = config.plug_length_mm / 1000.0
    mu = config.friction
    joints = []
    for name, lo, hi in zip(JOINT_NAMES, JOINT_LOWER, JOINT_UPPER):
        joints.append((name, f'range="{lo:.4f} {hi:.4f}"'))
    actuators = "\n    ".join(
        f'<position name="{n}" joint="{n}" kp="{kp}" kv="{kv}" ctrlrange="{lo:.4f} {hi:.4f}" forcerange="-{4 * kp / 10:.1f} {4 * kp / 10:.1f}"/>'
        for n, kp, kv, lo, hi in zip(JOINT_NAMES, JOINT_KP, JOINT_KV, JOINT_LOWER, JOINT_UPPER)
    )
    base_cam = _lookat_xyaxes(BASE_CAMERA_POS, (0.33, 0.0, 0.08))
    # wrist camera: on the gripper, looking down along the tool at the plug tip
    wrist_cam_pos = (0.0, -0.045, 0.0)
    wrist_cam = _lookat_xyaxes(wrist_cam_pos, (0.0, 0.0, GRIPPER + plug_len + 0.01), up=(1.0, 0.0, 0.0))
    socket_meshes, socket_geom_xml = socket_parts(config)
    (j0, r0), (j1, r1), (j2, r2), (j3, r3), (j4, r4) = joints
    return f"""
<mujoco model="rlt_peg_insertion">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{config.physics_timestep_s}" integrator="implicitfast"/>
  <visual>
    <global offwidth="{max(size, 64)}" offheight="{max(size, 64)}"/>
    <quality shadowsize="0"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.5 0.5 0.5" specular="0 0 0"/>
  </visual>
  <default>
    <joint damping="0.5" armature="0.02"/>
    <geom contype="0" conaffinity="0" rgba="0.75 0.75 0.78 1"/>
    <default class="collide">
      <geom contype="1" conaffinity="1" friction="{mu} 0.005 0.0001" solref="0.004 1" solimp="0.95 0.99 0.0005" rgba="0.95 0.55 0.1 1"/>
    </default>
  </default>
  <asset>
    {socket_meshes}
  </asset>
  <worldbody>
    <light name="sun" directional="true" pos="0 0 2" dir="0.3 0.2 -1" castshadow="false" diffuse="0.5 0.5 0.5"/>
    <geom name="table" class="collide" type="box" pos="0.3 0 -0.01" size="0.6 0.6 0.01" rgba="0.35 0.38 0.42 1"/>
    <camera name="base" pos="{BASE_CAMERA_POS[0]} {BASE_CAMERA_POS[1]} {BASE_CAMERA_POS[2]}" xyaxes="{base_cam}" fovy="40"/>
    <body name="base_link" pos="0 0 0">
      <geom type="cylinder" size="0.06 0.05" pos="0 0 0.05" rgba="0.2 0.2 0.22 1"/>
      <body name="link0" pos="0 0 0.1" gravcomp="1">
        <joint name="{j0}" axis="0 0 1" {r0}/>
        <inertial pos="0 0 0.025" mass="1.0" diaginertia="0.004 0.004 0.004"/>
        <geom type="cylinder" size="0.045 0.025" pos="0 0 0.025" rgba="0.3 0.3 0.33 1"/>
        <body name="link1" pos="0 0 {SHOULDER_HEIGHT - 0.1}" gravcomp="1">
          <joint name="{j1}" axis="0 1 0" {r1}/>
          <inertial pos="0 0 {UPPER_ARM / 2}" mass="0.8" diaginertia="0.006 0.006 0.0006"/>
          <geom type="capsule" fromto="0 0 0 0 0 {UPPER_ARM}" size="0.025" rgba="0.85 0.85 0.88 1"/>
          <body name="link2" pos="0 0 {UPPER_ARM}" gravcomp="1">
            <joint name="{j2}" axis="0 1 0" {r2}/>
            <inertial pos="0 0 {FOREARM / 2}" mass="0.5" diaginertia="0.004 0.004 0.0003"/>
            <geom type="capsule" fromto="0 0 0 0 0 {FOREARM}" size="0.02" rgba="0.85 0.85 0.88 1"/>
            <body name="link3" pos="0 0 {FOREARM}" gravcomp="1">
              <joint name="{j3}" axis="0 1 0" {r3}/>
              <inertial pos="0 0 {WRIST_LINK / 2}" mass="0.2" diaginertia="0.0003 0.0003 0.0001"/>
              <geom type="capsule" fromto="0 0 0 0 0 {WRIST_LINK}" size="0.018" rgba="0.3 0.3 0.33 1"/>
              <body name="link4" pos="0 0 {WRIST_LINK}" gravcomp="1">
                <joint name="{j4}" axis="0 0 1" {r4}/>
                <inertial pos="0 0 0.015" mass="0.15" diaginertia="0.0002 0.0002 0.0001"/>
                <geom type="box" size="0.02 0.012 0.015" pos="0 0 0.015" rgba="0.2 0.2 0.22 1"/>
                <camera name="wrist" pos="{wrist_cam_pos[0]} {wrist_cam_pos[1]} {wrist_cam_pos[2]}" xyaxes="{wrist_cam}" fovy="60"/>
                <site name="ee" pos="0 0 {GRIPPER + plug_len}" size="0.002"/>
                <body name="plug" pos="0 0 {GRIPPER}" gravcomp="1">
                  <!-- the plug sits a little compliantly in the fingers, like a real grasped connector -->
                  <joint name="plug_slide_x" type="slide" axis="1 0 0" range="-{PLUG_PLAY} {PLUG_PLAY}" stiffness="{PLUG_LATERAL_STIFFNESS}" damping="{PLUG_LATERAL_DAMPING}" armature="0.02"/>
                  <joint name="plug_slide_y" type="slide" axis="0 1 0" range="-{PLUG_PLAY} {PLUG_PLAY}" stiffness="{PLUG_LATERAL_STIFFNESS}" damping="{PLUG_LATERAL_DAMPING}" armature="0.02"/>
                  <joint name="plug_yaw" axis="0 0 1" range="-{PLUG_YAW_PLAY} {PLUG_YAW_PLAY}" stiffness="{PLUG_YAW_STIFFNESS}" damping="0.01" armature="0.00005"/>
                  <inertial pos="0 0 {plug_half[2]}" mass="0.03" diaginertia="0.00001 0.00001 0.00001"/>
                  <geom name="plug" class="collide" type="box" size="{plug_half[0]} {plug_half[1]} {plug_half[2]}" pos="0 0 {plug_half[2]}" rgba="0.15 0.35 0.85 1"/>
                  <site name="tcp" pos="0 0 {plug_len}" size="0.002"/>
                </body>
              </body>
            </body>
          </body>
        </body>
      </body>
    </body>
    <body name="socket" mocap="true" pos="{config.socket_nominal_xy_m[0]} {config.socket_nominal_xy_m[1]} 0">
        {socket_geom_xml}
        <site name="socket_mouth" pos="0 0 {SOCKET_TOP_Z}" size="0.002"/>
    </body>
  </worldbody>
  <actuator>
    {actuators}
  </actuator>
</mujoco>
"""
