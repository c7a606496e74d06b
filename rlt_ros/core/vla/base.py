"""The VLA backend interface: what RLT needs from a frozen vision-language-action model.

A backend maps an :class:`~rlt_ros.core.types.Observation` to a :class:`~rlt_ros.core.types.VLAOutput`:

- ``prefix_embeddings`` z_1..z_M, float32 [M, D]: the final-layer (post-norm) embeddings of the prefix
  tokens (image tokens of every camera, language tokens, state tokens), read by the RL-token encoder;
- ``prefix_mask``, bool [M]: True where a token is valid;
- ``reference_chunk`` ã, float32 [H, A]: the VLA's action chunk, absolute joint position targets.

The base class owns input validation (cameras, image size / encoding / dtype, proprioception length) and
the compatibility check between the VLA's action space and the arm, so every backend fails the same way
and before anything moves. Subclasses implement :meth:`VLABackend._infer_batch` only.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence

import numpy as np

from rlt_ros.core.types import Observation, VLAOutput

BACKEND_KINDS: tuple[str, ...] = ("builtin", "smolvla", "pi0", "pi05")


class VLAInputError(ValueError):
    """An observation does not match what the backend expects (camera, image, proprioception)."""


class IncompatibleArmError(ValueError):
    """The VLA's action space (dimension or joint order) does not match the arm it would drive."""


