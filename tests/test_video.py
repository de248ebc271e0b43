"""Evaluation videos (pgjax.video): ``pgjax eval DIR --video FILE.gif`` writes one episode of seed
0's policy, one frame per step; the frame drawers; one-line refusals."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

import pgjax
from pgjax import envs, video
from pgjax.cli import main
from pgjax.config import config_from_dict
from pgjax.keys import typed_key
from pgjax.policy import POLICY_FILE, load_policies, make_policy


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("video") / "run"
    assert main(["train", "ppo", "CartPole-v1", "--total-timesteps", "2048", "--set",
                 "num_envs=4", "num_steps=16", "--out", str(out), "--quiet",
                 "--no-checkpoints"]) == 0
    return out


def gif_frames(path) -> list[np.ndarray]:
    from PIL import Image

    with Image.open(path) as image:
        frames = []
        for i in range(image.n_frames):
            image.seek(i)
            frames.append(np.asarray(image.convert("RGB")))
    return frames


def episode_length(run, seed=0) -> int:
    """The length of the episode ``record_video`` plays, counted by stepping the env in Python
    with the same keys (independent of the scan in pgjax.video)."""
    summary = json.loads((run / "summary.json").read_text())
    config = config_from_dict(summary["config"])
    policy = jax.tree.map(lambda x: x[0], load_policies(run / POLICY_FILE, config, 1))
    env, act = envs.make(config.env), make_policy(config, policy)

    @jax.jit
    def step(state, obs, key):
        key, key_act, key_env = jax.random.split(key, 3)
        state, obs, _, terminated, truncated, _ = env.step(key_env, state,
                                                           act(key_act, obs, False))
        return state, obs, key, terminated | truncated

    key_reset, key = jax.random.split(typed_key(jax.random.key(seed)))
    state, obs = env.reset(key_reset)
    for length in range(1, 501):
        state, obs, key, done = step(state, obs, key)
        if done:
            return length
    return 500


def pole_columns(frame) -> float:
    """The mean column of the pole's (accent-coloured) pixels below the caption band."""
    picture = frame[video.CAPTION_HEIGHT:].astype(int)
    mask = np.abs(picture - np.array(video.ACCENT)).sum(-1) < 60
    assert mask.sum() > 20, "no pole drawn"
    return float(np.nonzero(mask)[1].mean())


@pytest.mark.slow
def test_eval_writes_one_episode_as_a_gif(cartpole_run, tmp_path, capsys):
    gif = tmp_path / "episode.gif"
    assert main(["eval", str(cartpole_run), "--episodes", "1", "--video", str(gif)]) == 0
    frames = gif_frames(gif)
    length = episode_length(cartpole_run)
    assert f"wrote {gif} ({length} frames)" in capsys.readouterr().out
    assert len(frames) == length > 1
    assert frames[0].shape == (video.SIZE[1] + video.CAPTION_HEIGHT, video.SIZE[0], 3)
    pictures = [f[video.CAPTION_HEIGHT:] for f in frames]
    assert any(not np.array_equal(pictures[0], p) for p in pictures[1:]), "the pole never moves"

    capped = tmp_path / "capped.gif"
    steps = min(5, length - 1)
    assert main(["eval", str(cartpole_run), "--episodes", "1", "--video", str(capped),
                 "--video-steps", str(steps)]) == 0
    assert len(gif_frames(capped)) == steps
    assert np.array_equal(gif_frames(capped)[-1], frames[steps - 1])


