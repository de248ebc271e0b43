"""Brax environments (``make("brax/<name>")``, the ``brax`` extra) under the pgjax protocol.

Brax's own ``AutoResetWrapper`` restarts every episode from one cached initial state and keeps
the pre-reset observation only implicitly (brax#275). pgjax instead steps the raw Brax env,
adds the time limit itself (``truncated`` at ``episode_length`` steps, like Brax's
``EpisodeWrapper`` flag ``info["truncation"]``), and wraps it in :class:`pgjax.envs.AutoReset`,
which draws a fresh reset per episode and hands back the true final observation.

Physics backend: ``backend="generalized"`` by default, Brax's own default, so results compare
with those reported on it. ``"spring"`` is much cheaper on CPU (16 inverted-pendulum envs
stepped in 0.14 ms against 0.90 ms, 16 hoppers in 0.21 against 1.8 ms, measured on 2 cores)
but is a different simulation: PPO with pgjax's defaults solved inverted_pendulum on
generalized (1000, 1000 on 2 seeds at 1M steps) and not on spring (785, 863).

Matmul precision: the physics (every ``reset`` and ``step`` of the Brax or Playground env) is
traced under ``jax.default_matmul_precision("highest")`` — full float32 matmuls — while pgjax's
networks keep the backend's default. On Ampere and newer NVIDIA GPUs the default float32
matmul is TF32 (10-bit mantissa), under which Playground's training degraded
(mujoco_playground#86; Playground's notebooks set "highest" for the whole program): the
simulation gets full precision wherever it runs, the networks TF32's speed. Not yet measured on
a GPU; to run the networks at full precision too, call
``jax.config.update("jax_default_matmul_precision", "highest")``. On a CPU both are float32
and nothing changes. ``matmul_precision="default"`` (or any name
``jax.default_matmul_precision`` takes) chooses otherwise for the physics.
"""

from __future__ import annotations

import importlib.util

import jax
import jax.numpy as jnp
from flax import struct

from pgjax.envs.core import AutoReset, Box
from pgjax.extras import install_hint, quiet_import, without_warp

DEFAULT_BACKEND = "generalized"
DEFAULT_EPISODE_LENGTH = 1000
PHYSICS_PRECISION = "highest"  #: matmul precision of the physics (module docstring)


def _import_brax_envs():
    if importlib.util.find_spec("brax") is None:
        raise ImportError(f"Brax environments need the brax extra: {install_hint('brax')}")
    with quiet_import(), without_warp():  # MJX's noise, and its Warp backend (pgjax.extras)
        import brax.envs

    return brax.envs


def brax_ids() -> list[str]:
    """The registered Brax env names (empty when brax is not installed)."""
    if importlib.util.find_spec("brax") is None:
        return []
    return sorted(_import_brax_envs()._envs)


@struct.dataclass
class BraxState:
    brax_state: object  #: brax.envs.State
    steps: jax.Array  #: steps taken in this episode


class BraxEnv:
    """A Brax environment without auto-reset; ``truncated`` once ``episode_length`` steps have
    been taken. Actions are continuous in [-1, 1]. (Also the base of Playground's adapter,
    whose ``State`` has Brax's fields.)"""

    def __init__(self, env, name: str, episode_length: int,
                 matmul_precision: str = PHYSICS_PRECISION):
        self.brax_env = env
        self.name = name
        self.episode_length = int(episode_length)
        self.matmul_precision = matmul_precision
        # Brax's ``env.observation_size`` runs a reset op by op (15 s for hopper on a CPU);
        # tracing it gives the same shape in half a second.
        self.raw_observation = jax.eval_shape(env.reset, jax.random.PRNGKey(0)).obs  #: shapes
        observation = jax.eval_shape(self.observation, self.raw_observation)
        self.observation_space = Box.make(-jnp.inf, jnp.inf, observation.shape)
        self.action_space = Box.make(-1.0, 1.0, (env.action_size,))

    def observation(self, raw_obs):
        """The policy's observation of the wrapped env's ``State.obs``."""
        return raw_obs

    def physics(self):
        """The context the physics is traced in: its matmul precision (module docstring)."""
        return jax.default_matmul_precision(self.matmul_precision)

    def reset(self, key):
        with self.physics():
            state = self.brax_env.reset(key)
        return BraxState(state, jnp.zeros((), jnp.int32)), self.observation(state.obs)

    def step(self, key, state, action):
        del key  # Brax dynamics are deterministic
        with self.physics():
            brax_state = self.brax_env.step(state.brax_state, action)
        steps = state.steps + 1
        terminated = jnp.asarray(brax_state.done) > 0.5
        truncated = steps >= self.episode_length
        info = {"final_observation": brax_state.obs}
        return (BraxState(brax_state, steps), brax_state.obs,
                jnp.asarray(brax_state.reward, jnp.float32), terminated, truncated, info)

    def __repr__(self):
        return f"BraxEnv({self.name})"


def make_brax(name: str, backend: str = DEFAULT_BACKEND,
              episode_length: int = DEFAULT_EPISODE_LENGTH,
              matmul_precision: str = PHYSICS_PRECISION, **kwargs) -> AutoReset:
    """``brax/<name>`` with pgjax's auto-reset, the physics at ``matmul_precision`` (module
    docstring); ``kwargs`` go to the Brax env constructor."""
    envs = _import_brax_envs()
    if name not in envs._envs:
        raise ValueError(f"env: unknown Brax environment {name!r} "
                         f"(known: {', '.join(sorted(envs._envs))})")
    if int(episode_length) < 1:
        raise ValueError(f"episode_length: {episode_length} must be a positive integer")
    check_precision(matmul_precision)
    with quiet_import(capture_output=False):  # Brax's "not actively maintained" warning
        env = envs.get_environment(name, backend=backend, **kwargs)
    return AutoReset(BraxEnv(env, f"brax/{name}", episode_length, matmul_precision))


def check_precision(name: str) -> str:
    """``name`` if ``jax.default_matmul_precision`` takes it, else a one-line ``ValueError``."""
    try:
        with jax.default_matmul_precision(name):
            pass
    except ValueError:
        raise ValueError(f"matmul_precision: {name!r} is not a matmul precision (e.g. highest, "
                         "high, default)") from None
    return name