class VLABackend(abc.ABC):
    """A frozen VLA behind a uniform interface (see the module docstring for the output contract).

    Subclasses set the properties below and implement :meth:`_infer_batch`; they never need to
    re-validate observations (:meth:`infer` / :meth:`infer_batch` do it first).
    """

    # ---- what the backend is ------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def embed_dim(self) -> int:
        """D: width of the prefix embeddings."""

    @property
    @abc.abstractmethod
    def chunk_size(self) -> int:
        """H: number of steps in the reference chunk."""

    @property
    @abc.abstractmethod
    def action_dim(self) -> int:
        """A: dimension of one action (absolute joint position targets)."""

    @property
    @abc.abstractmethod
    def joint_names(self) -> list[str]:
        """Joint order of the action (and of the joint positions at the start of proprio); [] if unknown."""

    @property
    @abc.abstractmethod
    def camera_names(self) -> list[str]:
        """Camera roles every observation must carry (Observation.images keys)."""

    @property
    @abc.abstractmethod
    def image_size(self) -> tuple[int, int] | None:
        """(height, width) every image must have, or None when the backend resizes any size itself."""

    @property
    @abc.abstractmethod
    def proprio_dim(self) -> int | None:
        """P: length of Observation.proprio, or None when any length >= action_dim is accepted."""

    @property
    def num_prefix_tokens(self) -> int | None:
        """M when it is fixed for this backend (None when it depends on the instruction)."""
        return None

    @property
    def kind(self) -> str:
        """Backend kind, one of BACKEND_KINDS."""
        return "unknown"

    # ---- inference ----------------------------------------------------------------------------
    def infer(self, obs: Observation) -> VLAOutput:
        """Prefix embeddings [M, D], mask [M] and reference chunk [H, A] for one observation."""
        return self.infer_batch([obs])[0]

    def infer_batch(self, observations: Sequence[Observation]) -> list[VLAOutput]:
        """:meth:`infer` for several observations at once (one forward pass where the backend can)."""
        if len(observations) == 0:
            return []
        for i, obs in enumerate(observations):
            self.validate_observation(obs, where=f"observation {i}" if len(observations) > 1 else "observation")
        outs = self._infer_batch(list(observations))
        for out in outs:
            self._check_output(out)
        return outs

    def embed_dataset(
        self, observations: Iterable[Observation], batch_size: int = 64, progress: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Run the VLA on many observations (e.g. every demo frame, for RL-token training).

        Returns (prefix_embeddings float32 [N, M, D], prefix_mask bool [N, M], reference_chunks float32
        [N, H, A]); M is the largest token count, shorter prefixes are zero-padded with mask False.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        outs: list[VLAOutput] = []
        batch: list[Observation] = []
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(desc="embed", unit="obs")
        for obs in observations:
            batch.append(obs)
            if len(batch) == batch_size:
                outs.extend(self.infer_batch(batch))
                if bar is not None:
                    bar.update(len(batch))
                batch = []
        if batch:
            outs.extend(self.infer_batch(batch))
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
        return stack_outputs(outs, self.embed_dim, self.chunk_size, self.action_dim)

    @abc.abstractmethod
    def _infer_batch(self, observations: list[Observation]) -> list[VLAOutput]:
        """Backend-specific inference on already validated observations."""

    # ---- validation ---------------------------------------------------------------------------
    def validate_observation(self, obs: Observation, where: str = "observation") -> None:
        """Raise VLAInputError naming the cause when ``obs`` cannot be fed to this backend."""
        if not isinstance(obs, Observation):
            raise VLAInputError(f"{where}: expected rlt_ros.core.types.Observation, got {type(obs).__name__}")
        if not isinstance(obs.images, dict):
            raise VLAInputError(f"{where}: images must be a dict camera -> uint8 [H, W, 3], got {type(obs.images).__name__}")
        missing = [c for c in self.camera_names if c not in obs.images]
        if missing:
            raise VLAInputError(
                f"{where}: missing camera(s) {missing}; this VLA needs {self.camera_names}, "
                f"the observation has {sorted(obs.images)} (map your camera topics to these roles)"
            )
        for cam in self.camera_names:
            check_image(obs.images[cam], self.image_size, f"{where}: camera {cam!r}")
        proprio = np.asarray(obs.proprio)
        if proprio.ndim != 1:
            raise VLAInputError(f"{where}: proprio must be a 1-D float array [P], got shape {proprio.shape}")
        if not np.issubdtype(proprio.dtype, np.number):
            raise VLAInputError(f"{where}: proprio must be numeric, got dtype {proprio.dtype}")
        if self.proprio_dim is not None and proprio.shape[0] != self.proprio_dim:
            raise VLAInputError(
                f"{where}: proprio has length {proprio.shape[0]}, this VLA expects {self.proprio_dim} "
                f"(joint positions [{self.action_dim}] then joint velocities, then extras)"
            )
        if self.proprio_dim is None and proprio.shape[0] < self.action_dim:
            raise VLAInputError(
                f"{where}: proprio has length {proprio.shape[0]} < action_dim {self.action_dim}; "
                "it must start with the joint positions"
            )
        if not np.all(np.isfinite(proprio)):
            raise VLAInputError(f"{where}: proprio contains NaN or inf")
        if not isinstance(obs.instruction, str):
            raise VLAInputError(f"{where}: instruction must be a str, got {type(obs.instruction).__name__}")

    def check_compatible(self, joint_names: Sequence[str], action_dim: int | None = None,
                         camera_names: Sequence[str] | None = None) -> None:
        """Raise IncompatibleArmError unless this VLA's actions can drive an arm with these joints (and,
        when ``camera_names`` is given, the arm's cameras include every camera the VLA reads).

        Call this before anything moves. ``joint_names`` is the arm's joint order (the order of its
        command vector); ``action_dim`` defaults to ``len(joint_names)``.
        """
        if camera_names is not None and not set(self.camera_names) <= set(camera_names):
            raise IncompatibleArmError(
                f"the VLA reads the cameras {self.camera_names}, the arm has {list(camera_names)} (missing: "
                f"{sorted(set(self.camera_names) - set(camera_names))}); name the arm's cameras as the VLA's "
                "(arm.camera_names in config/arms/<arm>.yaml; a LeRobot policy reads observation.images.<name>)")
        joint_names = list(joint_names)
        action_dim = len(joint_names) if action_dim is None else int(action_dim)
        if action_dim != self.action_dim:
            raise IncompatibleArmError(
                f"the VLA outputs {self.action_dim}-D actions but the arm takes {action_dim} "
                f"(arm joints {joint_names}); use a VLA checkpoint trained for this arm"
            )
        if joint_names and len(joint_names) != action_dim:
            raise IncompatibleArmError(
                f"{len(joint_names)} joint names given for a {action_dim}-D action: {joint_names}"
            )
        ours = self.joint_names
        if ours and joint_names and list(ours) != joint_names:
            if sorted(ours) == sorted(joint_names):
                raise IncompatibleArmError(
                    f"joint order mismatch: the VLA's actions are ordered {list(ours)}, the arm's "
                    f"commands are ordered {joint_names}; reorder the arm's joint list (config/arms/<arm>.yaml) "
                    "to match the VLA"
                )
            raise IncompatibleArmError(
                f"joint names differ: the VLA was trained on {list(ours)}, the arm has {joint_names} "
                f"(only in VLA: {sorted(set(ours) - set(joint_names))}, only in arm: "
                f"{sorted(set(joint_names) - set(ours))})"
            )

    def _check_output(self, out: VLAOutput) -> None:
        emb, mask, chunk = out.prefix_embeddings, out.prefix_mask, out.reference_chunk
        assert emb.ndim == 2 and emb.shape[1] == self.embed_dim, f"prefix_embeddings {emb.shape}, D={self.embed_dim}"
        assert mask.shape == (emb.shape[0],) and mask.dtype == np.bool_, f"prefix_mask {mask.shape} {mask.dtype}"
        assert chunk.shape == (self.chunk_size, self.action_dim), f"reference_chunk {chunk.shape}"

    def describe(self) -> str:
        """One line summarising the backend (for logs)."""
        return (
            f"{self.kind} VLA: D={self.embed_dim} H={self.chunk_size} A={self.action_dim} "
            f"cameras={self.camera_names} image_size={self.image_size} joints={self.joint_names}"
        )


def check_image(img: object, size: tuple[int, int] | None, where: str) -> None:
    """Raise VLAInputError unless ``img`` is an RGB uint8 [H, W, 3] array (of ``size`` when given)."""
    if not isinstance(img, np.ndarray):
        raise VLAInputError(f"{where}: image must be a numpy array uint8 [H, W, 3], got {type(img).__name__}")
    if img.dtype != np.uint8:
        raise VLAInputError(
            f"{where}: image dtype is {img.dtype}, expected uint8 (0..255 RGB); convert float images with "
            "(img * 255).clip(0, 255).astype(np.uint8)"
        )
    if img.ndim != 3 or img.shape[2] != 3:
        enc = {2: "mono (2-D)", 3: f"{img.shape[2]} channels" if img.ndim == 3 else ""}.get(img.ndim, f"{img.ndim}-D")
        raise VLAInputError(
            f"{where}: image encoding must be rgb8 [H, W, 3], got shape {img.shape} ({enc}); "
            "convert mono/rgba/bgr images to RGB first"
        )
    if size is not None and tuple(img.shape[:2]) != tuple(size):
        raise VLAInputError(
            f"{where}: image size is {img.shape[1]}x{img.shape[0]} (WxH), this VLA expects "
            f"{size[1]}x{size[0]}; resize the camera stream or set the camera resolution"
        )


def stack_outputs(outs: Sequence[VLAOutput], embed_dim: int, chunk_size: int, action_dim: int):
    """Stack VLAOutputs into (emb [N, M, D], mask [N, M], chunks [N, H, A]), zero-padding to the largest M."""
    n = len(outs)
    m = max((o.prefix_embeddings.shape[0] for o in outs), default=0)
    emb = np.zeros((n, m, embed_dim), np.float32)
    mask = np.zeros((n, m), bool)
    chunks = np.zeros((n, chunk_size, action_dim), np.float32)
    for i, o in enumerate(outs):
        k = o.prefix_embeddings.shape[0]
        emb[i, :k] = o.prefix_embeddings
        mask[i, :k] = o.prefix_mask
        chunks[i] = o.reference_chunk
    return emb, mask, chunks


def load_backend(kind: str, path: str | None = None, **kwargs) -> VLABackend:
    """Load a VLA backend.

    kind: "builtin" (rlt_ros's small VLA; ``path`` None = the shipped checkpoint), "smolvla", "pi0" or
    "pi05" (LeRobot policies from a local directory, loaded offline; needs lerobot 0.6: `make setup-vla`).
    kwargs go to the backend's constructor (e.g. device="cpu", joint_names=[...], camera_map={...}).
    """
    if kind == "builtin":
        from rlt_ros.core.vla.modeling_builtin import BuiltinVLABackend
        from rlt_ros.core.vla import default_checkpoint

        return BuiltinVLABackend.from_pretrained(default_checkpoint() if path is None else path, **kwargs)
    if kind in ("smolvla", "pi0", "pi05"):
        if path is None:
            raise ValueError(f"VLA kind {kind!r} needs a path: a local directory with config.json and model.safetensors")
        from rlt_ros.core.vla.lerobot_backend import LeRobotBackend

        return LeRobotBackend.from_pretrained(kind, path, **kwargs)
    raise ValueError(f"unknown VLA kind {kind!r}; valid choices: {', '.join(BACKEND_KINDS)}")
