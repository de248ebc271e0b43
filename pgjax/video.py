"""Evaluation videos: one episode of a trained policy as an animated GIF (``pgjax eval DIR
--video FILE.gif``).

:func:`record_episode` plays one episode (cut after ``steps`` steps) in one jitted ``lax.scan``
that keeps only what the frames need, then draws the frames on the host:

* the classic-control gymnax envs (CartPole, Pendulum, Acrobot, MountainCar and
  MountainCarContinuous, and their ``pomdp/`` variants) from the env state, with Pillow;
* envs whose observation is an image or a grid of channels (MinAtar, Craftax's pixel variants,
  Catch) from the observation;
* Brax and Playground envs with MuJoCo's OpenGL renderer, from the positions ``qpos`` of each
  state, headless (EGL, else OSMesa; ``MUJOCO_GL`` chooses one).

Any other env, or MuJoCo without a headless OpenGL, is refused with a one-line ``ValueError``
before the episode is played. Each frame carries a caption band with its step number (so no
two frames of the GIF are the same image). Pillow comes with matplotlib, a dependency.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from pgjax import envs as envs_lib
from pgjax.config import Config, resolve_defaults
from pgjax.keys import typed_key
from pgjax.policy import initial_memory, make_policy

DEFAULT_STEPS = 500  #: the episode is cut after this many steps
FRAME_MS = 40  #: each frame's duration in the GIF (25 frames per second)
SIZE = (320, 240)  #: width, height of a drawn or rendered picture (below the caption band)
CAPTION_HEIGHT = 16  #: the band above the picture that holds the step number
GL_BACKENDS = ("egl", "osmesa")  #: headless OpenGL for MuJoCo, tried in turn
CLASSIC = ("CartPole-v1", "Pendulum-v1", "Acrobot-v1", "MountainCar-v0",
           "MountainCarContinuous-v0")
SKY, INK, ACCENT, TRACK = (255, 255, 255), (40, 40, 40), (204, 102, 0), (150, 150, 150)


def _canvas(size):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", tuple(size), SKY)
    return image, ImageDraw.Draw(image)


def _to_pixels(size, x_range, y_range):
    """A map from world (x, y) to pixel (column, row), one scale for both axes, centred."""
    width, height = size
    scale = min(width / (x_range[1] - x_range[0]), height / (y_range[1] - y_range[0]))
    x_mid, y_mid = sum(x_range) / 2, sum(y_range) / 2
    return lambda x, y: (width / 2 + (x - x_mid) * scale, height / 2 - (y - y_mid) * scale)


def cartpole_frame(x, theta, *, x_threshold=2.4, pole_length=1.0, size=SIZE) -> np.ndarray:
    """CartPole: the cart at ``x`` on its track (ends at ±``x_threshold``), the pole at
    ``theta`` radians from upright (positive: leaning to +x)."""
    image, draw = _canvas(size)
    px = _to_pixels(size, (-x_threshold - 0.3, x_threshold + 0.3), (-0.6, 1.4))
    draw.line([px(-x_threshold, 0), px(x_threshold, 0)], fill=TRACK, width=2)
    (left, top), (right, bottom) = px(x - 0.25, 0.15), px(x + 0.25, -0.15)
    draw.rectangle([left, top, right, bottom], fill=INK)
    tip = (x + pole_length * math.sin(theta), pole_length * math.cos(theta))
    draw.line([px(x, 0), px(*tip)], fill=ACCENT, width=max(2, size[0] // 60))
    return np.asarray(image)


def pendulum_frame(theta, *, size=SIZE) -> np.ndarray:
    """Pendulum: the rod at ``theta`` radians from upright (positive: counter-clockwise)."""
    image, draw = _canvas(size)
    px = _to_pixels(size, (-1.2, 1.2), (-1.2, 1.2))
    draw.line([px(0, 0), px(-math.sin(theta), math.cos(theta))], fill=ACCENT,
              width=max(3, size[0] // 30))
    (cx, cy), radius = px(0, 0), max(2, size[0] // 60)
    draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=INK)
    return np.asarray(image)


def acrobot_frame(theta1, theta2, *, size=SIZE) -> np.ndarray:
    """Acrobot: two unit links hanging from the origin (angles 0, 0: straight down), the second
    at ``theta2`` relative to the first; the line at height 1 is the goal."""
    image, draw = _canvas(size)
    px = _to_pixels(size, (-2.2, 2.2), (-2.2, 2.2))
    draw.line([px(-2.2, 1), px(2.2, 1)], fill=TRACK, width=1)
    elbow = (math.sin(theta1), -math.cos(theta1))
    hand = (elbow[0] + math.sin(theta1 + theta2), elbow[1] - math.cos(theta1 + theta2))
    width = max(2, size[0] // 40)
    draw.line([px(0, 0), px(*elbow)], fill=INK, width=width)
    draw.line([px(*elbow), px(*hand)], fill=ACCENT, width=width)
    return np.asarray(image)


def mountain_car_frame(position, *, goal=0.5, low=-1.2, high=0.6, size=SIZE) -> np.ndarray:
    """MountainCar: the car at ``position`` on the hill ``0.45 sin(3x) + 0.55``, a flag at
    ``goal``."""
    image, draw = _canvas(size)
    px = _to_pixels(size, (low, high), (-0.05, 1.15))
    hill = lambda x: 0.45 * math.sin(3 * x) + 0.55  # noqa: E731
    xs = np.linspace(low, high, 100)
    draw.line([px(x, hill(x)) for x in xs], fill=TRACK, width=2)
    draw.line([px(goal, hill(goal)), px(goal, hill(goal) + 0.15)], fill=INK, width=2)
    (cx, cy), radius = px(position, hill(position) + 0.04), max(3, size[0] // 40)
    draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=ACCENT)
    return np.asarray(image)


def grid_frame(obs, *, size=SIZE) -> np.ndarray:
    """An image observation ``[H, W, 3]`` as it is (values in [0, 1] or [0, 255]), or a grid
    ``[H, W]`` / ``[H, W, C]`` of channels with one colour per channel, scaled up to fit
    ``size`` in whole pixels."""
    obs = np.asarray(obs, np.float32)
    if obs.ndim == 2:
        obs = obs[..., None]
    if obs.shape[-1] == 3 and obs.max() > 1.0:
        rgb = obs / 255.0
    elif obs.shape[-1] == 3:
        rgb = obs
    else:
        hues = np.arange(obs.shape[-1]) / max(obs.shape[-1], 1)
        colours = 0.5 + 0.5 * np.cos(2 * np.pi * (hues[:, None] + np.array([0, 1, 2]) / 3))
        weights = np.clip(obs, 0, 1)
        rgb = np.clip(weights @ colours, 0, 1)
        rgb = np.where(weights.sum(-1, keepdims=True) > 0, rgb, 0.0)
    scale = max(1, min(size[0] // rgb.shape[1], size[1] // rgb.shape[0]))
    pixels = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
    return (np.clip(pixels, 0, 1) * 255).astype(np.uint8)


def captioned(frame: np.ndarray, text: str) -> np.ndarray:
    """``frame`` under a band of :data:`CAPTION_HEIGHT` rows that reads ``text``."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (frame.shape[1], frame.shape[0] + CAPTION_HEIGHT), SKY)
    image.paste(Image.fromarray(frame[..., :3]), (0, CAPTION_HEIGHT))
    ImageDraw.Draw(image).text((3, 2), text, fill=INK)
    return np.asarray(image)