def test_an_env_without_renderer_is_refused_in_one_line(cartpole_run, tmp_path, capsys,
                                                        monkeypatch):
    monkeypatch.setattr(video, "CLASSIC", ())  # CartPole as if it had no drawer
    gif = tmp_path / "none.gif"
    assert main(["eval", str(cartpole_run), "--video", str(gif)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pgjax: error: eval --video: gymnax/CartPole-v1 has no renderer")
    assert len(err.strip().splitlines()) == 1 and not gif.exists()
    with pytest.raises(ValueError, match="FourRooms-misc has no renderer"):
        video.renderer(envs.make("FourRooms-misc"))


@pytest.mark.parametrize("argv, message", [
    (["--video", "x.mp4"], "eval --video: x.mp4 must name a .gif file"),
    (["--video", "x.gif", "--video-steps", "0"], "eval --video-steps: 0 must be a positive"),
])
def test_bad_video_arguments_are_refused_in_one_line(cartpole_run, capsys, argv, message):
    assert main(["eval", str(cartpole_run), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_cartpole_frame_follows_the_pole_and_the_cart():
    upright = pole_columns(np.asarray(video.captioned(video.cartpole_frame(0.0, 0.0), "")))
    right = pole_columns(video.captioned(video.cartpole_frame(0.0, 0.2), ""))
    left = pole_columns(video.captioned(video.cartpole_frame(0.0, -0.2), ""))
    moved = pole_columns(video.captioned(video.cartpole_frame(1.0, 0.0), ""))
    assert left + 5 < upright < right - 5
    assert upright + 30 < moved


def test_classic_drawers_draw_their_state():
    pairs = [(video.pendulum_frame(0.0), video.pendulum_frame(1.0)),
             (video.acrobot_frame(0.0, 0.0), video.acrobot_frame(0.5, 1.0)),
             (video.mountain_car_frame(-0.5), video.mountain_car_frame(0.3))]
    for a, b in pairs:
        assert a.shape == b.shape == (video.SIZE[1], video.SIZE[0], 3) and a.dtype == np.uint8
        assert (a != b).any(axis=-1).sum() > 50


def test_grid_frame_colours_each_channel_where_it_is_set():
    obs = np.zeros((10, 10, 4), np.float32)
    obs[2, 3, 0] = obs[7, 8, 3] = 1.0
    frame = video.grid_frame(obs, size=(100, 100))
    assert frame.shape == (100, 100, 3)
    cell = lambda row, col: frame[row * 10 + 5, col * 10 + 5]  # noqa: E731
    assert cell(2, 3).any() and cell(7, 8).any() and not cell(0, 0).any()
    assert not np.array_equal(cell(2, 3), cell(7, 8))


def test_recurrent_policy_plays_an_episode():
    config = pgjax.make_config("ppo", "CartPole-v1", num_envs=2, num_minibatches=2, memory="gru",
                               memory_size=8)
    from pgjax.trainer import make_trainer

    shapes = jax.eval_shape(make_trainer(config).init, jax.random.key(0)).params
    params = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)  # uniform actions
    frames = video.record_episode(config, params, jax.random.key(0), steps=7)
    assert 1 < len(frames) <= 7 and frames[0].dtype == np.uint8


def test_mujoco_renderer_draws_the_positions():
    import mujoco

    try:
        video.gl_context(16, 16).free()
    except ValueError as error:
        pytest.skip(str(error))
    model = mujoco.MjModel.from_xml_string("""
    <mujoco><worldbody><light pos="0 0 3"/><camera pos="0 -3 1" xyaxes="1 0 0 0 0.3 1"/>
      <body><joint type="hinge" axis="0 1 0"/>
        <geom type="capsule" fromto="0 0 0 0 0 1" size="0.05" rgba="1 0.5 0 1"/></body>
    </worldbody></mujoco>""")
    frames = video.mujoco_frames(model, np.array([[0.0], [0.0], [1.0]]), size=(64, 48))
    assert len(frames) == 3 and frames[0].shape == (48, 64, 3)
    assert np.array_equal(frames[0], frames[1]) and not np.array_equal(frames[0], frames[2])


def test_no_headless_opengl_is_one_line(monkeypatch):
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.setattr(video, "GL_BACKENDS", ("no_such_gl",))
    with pytest.raises(ValueError, match="^eval --video: MuJoCo's renderer has no headless "
                       "OpenGL here \\(no_such_gl: .*\\); install EGL or OSMesa") as error:
        video.gl_context(16, 16)
    assert "\n" not in str(error.value)


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ["brax/inverted_pendulum"])  # (Playground: the same path)
def test_brax_and_playground_render_an_episode(env_id, tmp_path):
    try:
        video.gl_context(16, 16).free()
    except ValueError as error:
        pytest.skip(str(error))
    config = pgjax.make_config("ppo", env_id, num_envs=2)
    from pgjax.trainer import make_trainer

    state = make_trainer(config).init(jax.random.key(0))
    frames = video.record_episode(config, state, jax.random.key(0), steps=20)
    assert 1 < len(frames) <= 20
    pictures = [f[video.CAPTION_HEIGHT:] for f in frames]
    assert pictures[0].std() > 5 and not np.array_equal(pictures[0], pictures[-1])
    video.write_gif(tmp_path / "episode.gif", frames)
    assert len(gif_frames(tmp_path / "episode.gif")) == len(frames)


def test_mujoco_positions_of_brax_and_playground_states():
    """Brax keeps MuJoCo's positions in ``pipeline_state.q``, Playground in ``data.qpos`` (the
    episode test above plays a Brax env; this covers Playground's branch without its compile)."""
    from types import SimpleNamespace as NS

    q = np.arange(3.0)
    brax_state = NS(brax_state=NS(pipeline_state=NS(q=q)))
    playground_state = NS(brax_state=NS(data=NS(qpos=q + 1)))
    np.testing.assert_array_equal(video.qpos_of(brax_state, None), q)
    np.testing.assert_array_equal(video.qpos_of(playground_state, None), q + 1)
