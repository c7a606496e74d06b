"""Configuration of RLT stage 2: the chunked actor-critic, its replay buffer and its learner.

Paper: "RL Token" (Xu et al., 2026), stage 2. Values the paper gives: chunk C = 10, actor MLP 2 x 256,
UTD 5, 2 critic updates per actor update, reference dropout 0.5, stride 2, a small fixed sigma,
actor loss -Q + beta ||a - ã||^2, TD3-style twin critics. Values marked "(not in paper)" were set on the
simulated peg insertion (bench/sample_efficiency.py); the measurements behind them, and the options that
were tried and removed, are in docs/experiments.md.

gamma is per control step (the TD target discounts a chunk by gamma^C); with gamma it sets the trade of
speed against success: at 0.999 one second saved is worth about five points of success. sigma and beta
are in the normalised units of ``Normalizer`` (modeling_actor_critic.py): the actor's best deviation
from ã is |dQ/da| / (2 beta).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rlt_ros.core.config_fields import ConfigMixin, check_float, check_int, check_int_tuple


@dataclass
class RLTConfig(ConfigMixin):
    """Actor, critic, replay and learner of RLT stage 2 (one owner per hyperparameter)."""

    # fields measured not to help and removed: name -> (the value that means today's behaviour, what replaced it)
    REMOVED_FIELDS: ClassVar[dict] = {
        "noise_correlation": (0.0, "i.i.d. exploration noise (correlated noise did not help)"),
        "shared_action_std": (False, "a per-joint action scale (floored at action_min_std)"),
        "actor_ema": (0.0, "the latest actor acts (an averaged actor did not help)"),
        "dropout_keeps_anchor": (True, "reference dropout always hides ã from the MLP only (mu = ã + MLP(x, 0))"),
        "reference_follows_progress": (True, "ã always follows the arm's progress along the VLA's plan"),
    }

    # ---- dimensions (must match the token encoder, the arm and the VLA) -----------------------------
    chunk_size: int = 10  # C: action steps the actor outputs per decision (paper: 10 at 50 Hz)
    action_dim: int = 7  # A: joint position targets per step
    token_dim: int = 128  # length of the state vector z_rl (the RL token's out_dim)
    state_image_size: int = 0  # no-token ablation (rlt sim-train --state image): the state vector is the cameras' uint8 RGB images at this side, px (token_dim = cameras x side^2 x 3), read by a small CNN trained online; 0 = the state is z_rl
    proprio_dim: int = 14  # P: proprioception length (joint positions, velocities, extras)
    # ---- networks -----------------------------------------------------------------------------------
    actor_hidden: tuple = (256, 256)  # hidden layer sizes of the actor MLP (paper: 2 x 256; 3 x 512 for the hardest task)
    critic_hidden: tuple = (256, 256)  # hidden layer sizes of each Q network (not in paper)
    critic_layer_norm: bool = True  # LayerNorm after each critic hidden layer, stabilises high-UTD TD learning (not in paper)
    num_critics: int = 2  # Q networks; the target takes their minimum (TD3 clipped double Q)
    residual_actor: bool = True  # mu = ã_in + MLP(x, ã_in) (anchored to the reference) instead of mu = MLP(x, ã_in)
    residual_init_scale: float = 1e-3  # uniform init range of the actor's last layer (a small first residual)
    # ---- policy -------------------------------------------------------------------------------------
    sigma: float = 0.02  # fixed std of the Gaussian actor per normalised action dimension (the paper's only exploration)
    chunk_sigma: float = 0.0  # experimental: std of an acting offset per joint held for a whole chunk, beside sigma's noise; 0.1 for a task the base mostly fails (not in paper; experiments 2.19)
    target_noise_clip: float = 0.2  # TD3 target-policy smoothing: clip of the sigma noise on a' [normalised units]
    ref_dropout: float = 0.5  # fraction of TRAINING samples whose actor input ã is zeroed (never at inference)
    use_reference: bool = True  # False: the actor never sees ã (the no_ref ablation); the beta term still uses it
    action_min_std: float = 1e-3  # floor of each joint's normalising action std [the arm's action unit]: guards a joint that never moves
    # ---- losses -------------------------------------------------------------------------------------
    beta: float = 0.07  # weight of || a - ã ||^2 (sum over the chunk, normalised units) in the actor loss
    return_min: float = 0.0  # TD targets are clipped to [return_min, return_max]: with the paper's binary
    return_max: float = 1.0  # sparse reward every return lies in [0, 1]; stops Q overestimation feeding back at UTD 5 (not in paper)
    gamma: float = 0.999  # per-control-step discount; a C=10 chunk is discounted by gamma^C = 0.99 (not in paper)
    tau: float = 0.005  # Polyak factor of the target networks per critic update (not in paper)
    actor_lr: float = 3e-4  # Adam learning rate of the actor (not in paper)
    critic_lr: float = 3e-4  # Adam learning rate of the critics (not in paper)
    grad_clip: float = 10.0  # max global gradient norm per network (not in paper)
    # ---- learner loop -------------------------------------------------------------------------------
    batch_size: int = 64  # transitions per gradient step (not in paper)
    utd: int = 5  # update-to-data ratio: critic updates per transition added to the buffer
    critic_updates_per_actor: int = 2  # critic updates per actor update (TD3 delay)
    warmup_transitions: int = 500  # VLA warm-up transitions in the buffer before any update (N_warm, in transitions)
    pretrain_updates: int = 0  # critic/actor updates on the warm-up data before the actor first drives (not in paper)
    export_every: int = 100  # critic updates between actor-weight exports to the acting side
    # ---- replay -------------------------------------------------------------------------------------
    stride: int = 2  # a transition starts every `stride` control steps (paper: 2, ~25 samples/s at 50 Hz)
    replay_capacity: int = 200_000  # transitions kept in memory for sampling (all stay on disk)
    seed: int = 0  # seed of network initialisation, sampling and exploration noise

    def __post_init__(self) -> None:
        for name, lo in (("chunk_size", 1), ("action_dim", 1), ("token_dim", 1), ("proprio_dim", 0),
                         ("num_critics", 1), ("batch_size", 1), ("utd", 1), ("critic_updates_per_actor", 1),
                         ("warmup_transitions", 0), ("pretrain_updates", 0), ("export_every", 1),
                         ("stride", 1), ("replay_capacity", 1), ("seed", 0)):
            check_int(self, name, lo)
        check_int(self, "state_image_size", 0)
        if self.state_image_size and (self.state_image_size < 16 or self.token_dim % (3 * self.state_image_size ** 2)):
            raise ValueError(f"RLTConfig.state_image_size {self.state_image_size} must be >= 16 px and token_dim "
                             f"{self.token_dim} a whole number of {self.state_image_size}^2 x 3 camera images")
        check_int_tuple(self, "actor_hidden", 1)
        check_int_tuple(self, "critic_hidden", 1)
        check_float(self, "residual_init_scale", 0.0)
        check_float(self, "sigma", 0.0)
        check_float(self, "chunk_sigma", 0.0)
        check_float(self, "target_noise_clip", 0.0)
        check_float(self, "ref_dropout", 0.0, 1.0)
        check_float(self, "beta", 0.0)
        check_float(self, "gamma", 0.0, 1.0)
        check_float(self, "return_min")
        check_float(self, "return_max")
        if self.return_max <= self.return_min:
            raise ValueError(f"RLTConfig: return_max {self.return_max} must be > return_min {self.return_min}")
        check_float(self, "tau", 0.0, 1.0, lo_open=True)
        check_float(self, "action_min_std", 0.0, None, lo_open=True)
        check_float(self, "actor_lr", 0.0, None, lo_open=True)
        check_float(self, "critic_lr", 0.0, None, lo_open=True)
        check_float(self, "grad_clip", 0.0, None, lo_open=True)
        for name in ("critic_layer_norm", "residual_actor", "use_reference"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"RLTConfig.{name} must be a bool, got {getattr(self, name)!r}")
        if self.stride > self.chunk_size:
            raise ValueError(f"RLTConfig.stride {self.stride} must be <= chunk_size {self.chunk_size} "
                             "(a transition every `stride` steps of a C-step chunk)")
        if self.residual_actor and not self.use_reference:
            raise ValueError("RLTConfig: residual_actor=True needs use_reference=True (the residual is added to ã); "
                             "set residual_actor=False for the no-reference ablation")

    @property
    def chunk_flat(self) -> int:
        """C x A: length of a flattened action chunk."""
        return self.chunk_size * self.action_dim

    @property
    def token_dtype(self) -> str:
        """How the replay stores the state vector: uint8 pixels (state_image_size) or float32 (z_rl)."""
        return "u1" if self.state_image_size else "f4"

    def network_dims(self) -> dict:
        """The fields a checkpoint's networks (and the normaliser fitted for them) depend on (a mismatch on
        resume is an error: a resumed normaliser is never refitted, so a changed action scale would be ignored)."""
        keys = ("chunk_size", "action_dim", "token_dim", "state_image_size", "proprio_dim", "actor_hidden", "critic_hidden",
                "critic_layer_norm", "num_critics", "residual_actor", "use_reference", "action_min_std")
        return {k: self.to_dict()[k] for k in keys}