def unwrapped(env):
    """The innermost env under pgjax's wrappers (``AutoReset``, ``MaskObservation``, ...)."""
    while isinstance(env, envs_lib.Wrapper):
        env = env.env
    return env


def classic_drawer(base):
    """``(select, draw)`` for a classic-control gymnax env, or None for another env."""
    from pgjax.envs.gymnax_adapter import GymnaxEnv

    name = base.name.split("/")[-1] if isinstance(base, GymnaxEnv) else None
    if name not in CLASSIC:
        return None
    params = base.params
    if name == "CartPole-v1":
        return (lambda s, o: (s.x, s.theta), lambda v: cartpole_frame(
            v[0], v[1], x_threshold=float(params.x_threshold),
            pole_length=2 * float(params.length)))
    if name == "Pendulum-v1":
        return lambda s, o: s.theta, pendulum_frame
    if name == "Acrobot-v1":
        return lambda s, o: (s.joint_angle1, s.joint_angle2), lambda v: acrobot_frame(*v)
    return lambda s, o: s.position, lambda v: mountain_car_frame(
        v, goal=float(params.goal_position), low=float(params.min_position),
        high=float(params.max_position))


def renderer(env):
    """``(select, draw_all)`` for ``env``: ``select(state, obs)`` (jittable) keeps what a frame
    needs; ``draw_all(selected)`` turns the stacked selections ``[T, ...]`` into ``T`` frames.
    A one-line ``ValueError`` for an env without a renderer, or where MuJoCo has no headless
    OpenGL."""
    from pgjax.envs.brax_adapter import BraxEnv

    base = unwrapped(env)
    classic = classic_drawer(base)
    if classic is not None:
        select, draw = classic
        return select, lambda values: [draw(jax.tree.map(lambda x: float(x[t]), values))
                                       for t in range(len(jax.tree.leaves(values)[0]))]
    if isinstance(base, BraxEnv):
        model = base.brax_env.sys.mj_model if hasattr(base.brax_env, "sys") else \
            base.brax_env.mj_model
        gl_context(*SIZE).free()  # refuse now, before the episode is played
        return qpos_of, lambda qpos: mujoco_frames(model, np.asarray(qpos))
    if len(env.observation_space.shape) in (2, 3):
        return lambda s, o: o, lambda obs: [grid_frame(o) for o in np.asarray(obs)]
    name = getattr(base, "name", type(base).__name__)
    raise ValueError(f"eval --video: {name} has no renderer (videos: the classic-control "
                     "gymnax envs, image or grid observations such as MinAtar's, Brax and "
                     "Playground)")


