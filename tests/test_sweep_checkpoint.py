"""Sweep-group checkpoints: a sweep killed with SIGKILL mid-group, then resumed, ends
bit-identical to an uninterrupted sweep; a damaged group checkpoint falls back to the previous
one; checkpoints of a different spec are refused naming the field, and nothing is changed."""

import json
import shutil

import jax
import numpy as np
import pytest
import yaml
from _sigkill import sigkill_after_checkpoint, tree_digest, truncate_state

import pgjax
import pgjax.cli
from pgjax.checkpoint import Checkpointer, CheckpointMismatch, to_host
from pgjax.sweeps import load_spec, make_groups

# One group of 3 runs (3 seeds), padded to 4 on two host devices; 8 updates in chunks of one.
SPEC = dict(algos=["ppo"], envs=["CartPole-v1"], seeds=3, grid={"learning_rate": [3e-3]},
            set=dict(num_envs=4, num_steps=32, num_epochs=2, num_minibatches=4,
                     total_timesteps=4 * 32 * 8),
            num_chunks=8, checkpoint={"every_seconds": None, "every_updates": 2})
GROUP = make_groups(load_spec(SPEC))[0].id


def checkpoints_of(out):
    return Checkpointer(out / "groups" / GROUP / "checkpoints")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    return out, pgjax.sweep(SPEC, out=out, progress=False)


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """The same sweep in a `pgjax sweep` subprocess, SIGKILLed after its checkpoint at update
    4 of 8 (written every 2 updates)."""
    tmp = tmp_path_factory.mktemp("killed")
    (tmp / "spec.yaml").write_text(yaml.safe_dump(SPEC))
    out = tmp / "sweep"
    sigkill_after_checkpoint(["sweep", str(tmp / "spec.yaml"), "--out", str(out), "--quiet"], 4,
                             tmp)
    assert not (out / "groups" / GROUP / "group.json").exists()  # it died mid-group
    assert checkpoints_of(out).steps() == [2, 4]
    return out


def copy(killed, tmp_path):
    shutil.copytree(killed, tmp_path / "sweep")
    return tmp_path / "sweep"


def final_checkpoint(out):
    checkpoints = checkpoints_of(out)
    assert checkpoints.steps() == [8]  # a finished group keeps its final checkpoint only
    group = make_groups(load_spec(SPEC))[0]
    like = jax.eval_shape(jax.vmap(pgjax.make_trainer(group.configs[0]).init),
                          jax.random.split(jax.random.key(0), 3))
    return checkpoints.restore(8, like)


def assert_same_sweep(out, reference):
    """Same files, same final state of every run, same metrics, bit for bit."""
    for name in ("results.csv", "final.csv", f"groups/{GROUP}/metrics.csv"):
        assert (out / name).read_text() == (reference / name).read_text(), name
    a, b = final_checkpoint(out), final_checkpoint(reference)
    assert a.meta["checksum"] == b.meta["checksum"]
    for x, y in zip(jax.tree.leaves(to_host(a.state)), jax.tree.leaves(to_host(b.state))):
        np.testing.assert_array_equal(x, y)
    assert set(a.history) == set(b.history)
    for name in a.history:  # NaNs (updates without a finished episode) compare equal
        np.testing.assert_array_equal(a.history[name], b.history[name], name)


@pytest.mark.slow
def test_sigkill_mid_group_then_resume_is_bit_identical(killed, uninterrupted, tmp_path):
    out = copy(killed, tmp_path)
    assert pgjax.cli.main(["resume", str(out), "--quiet"]) == 0  # detects a sweep directory
    assert_same_sweep(out, uninterrupted[0])
    record = json.loads((out / "manifest.json").read_text())["groups"][0]
    assert record["status"] == "continued" and record["resumed_at_update"] == 4
    assert record["checkpoints_written"] == 2  # at updates 6 and 8
    assert uninterrupted[1].groups[0].record["checkpoints_written"] == 4


def test_damaged_group_checkpoint_falls_back(killed, uninterrupted, tmp_path):
    out = copy(killed, tmp_path)
    truncate_state(out / "groups" / GROUP / "checkpoints" / "4")  # the newest checkpoint
    with pytest.warns(UserWarning, match="checkpoint 4 .* is damaged .* falling back"):
        result = pgjax.sweep(SPEC, out=out, progress=False)  # re-running the spec resumes too
    assert result.groups[0].record["resumed_at_update"] == 2
    assert_same_sweep(out, uninterrupted[0])


def test_checkpoints_of_a_different_spec_are_refused(killed, tmp_path, capsys):
    out = copy(killed, tmp_path)
    before = tree_digest(out)
    with pytest.raises(CheckpointMismatch, match="chunk_length is 1 there and 2 here; "
                                                 "nothing was changed"):
        pgjax.sweep({**SPEC, "num_chunks": 4}, out=out, progress=False)
    assert pgjax.cli.main(["sweep", str(out / "spec.json"), "--out", str(out), "--quiet",
                           "--num-chunks", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "chunk_length is 1 there and 2 here" in err
    assert tree_digest(out) == before


def test_checkpoint_spec_key_is_validated():
    assert load_spec(SPEC).checkpoint == {"every_seconds": None, "every_updates": 2, "keep": 3,
                                          "async_save": True, "on_write_error": "stop"}
    assert load_spec(SPEC, checkpoint=False).checkpoint is False
    with pytest.raises(ValueError, match="^sweep: checkpoint: unknown option 'every'"):
        load_spec(SPEC, checkpoint={"every": 3})
    with pytest.raises(ValueError, match="^checkpoint keep: 0 must be a positive integer"):
        load_spec(SPEC, checkpoint={"keep": 0})
