"""System properties of the trainer and runner, on tiny configs compiled once per module."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pgjax
from pgjax.rollout import rollout

TINY = dict(num_envs=4, num_steps=32, num_epochs=2, num_minibatches=4, total_timesteps=4 * 32 * 6)


@pytest.fixture(scope="module")
def config():
    return pgjax.make_config("ppo", "CartPole-v1", **TINY)


@pytest.fixture(scope="module")
def keys():
    return jax.random.split(jax.random.key(7), 2)


@pytest.fixture(scope="module")
def vmapped(config, keys):
    return jax.jit(jax.vmap(pgjax.make_train(config)))(keys)


def _max_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_metrics_are_fixed_size_per_update(config, vmapped):
    _, metrics = vmapped
    assert set(metrics) == set(pgjax.METRICS)
    for name, value in metrics.items():
        assert value.shape == (2, config.num_updates), name
    np.testing.assert_array_equal(metrics["env_steps"][0],
                                  np.arange(1, config.num_updates + 1) * config.batch_size)


@pytest.mark.slow
def test_vmap_over_keys_equals_loop(config, keys, vmapped):
    train = jax.jit(pgjax.make_train(config))
    for i, key in enumerate(keys):
        state, metrics = train(key)
        assert _max_diff(jax.tree.map(lambda x: x[i], vmapped[0].params), state.params) < 1e-5
        np.testing.assert_allclose(metrics["value_loss"], vmapped[1]["value_loss"][i], rtol=1e-4)


@pytest.mark.slow
def test_vmap_over_two_learning_rates_compiles_once(config, keys):
    traces = []

    def train(cfg, key):
        traces.append(1)
        return pgjax.make_train(cfg)(key)

    configs = pgjax.stack_configs([config.replace(learning_rate=1e-4),
                                   config.replace(learning_rate=1e-2)])
    fn = jax.jit(jax.vmap(train))
    state, _ = fn(configs, keys)
    state, _ = fn(configs, keys)
    assert len(traces) == 1 and fn._cache_size() == 1
    # The two learning rates really trained differently from the same initial parameters.
    init = jax.vmap(pgjax.make_trainer(config).init)(keys)
    moved = [_max_diff(jax.tree.map(lambda x: x[i], state.params),
                       jax.tree.map(lambda x: x[i], init.params)) for i in range(2)]
    assert moved[1] > 5 * moved[0]


def test_stack_configs_refuses_different_shapes(config):
    with pytest.raises(ValueError, match="static"):
        pgjax.stack_configs([config, config.replace(num_envs=8)])


@pytest.mark.slow
def test_chunked_run_equals_single_scan_bit_for_bit(config):
    one = pgjax.train(config, seeds=2, num_chunks=1, progress=False, devices=jax.devices()[:1])
    three = pgjax.train(config, seeds=2, num_chunks=3, progress=False, devices=jax.devices()[:1])
    assert one.summary["chunks"] == 1 and three.summary["chunks"] == 3
    for a, b in zip(jax.tree.leaves(one.final_state.params),
                    jax.tree.leaves(three.final_state.params)):
        np.testing.assert_array_equal(a, b)
    for name in pgjax.METRICS:
        np.testing.assert_array_equal(one.metrics[name], three.metrics[name])


@pytest.mark.slow
def test_runner_trains_what_make_train_trains(config):
    result = pgjax.train(config, seeds=1, num_chunks=3, progress=False)
    state, metrics = jax.jit(pgjax.make_train(config))(jax.random.split(jax.random.key(0), 1)[0])
    assert _max_diff(state.params, jax.tree.map(lambda x: x[0], result.final_state.params)) < 1e-5
    np.testing.assert_allclose(metrics["value_loss"], result.metrics["value_loss"][0], rtol=1e-4)


@pytest.mark.slow
def test_runner_shards_seeds_over_devices(config, tmp_path):
    devices = jax.local_devices()
    if len(devices) < 2:
        pytest.skip("needs two local devices (pgjax asks XLA for one per CPU core)")
    # 3 seeds on 2 devices: padded with a copy of seed 0 to 4 runs, the copy dropped again.
    sharded = pgjax.train(config, seeds=3, out=tmp_path, num_chunks=2, progress=False,
                          devices=devices[:2])
    single = pgjax.train(config, seeds=3, num_chunks=2, progress=False, devices=devices[:1])
    assert len(sharded.summary["devices"]) == 2 and sharded.summary["padded_runs"] == 4
    assert sharded.metrics["env_steps"].shape == (3, config.num_updates)
    assert _max_diff(sharded.final_state.params, single.final_state.params) < 1e-5
    np.testing.assert_allclose(sharded.metrics["value_loss"], single.metrics["value_loss"],
                               rtol=1e-4)
    assert {p.name for p in tmp_path.iterdir()} == {"metrics.csv", "summary.json", "curve.png",
                                                "policy.msgpack", "checkpoints"}
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("seed,update,env_steps,episodic_return")
    assert len(lines) == 1 + 3 * config.num_updates


def test_continuous_actions_are_stored_unclipped():
    config = pgjax.make_config("ppo", "Pendulum-v1", **TINY)
    trainer = pgjax.make_trainer(config)
    state = trainer.init(jax.random.key(0))
    # A policy with a huge std: many samples fall outside the ±2 torque bounds.
    actor = {**state.params.actor, "log_std": jnp.full((1,), 2.0)}
    from pgjax.trainer import make_env
    from pgjax.networks import make_actor_critic

    env = make_env(config)
    net = make_actor_critic(env.observation_space, env.action_space, (64, 64), (64, 64))
    _, _, traj = rollout(env, net, actor, state.env_state, state.obs, jax.random.key(1), 16)
    assert float(jnp.abs(traj.action).max()) > 2.0
    np.testing.assert_allclose(traj.log_prob, net.policy(actor, traj.obs).log_prob(traj.action),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_tanh_head_stores_pre_tanh_actions_and_squashes_into_the_bounds():
    config = pgjax.make_config("ppo", "Pendulum-v1", action_head="tanh", **TINY)
    trainer = pgjax.make_trainer(config)
    state = trainer.init(jax.random.key(0))
    actor = {**state.params.actor, "log_std": jnp.full((1,), 2.0)}
    from pgjax.rollout import env_action
    from pgjax.trainer import make_env, make_network

    env = make_env(config)
    net = make_network(config, env)
    assert net.squash
    _, _, traj = rollout(env, net, actor, state.env_state, state.obs, jax.random.key(1), 16)
    assert float(jnp.abs(traj.action).max()) > 3.0  # pre-tanh u, not a torque
    torque = env_action(env.action_space, traj.action, squash=True)
    assert float(jnp.abs(torque).max()) <= 2.0
    np.testing.assert_allclose(torque, 2.0 * jnp.tanh(traj.action), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(traj.log_prob, net.policy(actor, traj.obs).log_prob(traj.action),
                               rtol=1e-5, atol=1e-5)
    _, metrics = jax.jit(trainer.update)(state)
    assert np.isfinite(float(metrics["entropy"])) and np.isfinite(float(metrics["policy_loss"]))


def test_minatar_trains_with_the_cnn_torso():
    config = pgjax.make_config("ppo", "Breakout-MinAtar", **TINY)
    assert config.torso == "cnn"  # decided for image observations, recorded in the config
    state, metrics = jax.jit(pgjax.make_train(config))(jax.random.key(0))
    assert state.params.actor["conv"][0]["w"].shape == (3, 3, 4, 16)
    assert all(np.isfinite(np.asarray(metrics[k])).all() for k in ("policy_loss", "value_loss"))


@pytest.mark.parametrize("overrides, field", [
    ({"learning_rate": -1.0}, "learning_rate"),
    ({"gamma": 1.5}, "gamma"),
    ({"num_minibatches": 7}, "num_minibatches"),
    ({"num_envs": 0}, "num_envs"),
    ({"actor_hidden": "64,-3"}, "actor_hidden"),
    ({"lr": 1e-3}, "lr"),
    ({"torso": "resnet"}, "torso"),
    ({"action_head": "beta"}, "action_head"),
])
def test_bad_config_is_one_line_error_naming_field(overrides, field):
    with pytest.raises(ValueError) as error:
        pgjax.make_config("ppo", "CartPole-v1", **overrides)
    message = str(error.value)
    assert message.startswith(field) and "\n" not in message


def test_cli_errors_exit_nonzero_with_one_line(capsys):
    from pgjax.cli import main

    for argv in (["train", "ppx", "CartPole-v1"], ["train", "ppo", "CartPol-v1"],
                 ["train", "ppo", "CartPole-v1", "--set", "learning_rate=-1"],
                 ["train", "ppo", "CartPole-v1", "--set", "num_minibatches=7"],
                 ["train", "ppo", "CartPole-v1", "--preset", "playground"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("pgjax: error:") and "\n" not in err


@pytest.mark.slow
def test_cli_train_writes_run_files(tmp_path, capsys):
    from pgjax.cli import main

    args = ["train", "ppo", "CartPole-v1", "--total-timesteps", "768", "--out", str(tmp_path),
            "--quiet", "--set"] + [f"{k}={v}" for k, v in TINY.items() if k != "total_timesteps"]
    assert main(args) == 0
    import json

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["final_return"]) == 1
    assert {"steps_per_second", "compile_seconds", "config", "versions"} <= set(summary)
    assert "final return" in capsys.readouterr().out


def test_cli_set_passes_env_options_to_the_env():
    from pgjax.cli_args import parse_sets

    assert parse_sets(["env.backend=spring", "env.episode_length=500", "num_envs=8"]) == {
        "num_envs": "8", "env_kwargs": {"backend": "spring", "episode_length": 500}}
    config = pgjax.make_config("ppo", "CartPole-v1", **parse_sets(["env.max_steps_in_episode=50"]))
    assert dict(config.env_kwargs) == {"max_steps_in_episode": 50}
