"""Configuration of RLT stage 2: the chunked actor-critic, its replay buffer and its learner.

Paper: "RL Token" (Xu et al., 2026), stage 2. Values the paper gives: chunk C = 10, actor MLP 2 x 256,
UTD 5, 2 critic updates per actor update, reference dropout 0.5, stride 2, a small fixed sigma,
actor loss -Q + beta ||a - ã||^2, TD3-style twin critics. Values marked "(not in paper)" come from public
re-implementations or from tuning on the simulated peg insertion (bench/sample_efficiency.py).

gamma is per control step (the TD target discounts a chunk by gamma^C). Re-implementations quote
0.96-0.99; read per chunk of C = 10 steps that is 0.996-0.999 per step. We use 0.998 (0.98 per chunk): with
0.99 per step at 50 Hz a 50%-reliable 2 s insertion is worth more than a 90%-reliable 6 s one
(0.5 x 0.99^100 > 0.9 x 0.99^300), which trades success for speed; 0.998 keeps success first and still
rewards speed.

gamma and beta together set where practice lands between speed and success: gamma is the critic's exchange
rate (at 0.998 one second saved is worth as much as ~10 points of success, at 0.999 ~5), beta how far the
actor may follow the critic away from ã. Measured after 150 practice episodes (seeds 0 and 1, 20
noise-free evaluation episodes each, base VLA 95% / 6.78 s; bench/sample_efficiency.py --arms rlt --seeds
0 1 --episodes 150 --minutes 30 --rlt ...): beta 0.1, gamma 0.998 (defaults): 82% / 4.16 s; beta 0.03,
gamma 0.998: 70% / 3.21 s; beta 0.03, gamma 0.999: 92% / 4.26 s; beta 0.015, gamma 0.999: 60% / 3.11 s.
beta 0.03, gamma 0.999 with batch_size 64 after 300 episodes: 80% / 3.46 s and 60% / 2.67 s (2.2x, 25
CPU-minutes per run); beta 0.05 there: 85% / 4.12 s and 70% / 3.55 s. update-to-data 10 (beta 0.03, gamma
0.999, batch 64, 150 episodes): 75% / 3.64 s and 85% / 4.14 s, no better. With reference_follows_progress
(gamma 0.999): beta 0.1, 150 episodes: 97% / 4.49 s; beta 0.05, 200 episodes: 88% / 3.66 s (1.85x, 18
CPU-minutes), 300 episodes: 90% / 3.54 s and 65% / 2.64 s (26 CPU-minutes); beta 0.05, gamma 0.9995, 250
episodes: 95% / 4.50 s and 100% / 4.14 s (1.57x); beta 0.07, batch_size 64, 375 episodes (80 evaluation
episodes, base 97.5% / 6.74 s): 90% / 3.43 s, 90% / 3.32 s, 97.5% / 3.95 s, 69% / 2.82 s and 84% / 3.16 s
(seeds 0-4, mean 86% at 2.02x, 22-28 CPU-minutes per run). The defaults stay: the benchmark table in README.md was
measured with them.

sigma and beta were set on the simulated insertion (0.4 mm clearance). sigma = 0.02: i.i.d. noise of 0.05
(normalised) on the VLA's own chunks cut its success on 9 fixed episodes from 6/9 to 1/9, while 0.01 made
early practice fail more (4/20 successes in the first 20 RL episodes against 11/20 at 0.02: a little dither
helps the plug past the chamfer). beta: the actor's best deviation from ã is |dQ/da| / (2 beta), and a
trained critic's |dQ/da| is ~0.065 (L2 over the normalised C x A chunk, measured after 50 practice
episodes), so beta = 1 pins the actor within ~0.03 normalised units (~0.1 mm) of ã and RLT equals the base
policy (evaluation: 100% success, 6.5 s critical phase). After 60 practice episodes (seed 0, 20 noise-free
evaluation episodes from just above the socket): beta = 0.1: 100%, 5.2 s; beta = 0.05: 85%, 4.9 s;
beta = 0.03: 80%, 4.7 s. We use 0.1: faster without losing success.

Reference dropout with a residual actor (dropout_keeps_anchor): the paper zeroes ã in the actor's input for
50% of the training samples. With mu = ã_in + MLP(x, ã_in) that also removes the anchor, so on those samples
the MLP must output the whole chunk from the state, and their large beta term dominated the actor's
gradients. We hide ã from the MLP's input only (mu = ã + MLP(x, 0)): the correction must still come from
the state alone half of the time, as the paper intends. Measured (bench/sample_efficiency.py --arms rlt
--seeds 0 1, 50 episodes, 20 noise-free evaluation episodes): without it 100% / 5.69 s and 80% / 3.95 s,
practice success 60-88%; with it 100% / 4.95 s and 100% / 4.81 s, practice success 80-100%. Over the full
benchmark's three seeds the evaluation did not improve (100/100/65% vs 100/80/90% before), practice
success did (mean 84% vs 74%). Lower beta or gamma trade success for speed (with it, beta = 0.03:
75% / 3.76 s and 75% / 3.22 s; gamma = 0.995: 80% / 4.43 s and 90% / 4.68 s).

Temporally correlated exploration (noise_correlation, not in paper): i.i.d. noise per chunk row is
averaged away by the arm's tracking, so we tried AR(1) noise along the chunk (rho = 0.8, same sigma per
element). Measured (bench/sample_efficiency.py --arms rlt --seeds 0 1 --rlt noise_correlation=0.8): 100% /
4.99 s and 95% / 4.90 s, against 100% / 4.95 s and 100% / 4.81 s i.i.d.: no gain, so the default stays 0.

The actor maximises the mean of the critics (the TD target takes their minimum). Maximising their minimum
instead (SAC-style pessimism; seeds 0 and 1, 50 episodes, a patched actor loss): 85% / 4.50 s and 95% /
4.88 s, against 100% / 4.95 s and 100% / 4.81 s: no gain.

One action scale for every joint (shared_action_std, not in paper): per-joint normalisation makes sigma and
beta anisotropic in radians. On the simulated arm the base joint (which moves the plug sideways, ~0.4 m from
the axis) varies 0.0046 rad in the warm-up data, the others 0.018-0.040, so the actor explores 5x less
sideways than downwards and pays ~16x more per millimetre to correct a lateral error than to descend, and
RL episodes fail by reaching the socket mouth 2-3 mm off. With one scale (the RMS of the joints' stds) for
all joints (reference_follows_progress, beta 0.05, gamma 0.999, 200 episodes, seeds 0 and 1): 55% / 2.16 s
and 75% / 3.54 s, against 95% / 3.86 s and 80% / 3.46 s per joint; practice success fell from the start
(48-64% in the first 25 episodes against 88-92%): the untrained critic's gradients and the noise now move
the plug sideways too. The per-joint scale acts as a prior that keeps the VLA's lateral aim; the default
stays per joint.

A floor on each joint's scale (action_min_std) is the gentler form: it lifts only a joint the VLA barely
moves. It is in the arm's action units (radians here; a LeRobot arm may use degrees or -100..100), so the
default, 1e-3, only guards against a joint that never moves. The scales are fitted on the VLA warm-up (~5
episodes), and in the 375-episode runs below the base joint's std there was 0.0028 rad for seed 3 and
0.011-0.0125 for seeds 0, 2, 4: seed 3's actor learnt almost no lateral correction (residual 5e-5 rad RMS
on the last 50 episodes' states, seed 2: 4.9e-4) and is the unreliable seed. With a floor of 0.01 rad
(same runs plus --rlt action_min_std=0.01, 80 evaluation episodes), seeds 0-4: 86% / 3.58 s, 91% /
3.58 s, 94% / 3.92 s, 80% / 2.91 s, 84% / 3.16 s, against 90% / 3.43 s, 90% / 3.32 s, 97.5% / 3.95 s,
69% / 2.82 s, 84% / 3.16 s: seed 3's residual rose to 4.8e-4 rad and its success by 11 points, the spread
of success over seeds halved (sd 6 against 11 points), the mean did not move (87% at 1.97x against 86% at
2.02x). Seeds 0 and 4 were above the floor (seed 4 repeated its run exactly; seed 0's earlier run had been
resumed at 300 episodes, so its difference is run-to-run noise). The default stays 1e-3: the floor is
unit-dependent and the benchmark table was measured without it.

An averaged acting actor (actor_ema, not in paper): the seeds of one configuration end at different points
of the speed-success frontier, and a practice run's last 25-episode blocks swing by 10-20 points of
success, so we let the acting side run a Polyak average of the actor (factor 2e-4 per actor update, a
time constant of ~20 episodes) to see whether the final policy was a noisy snapshot. Measured
(reference_follows_progress, beta 0.07, gamma 0.999, batch 64, 375 episodes, 80 evaluation episodes): seed
2: 95% / 3.82 s (1.76x), seed 3: 66% / 2.52 s (2.67x), against 97.5% / 3.95 s and 69% / 2.82 s with the
latest actor: each seed went a little faster and the spread did not shrink. Off by default.

All actions, references and proprioception enter the networks normalised by statistics stored with the
weights (``Normalizer`` in modeling_actor_critic.py); sigma and beta are in those normalised units.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlt_ros.core.config_fields import ConfigMixin, check_float, check_int, check_int_tuple


@dataclass
class RLTConfig(ConfigMixin):
    """Actor, critic, replay and learner of RLT stage 2 (one owner per hyperparameter)."""

    # ---- dimensions (must match the token encoder, the arm and the VLA) -----------------------------
    chunk_size: int = 10  # C: action steps the actor outputs per decision (paper: 10 at 50 Hz)
    action_dim: int = 7  # A: joint position targets per step
    token_dim: int = 128  # length of the state vector z_rl (the RL token's out_dim)
    proprio_dim: int = 14  # P: proprioception length (joint positions, velocities, extras)
    # ---- networks -----------------------------------------------------------------------------------
    actor_hidden: tuple = (256, 256)  # hidden layer sizes of the actor MLP (paper: 2 x 256; 3 x 512 for the hardest task)
    critic_hidden: tuple = (256, 256)  # hidden layer sizes of each Q network (not in paper)
    critic_layer_norm: bool = True  # LayerNorm after each critic hidden layer, stabilises high-UTD TD learning (not in paper)
    num_critics: int = 2  # Q networks; the target takes their minimum (TD3 clipped double Q)
    residual_actor: bool = True  # mu = ã_in + MLP(x, ã_in) (anchored to the reference) instead of mu = MLP(x, ã_in)
    residual_init_scale: float = 1e-3  # uniform init range of the actor's last layer (a small first residual)
    # ---- policy -------------------------------------------------------------------------------------
    sigma: float = 0.02  # fixed std of the Gaussian actor per normalised action dimension (the only exploration; see below)
    noise_correlation: float = 0.0  # AR(1) coefficient of the exploration noise from one chunk row to the next: 0 = i.i.d. (paper), near 1 = one offset per chunk (not in paper)
    target_noise_clip: float = 0.2  # TD3 target-policy smoothing: clip of the sigma noise on a' [normalised units]
    ref_dropout: float = 0.5  # fraction of TRAINING samples whose actor input ã is zeroed (never at inference)
    use_reference: bool = True  # False: the actor never sees ã (the no_ref ablation); the beta term still uses it
    reference_follows_progress: bool = False  # ã = the VLA plan's rows past the one nearest the last target sent, so a faster actor is not anchored behind itself (not in paper; see reference.py)
    action_min_std: float = 1e-3  # floor of each joint's normalising action std [rad]: sigma and beta of a joint the VLA barely moves are taken at this scale (see below)
    shared_action_std: bool = False  # normalise every joint's actions by one scale (the RMS of the joints' stds), so sigma and beta weigh joints alike (not in paper)
    dropout_keeps_anchor: bool = True  # residual actor: ref dropout hides ã from the MLP's input only, mu stays ã + MLP(x, 0) (not in paper)
    # ---- losses -------------------------------------------------------------------------------------
    beta: float = 0.1  # weight of || a - ã ||^2 (sum over the chunk, normalised units) in the actor loss
    return_min: float = 0.0  # TD targets are clipped to [return_min, return_max]: with the paper's binary
    return_max: float = 1.0  # sparse reward every return lies in [0, 1]; stops Q overestimation feeding back at UTD 5 (not in paper)
    gamma: float = 0.998  # per-control-step discount; a C=10 chunk is discounted by gamma^C = 0.98 (not in paper, see below)
    tau: float = 0.005  # Polyak factor of the target networks per critic update (not in paper)
    actor_ema: float = 0.0  # 0: the acting side runs the latest actor (paper); > 0: it runs a Polyak average of the actor, moved by this factor per actor update (not in paper)
    actor_lr: float = 3e-4  # Adam learning rate of the actor (not in paper)
    critic_lr: float = 3e-4  # Adam learning rate of the critics (not in paper)
    grad_clip: float = 10.0  # max global gradient norm per network (not in paper)
    # ---- learner loop -------------------------------------------------------------------------------
    batch_size: int = 128  # transitions per gradient step (not in paper; 128 runs 1.8x the updates/s of 256 on one CPU core with the same learning curve)
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
        check_int_tuple(self, "actor_hidden", 1)
        check_int_tuple(self, "critic_hidden", 1)
        check_float(self, "residual_init_scale", 0.0)
        check_float(self, "sigma", 0.0)
        check_float(self, "target_noise_clip", 0.0)
        check_float(self, "noise_correlation", 0.0, 1.0)
        check_float(self, "ref_dropout", 0.0, 1.0)
        check_float(self, "beta", 0.0)
        check_float(self, "gamma", 0.0, 1.0)
        check_float(self, "return_min")
        check_float(self, "return_max")
        if self.return_max <= self.return_min:
            raise ValueError(f"RLTConfig: return_max {self.return_max} must be > return_min {self.return_min}")
        check_float(self, "tau", 0.0, 1.0, lo_open=True)
        check_float(self, "actor_ema", 0.0, 1.0)
        check_float(self, "action_min_std", 0.0, None, lo_open=True)
        check_float(self, "actor_lr", 0.0, None, lo_open=True)
        check_float(self, "critic_lr", 0.0, None, lo_open=True)
        check_float(self, "grad_clip", 0.0, None, lo_open=True)
        for name in ("critic_layer_norm", "residual_actor", "use_reference", "dropout_keeps_anchor",
                     "reference_follows_progress", "shared_action_std"):
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

    def network_dims(self) -> dict:
        """The fields a checkpoint's networks (and the normaliser fitted for them) depend on (a mismatch on
        resume is an error: a resumed normaliser is never refitted, so a changed action scale would be ignored)."""
        keys = ("chunk_size", "action_dim", "token_dim", "proprio_dim", "actor_hidden", "critic_hidden",
                "critic_layer_norm", "num_critics", "residual_actor", "use_reference", "action_min_std",
                "shared_action_std")
        return {k: self.to_dict()[k] for k in keys}
