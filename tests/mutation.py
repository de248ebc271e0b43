"""The mutation check: deliberate bugs in the engine, each run against the fast tests.

Every mutation replaces one exact piece of text (which must occur exactly once) in one file of a
temporary copy of the repository; every test but the long learning runs (``-m "not
learning"``) then runs against that copy, the tests most likely to notice first, stopping at the first failure. A mutation the tests let through
is a missing test. Not part of the default test run (pytest collects ``test_*.py`` only)::

    python tests/mutation.py                 # every mutation; prints a table and the score
    python tests/mutation.py --list          # the mutations, nothing run
    python tests/mutation.py --only NAME ...  # some of them
    python tests/mutation.py --check         # the patterns still apply (no test run)

Add a mutation with every engine change: (name, file, old text, new text, the test files that
should kill it — they run first, then every other test but the learning runs).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]


class Mutation(NamedTuple):
    name: str
    file: str
    old: str
    new: str
    first: tuple[str, ...]  #: test files to run before the rest


MUTATIONS = [
    # --- the rollout and the time-limit bootstrap ---
    Mutation("rollout values the post-reset observation at episode ends", "pgjax/rollout.py",
             'next_obs=info["final_observation"],', "next_obs=next_obs,",
             ("tests/test_engine.py",)),
    Mutation("time limits treated as terminal (no bootstrap at truncation)", "pgjax/trainer.py",
             "traj.terminated,\n               traj.done,", "traj.done,\n               traj.done,",
             ("tests/test_engine.py",)),
    Mutation("terminal states bootstrapped", "pgjax/trainer.py",
             "traj.terminated,\n               traj.done,",
             "jnp.zeros_like(traj.terminated),\n               traj.done,",
             ("tests/test_engine.py",)),
    Mutation("reward scale ignored", "pgjax/trainer.py",
             "gae(traj.reward * config.reward_scale,", "gae(traj.reward,",
             ("tests/test_engine.py",)),
    Mutation("GAE trace not cut at episode ends", "pgjax/advantages.py",
             "(deltas, not_done), reverse=True", "(deltas, jnp.ones_like(not_done)), reverse=True",
             ("tests/test_gae.py",)),
    Mutation("GAE without λ", "pgjax/advantages.py",
             "delta + gamma * lambda_ * continues", "delta + gamma * continues",
             ("tests/test_gae.py",)),
    # --- episode statistics and normalisation ---
    Mutation("episode statistics not reset at episode end", "pgjax/envs/core.py",
             "jnp.where(done, 0.0, episode_return),", "episode_return,",
             ("tests/test_engine.py",)),
    Mutation("episodic return averaged over every step, not the ended episodes",
             "pgjax/trainer.py", "(value * done).sum() / safe", "value.mean()",
             ("tests/test_engine.py",)),
    Mutation("final observation left unnormalised", "pgjax/envs/normalize.py",
             '"final_observation": self.normalize(moments, info["final_observation"])',
             '"final_observation": info["final_observation"]', ("tests/test_engine.py",)),
    Mutation("final observation normalised with the previous statistics",
             "pgjax/envs/normalize.py",
             '"final_observation": self.normalize(moments, info["final_observation"])',
             '"final_observation": self.normalize(state.moments, info["final_observation"])',
             ("tests/test_engine.py",)),
    Mutation("observation statistics not shared across envs", "pgjax/envs/normalize.py",
             "mean = jax.lax.pmean(x, axis_name)", "mean = x", ("tests/test_normalize.py",)),
    # --- the loss ---
    Mutation("entropy bonus with the wrong sign", "pgjax/updates.py",
             "+ config.ent_coef * ent_loss", "- config.ent_coef * ent_loss",
             ("tests/test_engine.py",)),
    Mutation("value coefficient dropped", "pgjax/updates.py",
             "+ config.vf_coef * v_loss", "+ v_loss", ("tests/test_engine.py",)),
    Mutation("value loss without the clip", "pgjax/updates.py",
             "    return config.clip_epsilon if config.clip_value_loss else None",
             "    return None", ("tests/test_engine.py",)),
    Mutation("no per-minibatch advantage normalisation", "pgjax/updates.py",
             "    return advantages_lib.normalize(advantage) if config.normalize_advantages "
             "else advantage",
             "    return advantage", ("tests/test_engine.py",)),
    Mutation("ratio inverted (π_old/π)", "pgjax/losses.py",
             "log_ratio = log_prob - old_log_prob", "log_ratio = old_log_prob - log_prob",
             ("tests/test_engine.py", "tests/test_drifts_losses.py")),
    Mutation("PPO clip range one-sided", "pgjax/drifts.py",
             "jnp.clip(ratio, 1.0 - epsilon, 1.0 + epsilon)", "jnp.clip(ratio, 0.0, 1.0 + epsilon)",
             ("tests/test_drifts.py",)),
    Mutation("explained variance over the predictions' variance", "pgjax/losses.py",
             "1.0 - jnp.var(targets - predictions) / var_targets",
             "1.0 - jnp.var(targets - predictions) / jnp.var(predictions)",
             ("tests/test_engine.py",)),
    # --- the optimiser ---
    Mutation("no global-norm gradient clip", "pgjax/updates.py",
             "optax.clip_by_global_norm(config.max_grad_norm),\n        optax.adam(",
             "optax.identity(),\n        optax.adam(", ("tests/test_engine.py",)),
    Mutation("learning rate decayed per gradient step, not per update", "pgjax/updates.py",
             "1.0 - (count // steps_per_update) / config.num_updates)",
             "1.0 - count / config.num_updates)", ("tests/test_engine.py",)),
    Mutation("learning rate never annealed", "pgjax/updates.py",
             "    if config.anneal_lr:\n        def learning_rate(count):",
             "    if False:\n        def learning_rate(count):", ("tests/test_engine.py",)),
    # --- MDPO ---
    Mutation("MDPO step size 1 − k/K (not 1 − (k − 1)/K)", "pgjax/drifts.py",
             "return 1.0 - progress + 1.0 / num_updates", "return 1.0 - progress",
             ("tests/test_algorithms.py", "tests/test_mdpo.py")),
    Mutation("MDPO KL direction old‖new", "pgjax/algorithms/mdpo.py",
             "kl = policy.kl(old_policy)", "kl = old_policy.kl(policy)",
             ("tests/test_mdpo.py",)),
    Mutation("MDPO advantages not standardised", "pgjax/algorithms/mdpo.py",
             "    advantage = loss_advantage(batch.advantage, config)\n    flat, unravel",
             "    advantage = batch.advantage\n    flat, unravel", ("tests/test_mdpo.py",)),
    Mutation("MDPO takes num_epochs policy steps", "pgjax/algorithms/mdpo.py",
             "length=config.hparams.policy_steps)", "length=config.num_epochs)",
             ("tests/test_mdpo.py",)),
    Mutation("MDPO value phase result dropped", "pgjax/algorithms/mdpo.py",
             "return params.replace(actor=actor, critic=critic), MDPOState(actor_adam, critic_adam)",
             "return params.replace(actor=actor), MDPOState(actor_adam, state.critic_adam)",
             ("tests/test_mdpo.py",)),
    # --- TRPO ---
    Mutation("TRPO step a quarter of the KL radius", "pgjax/algorithms/trpo.py",
             "return jnp.where(ok, scale * x, 0.0), residual",
             "return jnp.where(ok, 0.25 * scale * x, 0.0), residual",
             ("tests/test_engine.py", "tests/test_trpo.py")),
    Mutation("TRPO keeps a rejected step", "pgjax/algorithms/trpo.py",
             "return jnp.where(accepted, candidate, old_params), accepted, trials",
             "return candidate, accepted, trials", ("tests/test_trpo.py",)),
    Mutation("TRPO KL direction new‖old", "pgjax/algorithms/trpo.py",
             "kl = old_policy.kl(policy).mean()", "kl = policy.kl(old_policy).mean()",
             ("tests/test_trpo.py",)),
    # --- FixPO ---
    Mutation("FixPO without the β·KL penalty in the primary loss", "pgjax/algorithms/fixpo.py",
             "penalty = beta * kl.mean()", "penalty = 0.0 * beta * kl.mean()",
             ("tests/test_fixpo.py",)),
    Mutation("FixPO fix-up updates β from the post-step KL", "pgjax/algorithms/fixpo.py",
             "return (actor, actor_adam, *beta_step(beta, beta_adam, max_kl))",
             "return (actor, actor_adam, *beta_step(beta, beta_adam, mean_kl(actor)[1].max()))",
             ("tests/test_fixpo.py",)),
    Mutation("FixPO fix-up stops at 10× the bound", "pgjax/algorithms/fixpo.py",
             "violates = max_kl > config.hparams.eps_kl",
             "violates = max_kl > 10 * config.hparams.eps_kl",
             ("tests/test_fixpo.py",)),
    Mutation("FixPO clips by the actor's gradient norm alone", "pgjax/algorithms/fixpo.py",
             "norm = jnp.sqrt(jnp.sum(g_actor ** 2) + jnp.sum(g_critic ** 2))",
             "norm = jnp.sqrt(jnp.sum(g_actor ** 2))", ("tests/test_fixpo.py",)),
    # --- keys and the log-ratio ---
    Mutation("engine keeps the padded runs' metrics", "pgjax/engine.py",
             "chunks.append({k: np.asarray(v)[:runs] for", "chunks.append({k: np.asarray(v) for",
             ("tests/test_training.py",)),
    Mutation("padding puts runs out of order", "pgjax/distributed.py",
             "    return np.arange(padded) % runs", "    return np.arange(padded)[::-1] % runs",
             ("tests/test_training.py",)),
    Mutation("fault reported one update late", "pgjax/engine.py",
             "what, done + 1 + update,", "what, done + 2 + update,", ("tests/test_faults.py",)),
    Mutation("resume drops the metrics before the checkpoint", "pgjax/engine.py",
             "        chunks = [history]\n", "        chunks = []\n",
             ("tests/test_checkpoint.py",)),
    Mutation("GRU state not reset at episode starts", "pgjax/recurrent.py",
             "    return jnp.where(reset[..., None], jnp.zeros_like(h), h)", "    return h",
             ("tests/test_recurrent.py",)),
    Mutation("recurrent update re-runs sequences from a zero state", "pgjax/trainer.py",
             "batch_major(resets), state.memory)",
             "batch_major(resets), jax.tree.map(jnp.zeros_like, state.memory))",
             ("tests/test_recurrent.py",)),
    Mutation("critic's cell state not carried to the next rollout", "pgjax/recurrent.py",
             "return values, next_values, reset_state(last, last_done)",
             "return values, next_values, jnp.zeros_like(last)", ("tests/test_recurrent.py",)),
    Mutation("V(s') read from a fresh cell state, not the state after step t",
             "pgjax/recurrent.py",
             'after = gru_step(critic_params["gru"], hs,',
             'after = gru_step(critic_params["gru"], jnp.zeros_like(hs),',
             ("tests/test_recurrent.py",)),
    Mutation("make_policy's act drops the cell state", "pgjax/policy.py",
             "distribution, memory = network.policy_step(",
             "distribution, _ = network.policy_step(", ("tests/test_recurrent.py",)),
    Mutation("FixPO fix-up minibatches of fixup_minibatch_size env sequences",
             "pgjax/algorithms/fixpo.py",
             "return max(1, size // config.num_steps) if config.recurrent else size",
             "return size", ("tests/test_recurrent.py",)),
    Mutation("DPO rebuilds log r from r", "pgjax/algorithms/dpo.py",
             "hp.dpo_beta, log_ratio=x.log_ratio)", "hp.dpo_beta)", ("tests/test_log_ratio.py",)),
    # --- env families ---
    Mutation("Playground time limit one step late", "pgjax/envs/playground_adapter.py",
             "truncated = steps >= self.episode_length", "truncated = steps > self.episode_length",
             ("tests/test_playground.py",)),
    Mutation("Playground action repeat keeps the last reward only",
             "pgjax/envs/playground_adapter.py",
             "reward = reward + playground_state.reward", "reward = playground_state.reward",
             ("tests/test_playground.py",)),
    Mutation("pooled reset hands every finished env the first pool state", "pgjax/envs/core.py",
             "entry = (jnp.cumsum(done.astype(jnp.int32)) - 1) % size",
             "entry = jnp.zeros(done.shape, jnp.int32)", ("tests/test_pooled_reset.py",)),
    Mutation("pooled reset computes a reset for every env", "pgjax/envs/core.py",
             "jax.vmap(reset), placeholder, key[:size])",
             "jax.vmap(reset), placeholder, key)", ("tests/test_pooled_reset.py",)),
    Mutation("pooled reset generates its pool at every step", "pgjax/envs/core.py",
             "pool = jax.lax.cond(jnp.any(done), jax.vmap(reset), placeholder, key[:size])",
             "pool = jax.vmap(reset)(key[:size])", ("tests/test_pooled_reset.py",)),
    Mutation("hidden layers ignore the configured activation", "pgjax/networks.py",
             "nonlinearity = ACTIVATIONS[activation]", 'nonlinearity = ACTIVATIONS["tanh"]',
             ("tests/test_networks.py",)),
    Mutation("physics traced at the default matmul precision", "pgjax/envs/brax_adapter.py",
             "return jax.default_matmul_precision(self.matmul_precision)",
             'return jax.default_matmul_precision("default")', ("tests/test_playground.py",)),
    Mutation("Playground preset takes Brax's 32 minibatches per rollout", "pgjax/algorithms/ppo.py",
             "num_envs=2048, num_steps=30, num_epochs=16, num_minibatches=2,",
             "num_envs=2048, num_steps=30, num_epochs=16, num_minibatches=32,",
             ("tests/test_playground.py",)),
    Mutation("asymmetric actor reads the privileged features too", "pgjax/networks.py",
             "features = features[..., :self.actor_features]", "features = features",
             ("tests/test_playground.py",)),
    Mutation("CLI never uses the compilation cache", "pgjax/cli.py",
             'if not getattr(args, "no_compile_cache", True):', "if False:",
             ("tests/test_devices.py",)),
    Mutation("no compiling line before the progress bar", "pgjax/progress.py",
             "    if not show:\n        yield\n        return",
             "    if True:\n        yield\n        return",
             ("tests/test_devices.py",)),
    Mutation("Craftax time limit treated as a death", "pgjax/envs/craftax_adapter.py",
             "is_terminal(state, self.untimed_params)", "is_terminal(state, self.params)",
             ("tests/test_craftax.py",)),
    Mutation("env-reported episode info dropped by the rollout", "pgjax/rollout.py",
             'episode_info={name: info[name] for name in getattr(env, "episode_info", ())},',
             "episode_info={},", ("tests/test_craftax.py",)),
    # --- bad input: refused on the host, in one line ---
    Mutation("counts beyond int32 accepted (total_timesteps 1e30 hangs)", "pgjax/validation.py",
             "    if value > INT32_MAX:  # e.g. env_steps", "    if False:  # e.g. env_steps",
             ("tests/test_bad_inputs.py",)),
    Mutation("an empty grid accepted (zero runs)", "pgjax/checks.py",
             "        if not values:\n            raise ValueError(f\"grid.{key}",
             "        if False:\n            raise ValueError(f\"grid.{key}",
             ("tests/test_bad_inputs.py",)),
    Mutation("argparse errors print the usage block too", "pgjax/cli_args.py",
             "self.exit(2, f\"{self.prog}: error: {' '.join(message.split())}\\n\")",
             "super().error(message)", ("tests/test_bad_inputs.py",)),
    Mutation("metrics that no group reports accepted", "pgjax/sweeps.py",
             "unknown = [m for m in spec.metrics if m not in reported]", "unknown = []",
             ("tests/test_bad_inputs.py",)),
    # --- file-system faults and the run-directory lock ---
    Mutation("a live run's directory lock not enforced", "pgjax/run_lock.py",
             "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)", "fcntl.LOCK_EX",
             ("tests/test_checkpoint.py",)),
    Mutation("a failed checkpoint save ignored (the run goes on)", "pgjax/checkpoint.py",
             "        raise WriteFault(message) from None", "        return",
             ("tests/test_run_faults.py",)),
    Mutation("temporary checkpoint directories left behind", "pgjax/checkpoint.py",
             "            shutil.rmtree(path, ignore_errors=True)", "            pass",
             ("tests/test_run_faults.py",)),
    Mutation("orbax's log records reach the terminal", "pgjax/checkpoint_log.py",
             "        _append(_open[-1], text)\n        return False",
             "        _append(_open[-1], text)\n        return True",
             ("tests/test_run_faults.py",)),
    Mutation("a checkpoint directory removed under the run goes unnoticed",
             "pgjax/checkpoint.py",
             "if self._manager is not None and not self.directory.is_dir():",
             "if False:", ("tests/test_run_faults.py",)),
    Mutation("chunk_length misses the divisors above sqrt(n)", "pgjax/engine.py",
             "    divisors = small + [num_updates // d for d in small]", "    divisors = small",
             ("tests/test_run_faults.py",)),
    Mutation("the last, shorter chunk runs a whole chunk", "pgjax/engine.py",
             "steps = min(length, num_updates - done)", "steps = length",
             ("tests/test_run_faults.py",)),
    Mutation("chunk_length takes a divisor only within a factor 2 (a second program for 244 "
             "updates)", "pgjax/engine.py",
             "return best if abs(math.log(best / target)) <= math.log(4) else",
             "return best if abs(math.log(best / target)) <= math.log(2) else",
             ("tests/test_run_faults.py",)),
    # --- the program store ---
    Mutation("the stored program's digest ignores the configs", "pgjax/programs.py",
             '"description": description,', '"description": description.get("program"),',
             ("tests/test_programs.py",)),
    Mutation("a user's env is stored (its code unseen by the digest)", "pgjax/engine.py",
             "and not is_user_registered(c.env)", "",
             ("tests/test_programs.py",)),
    Mutation("the last, shorter chunk loads the whole chunk's stored program",
             "pgjax/engine.py", 'f"chunk of {steps}"', '"chunk"',
             ("tests/test_programs.py",)),
    # --- the update's randomness in few RNG calls, minibatches for the SGD scan ---
    Mutation("rollout's categorical actions drawn without their Gumbel noise (greedy)",
             "pgjax/rollout.py", "jnp.argmax(noise + policy.logits, axis=-1)",
             "jnp.argmax(policy.logits, axis=-1)", ("tests/test_rollout_noise.py",)),
    Mutation("rollout's Gaussian actions drawn with σ = 1", "pgjax/rollout.py",
             "policy.mean + jnp.exp(policy.log_std) * noise", "policy.mean + noise",
             ("tests/test_rollout_noise.py",)),
    Mutation("minibatch advantages normalised over the whole update, not per minibatch",
             "pgjax/updates.py", "jax.vmap(advantages_lib.normalize)(stacked.advantage)",
             "advantages_lib.normalize(stacked.advantage)", ("tests/test_rollout_noise.py",)),
    Mutation("rollout splits keys that are already the rollout's", "pgjax/rollout.py",
             "if typed_key(key).shape == (num_steps, num_envs + 1):", "if False:",
             ("tests/test_rollout_noise.py",)),
    # --- pgjax's XLA options (LLVM -O1 on CPU) ---
    Mutation("traced programs compiled without pgjax's compiler options", "pgjax/programs.py",
             "self.jitted.lower(*self.args).compile(compiler_options())",
             "self.jitted.lower(*self.args).compile()", ("tests/test_programs.py",)),
    Mutation("stored programs compiled without pgjax's compiler options", "pgjax/programs.py",
             "*jax.tree.leaves(self.args)).compile(compiler_options())",
             "*jax.tree.leaves(self.args)).compile()", ("tests/test_programs.py",)),
    Mutation("compiler options ignore jax_disable_most_optimizations", "pgjax/programs.py",
             ' or jax.config.read("jax_disable_most_optimizations"):', ":",
             ("tests/test_programs.py",)),
    Mutation("tree-reduction pass left on", "pgjax/programs.py",
             'DISABLED_PASSES = ("tree_reduction_rewriter",)', "DISABLED_PASSES = ()",
             ("tests/test_programs.py",)),
    Mutation("passes XLA_FLAGS disables dropped", "pgjax/programs.py",
             "return tuple(dict.fromkeys(users + list(DISABLED_PASSES)))",
             "return tuple(DISABLED_PASSES)", ("tests/test_programs.py",)),
    Mutation("categorical log-prob masks the next action", "pgjax/distributions.py",
             "chosen = jnp.arange(log_p.shape[-1]) == action[..., None].astype(jnp.int32)",
             "chosen = jnp.arange(log_p.shape[-1]) == (action[..., None].astype(jnp.int32) + 1) % log_p.shape[-1]",
             ("tests/test_distributions.py",)),
    Mutation("ratio metrics named in the wrong order", "pgjax/losses.py",
             'names = ("drift", "approx_kl", "clipfrac", "ratio_deviation")',
             'names = ("drift", "approx_kl", "ratio_deviation", "clipfrac")',
             ("tests/test_drifts_losses.py",)),
    Mutation("masked means divide by every sample", "pgjax/losses.py",
             "/ jnp.maximum(jnp.sum(where, axis=axis), 1)", "/ where.size",
             ("tests/test_drifts_losses.py",)),
    # --- few rows through a narrow layer as products and a sum ---
    Mutation("small layers summed over the wrong axis", "pgjax/networks.py",
             "(x[..., :, None] * w).sum(axis=-2) + b", "(x[..., :, None] * w).sum(axis=-1)[..., None] + b",
             ("tests/test_networks.py",)),
    Mutation("small layers' bias left out", "pgjax/networks.py",
             "(x[..., :, None] * w).sum(axis=-2) + b", "(x[..., :, None] * w).sum(axis=-2)",
             ("tests/test_networks.py",)),
    # --- gymnax's auto-reset prepared before the rollout's scan ---
    Mutation("prepared gymnax step resets with the stepped state's key half", "pgjax/envs/gymnax_adapter.py",
             "key_step, key_reset = split_key(key, 2)", "key_reset, key_step = split_key(key, 2)",
             ("tests/test_prepared_step.py",)),
    Mutation("prepared gymnax step ignores time limits", "pgjax/envs/gymnax_adapter.py",
             "done = jnp.logical_or(terminated, truncated)", "done = terminated",
             ("tests/test_prepared_step.py",)),
    Mutation("prepared gymnax step keeps the stepped observation at resets",
             "pgjax/envs/gymnax_adapter.py",
             "next_obs = jax.lax.select(done, prepared.reset_obs, obs)", "next_obs = obs",
             ("tests/test_prepared_step.py",)),
    Mutation("AutoReset forwards prepare_step (its key would not stay a key)", "pgjax/envs/core.py",
             'if name == "prepare_step" and not self.passes_key:', "if False:",
             ("tests/test_prepared_step.py",)),
    Mutation("rollout hands the env its raw keys, prepare_step unused", "pgjax/rollout.py",
             "return keys if prepare is None else jax.vmap(jax.vmap(prepare))(keys)",
             "return keys", ("tests/test_prepared_step.py", "tests/test_rollout_packing.py")),
    # --- jax.random's threefry draws written out (pgjax.keys) ---
    Mutation("threefry's first rotation off by one", "pgjax/keys.py",
             "_ROTATIONS = ((13, 15, 26, 6)", "_ROTATIONS = ((14, 15, 26, 6)", ("tests/test_keys.py",)),
    Mutation("threefry's key-schedule parity constant changed", "pgjax/keys.py",
             "k1 ^ k2 ^ jnp.uint32(0x1BD11BDA)", "k1 ^ k2 ^ jnp.uint32(0x1BD11BDB)",
             ("tests/test_keys.py",)),
    Mutation("threefry injects the round count off by one", "pgjax/keys.py",
             "schedule[(i + 2) % 3] + jnp.uint32(i + 1)", "schedule[(i + 2) % 3] + jnp.uint32(i)",
             ("tests/test_keys.py",)),
    Mutation("random bits from one threefry word only", "pgjax/keys.py",
             "return (hi ^ lo).reshape(shape)", "return lo.reshape(shape)", ("tests/test_keys.py",)),
    Mutation("pgjax's draws never written out (JAX's rolled loop every time)", "pgjax/keys.py",
             'return (str(jax.random.key_impl(key)) == "threefry2x32"',
             'return (False and str(jax.random.key_impl(key)) == "threefry2x32"',
             ("tests/test_keys.py",)),
    # --- the rollout's env state carried packed by dtype ---
    Mutation("packed state unpacked from the first columns for every leaf", "pgjax/packing.py",
             "packed[name][..., start:start + width]", "packed[name][..., :width]",
             ("tests/test_rollout_packing.py",)),
    Mutation("rollout carries its first packed state through every step", "pgjax/rollout.py",
             "return (pack(env_state), next_obs), transition",
             "return (packed_state, next_obs), transition", ("tests/test_rollout_packing.py",)),
    Mutation("rollout outputs packed whatever their size", "pgjax/rollout.py",
             "obs), inputs, max_bytes=PACKED_OUTPUT_BYTES", "obs), inputs, max_bytes=None",
             ("tests/test_rollout_packing.py",)),
    Mutation("scanned outputs stacked one by one", "pgjax/packing.py",
             "return carry, pack(outputs)", "return carry, outputs",
             ("tests/test_rollout_packing.py",)),
    Mutation("size limit of packed outputs ignored", "pgjax/packing.py",
             "if max_bytes is not None and size > max_bytes:", "if False:",
             ("tests/test_rollout_packing.py",)),
    Mutation("gradient steps stack their metrics one by one", "pgjax/updates.py",
             "(metrics, samples) = scan_packed(", "(metrics, samples) = jax.lax.scan(",
             ("tests/test_rollout_packing.py",)),
    Mutation("recurrent rollout carries its first packed state through every step",
             "pgjax/rollout.py", "return (pack(env_state), next_obs, h), transition",
             "return (packed_state, next_obs, h), transition", ("tests/test_recurrent.py",)),
]


def apply(mutation: Mutation, root: Path) -> None:
    """Apply ``mutation`` to the copy at ``root``; its text must occur exactly once."""
    path = root / mutation.file
    text = path.read_text()
    count = text.count(mutation.old)
    if count != 1:
        raise SystemExit(f"mutation {mutation.name!r}: its text occurs {count} times in "
                         f"{mutation.file} (must be once); update tests/mutation.py")
    path.write_text(text.replace(mutation.old, mutation.new))


def copy_repo(destination: Path) -> Path:
    """The package, the tests and the project files, copied to ``destination``."""
    for name in ("pgjax", "tests"):
        shutil.copytree(ROOT / name, destination / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, destination / name)
    for name in ("benchmarks", "notebooks"):  # some tests read them
        if (ROOT / name).exists():
            os.symlink(ROOT / name, destination / name)
    return destination


def run_tests(root: Path, first: tuple[str, ...], timeout: float) -> tuple[str, float, str]:
    """Run every test but the learning runs against the copy at ``root`` (``first`` before the rest), stopping
    at the first failure: ``("killed" | "survived" | "error" | "timeout", seconds, last line)``."""
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-m", "not learning", "-p",
               "no:cacheprovider", "-n", "0"]  # one process: the likely killers in order
    start = time.perf_counter()
    try:  # the likely killers alone first (no collection of the rest), then everything
        for paths in ([*first], ["tests"]):
            done = subprocess.run(command + paths, cwd=root, env=env, capture_output=True,
                                  text=True, timeout=timeout)
            if done.returncode != 0:
                break
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - start, ""
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    last = lines[-1] if lines else done.stderr.strip().splitlines()[-1:]
    outcome = {0: "survived", 1: "killed"}.get(done.returncode, "error")
    return outcome, time.perf_counter() - start, str(last)


def check_import(root: Path) -> None:
    """The copy, not the installed checkout, is what the tests import."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    where = subprocess.run([sys.executable, "-c", "import pgjax; print(pgjax.__file__)"],
                           cwd=root, env=env, capture_output=True, text=True).stdout.strip()
    if not where.startswith(str(root)):
        raise SystemExit(f"the tests would import pgjax from {where}, not the mutated copy")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--check", action="store_true",
                        help="check that every mutation applies, run no test")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="run the mutations whose name contains one of these")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds for one mutant's test run")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS
              if not args.only or any(s.lower() in m.name.lower() for s in args.only)]
    if args.list:
        for i, m in enumerate(chosen, 1):
            print(f"{i:2d}. {m.name}  ({m.file})")
        return 0
    results = []
    for i, mutation in enumerate(chosen, 1):
        with tempfile.TemporaryDirectory(prefix="pgjax-mutant-") as tmp:
            root = copy_repo(Path(tmp))
            apply(mutation, root)
            if args.check:
                continue
            if i == 1:
                check_import(root)
            outcome, seconds, last = run_tests(root, mutation.first, args.timeout)
        results.append((mutation, outcome, seconds))
        print(f"{i:2d}/{len(chosen)} {outcome:8s} {seconds:6.0f} s  {mutation.name}"
              f"{'' if outcome == 'killed' else '  — ' + last}", flush=True)
    if args.check:
        print(f"{len(chosen)} mutations apply")
        return 0
    killed = sum(outcome == "killed" for _, outcome, _ in results)
    print(f"\nkilled {killed} of {len(results)} ({100 * killed / max(len(results), 1):.0f}%)")
    for mutation, outcome, _ in results:
        if outcome != "killed":
            print(f"  {outcome}: {mutation.name} ({mutation.file})")
    return 0 if killed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
