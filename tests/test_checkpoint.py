"""Checkpoints and resume: a run killed with SIGKILL and resumed ends bit-identical to an
uninterrupted one; a damaged latest checkpoint falls back to the previous; a checkpoint of a
different run is refused naming the difference, and nothing is overwritten."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _sigkill import sigkill_after_checkpoint, tree_digest, truncate_state

import pgjax
import pgjax.cli
from pgjax.checkpoint import Checkpointer, CheckpointMismatch, CheckpointOptions, first_difference
from pgjax.engine import CHECKPOINT_DIR

TINY = dict(num_envs=4, num_steps=32, num_epochs=2, num_minibatches=4,
            total_timesteps=4 * 32 * 12)
SETS = [f"{k}={v}" for k, v in TINY.items()]
SEEDS = 2


@pytest.fixture(scope="module")
def config():
    return pgjax.make_config("ppo", "CartPole-v1", **TINY)


@pytest.fixture(scope="module")
def uninterrupted(config, tmp_path_factory):
    """The reference: the same run, never stopped (12 updates in chunks of one)."""
    out = tmp_path_factory.mktemp("uninterrupted")
    return out, pgjax.train(config, seeds=SEEDS, out=out, progress=False, checkpoint=False)


def assert_same_run(result, reference):
    for a, b in zip(jax.tree.leaves(result.final_state), jax.tree.leaves(reference.final_state)):
        if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for name in pgjax.METRICS:  # NaNs (no episode ended, kl_new_old) compare equal
        np.testing.assert_array_equal(result.metrics[name], reference.metrics[name], name)


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_identical(config, uninterrupted, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "ppo", "CartPole-v1", "--seeds", str(SEEDS), "--out", str(out), "--quiet",
            "--checkpoint-every-updates", "2", "--set", *SETS]
    owners = []

    def second_run_is_refused(pid):  # the directory is the running process's
        capsys.readouterr()
        assert pgjax.cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"is in use by pgjax process {pid} on " in err, err
        owners.append(pid)

    sigkill_after_checkpoint(argv, 6, tmp_path, while_running=second_run_is_refused)
    assert owners and not (out / "metrics.csv").exists()  # it really died mid-run
    assert Checkpointer(out / CHECKPOINT_DIR).steps() == [2, 4, 6]

    with pytest.warns(UserWarning, match=f"took over the lock of pgjax process {owners[0]} "):
        resumed = pgjax.resume(out, progress=False)  # the dead process's lock
    assert resumed.summary["resumed_at_update"] == 6
    assert_same_run(resumed, uninterrupted[1])
    # The run files are the uninterrupted run's, every metric of every update included.
    reference_dir = uninterrupted[0]
    assert (out / "metrics.csv").read_text() == (reference_dir / "metrics.csv").read_text()
    assert (out / "policy.msgpack").read_bytes() == (reference_dir / "policy.msgpack").read_bytes()


@pytest.fixture(scope="module")
def checkpointed(config, tmp_path_factory):
    """A finished run that checkpointed every 4 updates (steps 4, 8, 12 kept)."""
    out = tmp_path_factory.mktemp("checkpointed")
    pgjax.train(config, seeds=SEEDS, out=out, progress=False,
                checkpoint=CheckpointOptions(every_seconds=None, every_updates=4, keep=3))
    return out


def test_damaged_latest_checkpoint_falls_back_to_the_previous(checkpointed, uninterrupted,
                                                              tmp_path):
    out = tmp_path / "run"
    import shutil

    shutil.copytree(checkpointed, out)
    assert Checkpointer(out / CHECKPOINT_DIR).steps() == [4, 8, 12]
    truncate_state(out / CHECKPOINT_DIR / "12")  # the newest checkpoint
    with pytest.warns(UserWarning, match="checkpoint 12 .* is damaged .* falling back"):
        resumed = pgjax.resume(out, progress=False)
    assert resumed.summary["resumed_at_update"] == 8
    assert_same_run(resumed, uninterrupted[1])
    assert (out / "damaged" / f"{CHECKPOINT_DIR}-12").is_dir()  # set aside, not deleted
    assert Checkpointer(out / CHECKPOINT_DIR).steps() == [4, 8, 12]  # 12 written anew


def test_flipped_bytes_fail_the_checksum(checkpointed, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(checkpointed, out)
    checkpoints = Checkpointer(out / CHECKPOINT_DIR)
    like = jax.eval_shape(jax.vmap(pgjax.make_trainer(pgjax.make_config(
        "ppo", "CartPole-v1", **TINY)).init), jax.random.split(jax.random.key(0), SEEDS))
    good = checkpoints.restore(12, like)
    assert good.step == 12 and set(good.history) == set(pgjax.METRICS)
    assert good.history["env_steps"].shape == (SEEDS, 12)
    # A checkpoint whose state does not hash to the saved checksum is refused.
    meta_file = out / CHECKPOINT_DIR / "12" / "meta" / "metadata"
    meta_file.write_text(meta_file.read_text().replace('"checksum": "', '"checksum": "0'))
    with pytest.raises(ValueError, match="checksum"):
        Checkpointer(out / CHECKPOINT_DIR).restore(12, like)


def test_mismatched_config_is_refused_and_nothing_is_overwritten(config, checkpointed):
    before = tree_digest(checkpointed)
    with pytest.raises(CheckpointMismatch, match=r"config\.learning_rate is 0\.0005 there and "
                                                 r"0\.001 here; nothing was changed"):
        pgjax.train(config.replace(learning_rate=1e-3), seeds=SEEDS, out=checkpointed,
                    progress=False, resume=True)
    with pytest.raises(CheckpointMismatch, match="seeds is 2 there and 1 here"):
        pgjax.train(config, seeds=1, out=checkpointed, progress=False, resume=True)
    with pytest.raises(CheckpointMismatch, match="config.num_envs is 4 there and 8 here"):
        pgjax.train(config.replace(num_envs=8), seeds=SEEDS, out=checkpointed, progress=False,
                    resume=True)
    # A new run over the checkpoints is refused too (CLI: one line, status 2).
    assert pgjax.cli.main(["train", "ppo", "CartPole-v1", "--out", str(checkpointed),
                           "--quiet", "--set", *SETS]) == 2
    assert tree_digest(checkpointed) == before


def test_resume_of_a_directory_without_checkpoints_is_one_line(tmp_path, capsys):
    assert pgjax.cli.main(["resume", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "has no readable checkpoint" in err


def test_checkpoint_schedule():
    every = Checkpointer("/nonexistent", CheckpointOptions(every_seconds=None, every_updates=3))
    every.start(0)
    assert [s for s in range(1, 10) if every.due(s) and every.start(s) is None] == [3, 6, 9]
    timed = Checkpointer("/nonexistent", CheckpointOptions(every_seconds=3600))
    timed.start(0)
    assert not timed.due(5) and timed.due(5, final=True)
    with pytest.raises(ValueError, match="keep: 0 must be a positive integer"):
        CheckpointOptions(keep=0)


def test_typed_keys_and_differences_round_trip(tmp_path):
    state = {"key": jax.random.split(jax.random.key(3), 2), "x": jnp.arange(4.0)}
    checkpoints = Checkpointer(tmp_path, CheckpointOptions(async_save=False))
    checkpoints.save(1, state, {"m": np.ones((2, 1))}, {"identity": {"a": 1}})
    back = checkpoints.restore(1, state)
    assert jax.random.key_impl(back.state["key"]) == jax.random.key_impl(state["key"])
    np.testing.assert_array_equal(jax.random.key_data(back.state["key"]),
                                  jax.random.key_data(state["key"]))
    assert back.meta["identity"] == {"a": 1}
    checkpoints.close()
    assert first_difference({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}}) == \
        "a.c is 2 there and 3 here"
    assert first_difference({"a": [1, 2]}, {"a": (1, 2)}) is None