def qpos_of(state, obs):
    """The MuJoCo positions of a Brax (``pipeline_state.q``) or Playground (``data.qpos``)
    env's state."""
    del obs
    inner = state.brax_state
    data = inner.pipeline_state if hasattr(inner, "pipeline_state") else inner.data
    return data.qpos if hasattr(data, "qpos") else data.q


def gl_context(width: int, height: int):
    """A current headless OpenGL context for MuJoCo's renderer (``MUJOCO_GL`` if it names one
    of :data:`GL_BACKENDS`, else each in turn); a one-line ``ValueError`` where none works."""
    import importlib
    import os

    chosen = os.environ.get("MUJOCO_GL", "").lower()
    backends = [chosen] if chosen in GL_BACKENDS else list(GL_BACKENDS)
    errors = []
    for backend in backends:
        try:
            context = importlib.import_module(f"mujoco.{backend}").GLContext(width, height)
            context.make_current()
            return context
        except Exception as error:  # noqa: BLE001 — any failure means: this GL is unusable
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            errors.append(f"{backend}: {message}")
    raise ValueError("eval --video: MuJoCo's renderer has no headless OpenGL here ("
                     + "; ".join(errors) + "); install EGL or OSMesa (MUJOCO_GL=egl or "
                     "osmesa picks one)")


def mujoco_frames(model, qpos: np.ndarray, size=SIZE) -> list[np.ndarray]:
    """One frame per row of ``qpos`` ``[T, nq]``: the model's first camera if it has one, else
    a camera that follows body 1 from the model's extent (at most 4 m) away, 15° above."""
    import mujoco

    width, height = (min(size[0], model.vis.global_.offwidth),
                     min(size[1], model.vis.global_.offheight))
    context = gl_context(width, height)
    try:
        try:
            render = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_100)
        except mujoco.FatalError as error:
            raise ValueError(f"eval --video: MuJoCo's renderer cannot start ({error})") from None
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, render)
        data, scene = mujoco.MjData(model), mujoco.MjvScene(model, maxgeom=10_000)
        camera, option = mujoco.MjvCamera(), mujoco.MjvOption()
        if model.ncam:
            camera.type, camera.fixedcamid = mujoco.mjtCamera.mjCAMERA_FIXED, 0
        else:
            camera.type, camera.trackbodyid = mujoco.mjtCamera.mjCAMERA_TRACKING, 1
            camera.distance, camera.elevation = min(model.stat.extent, 4.0), -15.0
        rect, frames = mujoco.MjrRect(0, 0, width, height), []
        for q in qpos:
            data.qpos[:] = q
            mujoco.mj_forward(model, data)
            mujoco.mjv_updateScene(model, data, option, None, camera,
                                   mujoco.mjtCatBit.mjCAT_ALL, scene)
            mujoco.mjr_render(rect, scene, render)
            pixels = np.empty((height, width, 3), np.uint8)
            mujoco.mjr_readPixels(pixels, None, rect, render)
            frames.append(np.flipud(pixels))
        render.free()
    finally:
        context.free()
    return frames


