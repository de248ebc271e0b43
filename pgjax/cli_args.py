"""Argument parsing shared by the ``pgjax`` commands: ``--set key=value`` overrides."""

from __future__ import annotations

__all__ = ["literal", "parse_sets"]


def literal(text: str):
    """``"3"`` → 3, ``"0.5"`` → 0.5, ``"true"`` → True; anything else stays a string."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_sets(items):
    """``key=value`` overrides; ``env.name=value`` goes to ``env_kwargs`` (e.g. a Brax
    ``env.backend=spring``)."""
    overrides, env_kwargs = {}, {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set: {item!r} is not of the form key=value")
        key, value = (part.strip() for part in item.split("=", 1))
        if key.startswith("env."):
            env_kwargs[key.removeprefix("env.")] = literal(value)
        else:
            overrides[key.replace("-", "_")] = value
    if env_kwargs:
        overrides["env_kwargs"] = env_kwargs
    return overrides
