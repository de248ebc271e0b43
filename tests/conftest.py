# Import pgjax before jax so its XLA CPU settings (host devices, scheduler) apply to the tests.
import pgjax  # noqa: F401