def record_episode(config: Config, policy, key, *, steps: int = DEFAULT_STEPS,
                   deterministic: bool = False, obs_moments=None) -> list[np.ndarray]:
    """The frames of one episode of ``policy`` (anything :func:`pgjax.make_policy` takes, one
    seed's) from ``key``: the first state and every state after a step that did not end the
    episode, so as many frames as the episode has steps, at most ``steps``. Each frame is a
    ``uint8`` ``[H, W, 3]`` array with its step number in a caption band."""
    if int(steps) != steps or steps < 1:
        raise ValueError(f"eval --video-steps: {steps} must be a positive integer")
    config = resolve_defaults(config)
    env = envs_lib.make(config.env, **dict(config.env_kwargs))
    select, draw_all = renderer(env)
    act = make_policy(config, policy, obs_moments)

    def step(carry, _):
        state, obs, memory, key = carry
        key, key_act, key_env = jax.random.split(key, 3)
        if config.recurrent:
            action, memory = act(key_act, obs, memory, deterministic)
        else:
            action = act(key_act, obs, deterministic)
        state, obs, _, terminated, truncated, _ = env.step(key_env, state, action)
        return (state, obs, memory, key), (select(state, obs), jnp.logical_or(terminated,
                                                                              truncated))

    def play(key):
        key_reset, key = jax.random.split(typed_key(key))
        state, obs = env.reset(key_reset)
        memory = initial_memory(config) if config.recurrent else None
        _, (selected, done) = jax.lax.scan(step, (state, obs, memory, key), None,
                                           length=int(steps) - 1)
        first = jax.tree.map(lambda x: x[None], select(state, obs))
        return jax.tree.map(lambda a, b: jnp.concatenate([a, b]), first, selected), done

    selected, done = jax.device_get(jax.jit(play)(key))
    ends = np.flatnonzero(done)
    length = int(ends[0]) + 1 if ends.size else int(steps)
    frames = draw_all(jax.tree.map(lambda x: x[:length], selected))
    return [captioned(frame, f"step {t}") for t, frame in enumerate(frames)]


def write_gif(path, frames, frame_ms: int = FRAME_MS) -> None:
    """Write ``frames`` (``uint8`` ``[H, W, 3]``) as an animated GIF that loops, every frame in
    the first frame's palette, undithered: a still background stays the same pixels, which the
    GIF stores once (a tenth of the size of a dithered MuJoCo video)."""
    from PIL import Image

    none = Image.Dither.NONE
    palette = Image.fromarray(frames[0]).quantize(colors=255, dither=none)
    images = [Image.fromarray(frame).quantize(palette=palette, dither=none) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=frame_ms, loop=0)


def record_video(config: Config, policies, path, steps: int = DEFAULT_STEPS, seed: int = 0,
                 deterministic: bool = False) -> int:
    """``pgjax eval DIR --video path``: one episode of the first seed's policy of
    ``policies`` (a :class:`pgjax.policy.TrainedPolicy` with a seed axis) from
    ``jax.random.key(seed)``, written to ``path`` (a ``.gif``); returns the number of frames."""
    if not str(path).lower().endswith(".gif"):
        raise ValueError(f"eval --video: {path} must name a .gif file")
    policy = jax.tree.map(lambda x: x[0], policies)
    frames = record_episode(config, policy, jax.random.key(seed), steps=steps,
                            deterministic=deterministic)
    write_gif(path, frames)
    return len(frames)
