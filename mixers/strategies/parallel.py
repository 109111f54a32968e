"""Running many proxy trainings: sequentially in this process, or as parallel Ray tasks.

Why a function over (environment spec, item) rather than over environments: a Ray task must rebuild
its environment from something small and picklable, and ``ProxyEnvironment.cached`` makes each worker
build it once for all its tasks. Every task runs under the environment's torch thread count, in this
process or a worker, so a seed gives the same figures either way (tests compare them).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from curate.errors import ConfigError
from mixers.strategies.environment import EnvSpec, ProxyEnvironment, torch_threads

Item = TypeVar("Item")
Out = TypeVar("Out")
Backend = Literal["sequential", "ray"]


def execute(fn: Callable[[ProxyEnvironment, Any], Any], spec: EnvSpec, item: Any) -> Any:
    """One task: the (cached) environment of ``spec`` applied to ``item`` under its thread count."""
    env = ProxyEnvironment.cached(spec)
    with torch_threads(spec.config.threads):
        return fn(env, item)


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class Runner:
    """Where proxy runs execute. ``ray`` starts a local Ray (``workers`` CPUs, default all cores) unless
    one is running or ``address`` names a cluster; a Ray started here stops when the map (or the
    enclosing :meth:`session`) ends."""

    backend: Backend = "sequential"
    workers: int | None = None
    address: str | None = None

    @classmethod
    def create(
        cls, parallel: bool | str = False, workers: int | None = None, address: str | None = None
    ) -> Runner:
        """``parallel`` True/"ray" asks for Ray; without Ray installed the runs go sequentially (same
        results, only slower) and a warning says so."""
        if parallel not in (True, False, "ray", "sequential"):
            raise ConfigError(f"parallel must be 'ray' or 'sequential', got {parallel!r}")
        if parallel in (True, "ray") and not ray_available():
            warnings.warn("Ray is not installed; running proxy trainings sequentially", stacklevel=2)
            return cls("sequential", workers, address)
        return cls("ray" if parallel in (True, "ray") else "sequential", workers, address)

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Keep one Ray alive across several maps (starting Ray costs seconds)."""
        if self.backend != "ray":
            yield
            return
        from curate.executors.ray_executor import ray_session

        with ray_session(self.workers or os.cpu_count() or 1, self.address):
            yield

    def map(
        self, fn: Callable[[ProxyEnvironment, Item], Out], spec: EnvSpec, items: Sequence[Item]
    ) -> list[Out]:
        """``fn(env, item)`` for every item, results in item order."""
        if self.backend == "sequential" or len(items) == 0:
            return [execute(fn, spec, item) for item in items]
        with self.session():
            import ray

            remote = ray.remote(num_cpus=1)(execute)
            return ray.get([remote.remote(fn, spec, item) for item in items])

    def describe(self) -> dict[str, Any]:
        return {"backend": self.backend, "workers": self.workers, "address": self.address}


def run_request(env: ProxyEnvironment, request: Any) -> Any:
    """The task of a plain proxy run (a top-level function, so Ray can pickle it by reference)."""
    return env.run(request)
