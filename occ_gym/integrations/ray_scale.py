"""Scale-out on a Ray cluster: recording chunks and bench entries run as tasks on Ray actors.

Each actor owns what its work needs for its whole life (``record.RecordActor``: the tier pool's
writers, nano models loaded once, and a verifier's sandbox pool; ``runner.BenchActor``: the
bench's envs and policies), and the driver hands it one unit of work at a time: a chunk of
tasks, or a bench entry with all its seed blocks. Results come back to the driver, which alone
writes files, so a recording lands in exactly the part files a single-machine run writes, and
resumes from them on any machine.

Faults: an actor (or its node) that dies mid-unit loses nothing the driver kept; the unit goes
back in the queue for another actor, and a replacement actor is started. A unit whose actors die
``UNIT_ATTEMPTS`` times, or one that raises, is reported by the caller; nothing is retried twice
into the results, because each unit's result is taken once, by the driver.

Every node needs occ-gym (``pip install 'occ-gym[ray]'``) and any file the run names at the same
path; an actor works in the driver's folder when its node has it. Needs the ``ray`` extra.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import deque
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

UNIT_ATTEMPTS = 3
"""How many actors may die on one unit of work before it is reported as lost."""
IN_FLIGHT_PER_ACTOR = 2
"""Units queued on each actor at once: its next unit is waiting when one finishes."""
START_TIMEOUT_S = 300.0
"""How long the driver waits for an actor to start (load its models, open its sandboxes)."""


class ScaleError(RuntimeError):
    """The cluster cannot be reached, Ray is missing, or an actor cannot start (its message
    says which node and why)."""


class UnitLost(RuntimeError):
    """Actors kept dying on one unit of work; ``key`` names it."""

    def __init__(self, key: Hashable, deaths: int, last_error: str):
        super().__init__(
            f"{deaths} actors died working on {key!r}; last: {last_error.splitlines()[0]}"
        )
        self.key = key


@dataclass(frozen=True)
class RayCluster:
    """Where work runs on Ray: the cluster's address (``auto``: the one ``ray start`` made
    on this machine), how many actors (default: as many as the cluster's CPUs hold) and the
    CPUs each reserves (its torch threads and sandboxes use them)."""

    address: str = "auto"
    actors: int | None = None
    cpus_per_actor: float = 1.0

    def __post_init__(self) -> None:
        if self.actors is not None and self.actors < 1:
            raise ValueError(f"actors must be >= 1, got {self.actors}")
        if self.cpus_per_actor <= 0:
            raise ValueError(f"cpus_per_actor must be > 0, got {self.cpus_per_actor}")

    def run(
        self,
        actor_class: type,
        actor_args: Sequence[Any],
        method: str,
        units: Iterable[tuple[Hashable, Sequence[Any]]],
    ) -> Iterator[tuple[Hashable, Any]]:
        """``run_units`` on this cluster (joined first)."""
        connect(self.address)
        return run_units(actor_class, actor_args, method, units, self.actors, self.cpus_per_actor)


def connect(address: str) -> None:
    """Join the Ray cluster at ``address`` (``HOST:PORT`` of its head, or ``auto`` for the one
    ``ray start`` made on this machine), unless this process already has."""
    head = None if address == "auto" else _host_port(address)
    ray = _ray()
    if ray.is_initialized():
        joined = ray.get_runtime_context().gcs_address
        if head is not None and f"{head[0]}:{head[1]}" != joined:
            raise ScaleError(
                f"this process already joined the Ray cluster at {joined}, not {address}"
            )
        return
    if head is not None:
        try:
            socket.create_connection(head, timeout=5).close()
        except OSError as error:  # ray.init would retry for a minute before saying so
            raise ScaleError(
                f"no Ray cluster answers at {address} ({error}); start one with "
                "`ray start --head` and pass the address it prints, or 'auto' on one of its nodes"
            ) from None
    try:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise ScaleError(f"cannot join the Ray cluster at {address!r}: {error}") from None


def cluster_cpus() -> int:
    """The cluster's CPUs (whole), as Ray counts them."""
    return int(_ray().cluster_resources().get("CPU", 1))


def run_units(
    actor_class: type,
    actor_args: Sequence[Any],
    method: str,
    units: Iterable[tuple[Hashable, Sequence[Any]]],
    actors: int | None = None,
    cpus_per_actor: float = 1.0,
) -> Iterator[tuple[Hashable, Any]]:
    """Run ``getattr(actor, method)(*args)`` for every ``(key, args)`` of ``units`` on a set
    of actors spread over the cluster; yield ``(key, result)`` as each finishes, where a
    result is the exception the unit raised, or ``UnitLost`` when its actors kept dying.

    ``actor_class(*actor_args, cwd)`` must not raise: its ``ready()`` returns None, or the
    reason it cannot work, which stops the run with a ``ScaleError`` naming the node."""
    ray = _ray()
    from ray.exceptions import RayActorError

    remote = ray.remote(num_cpus=cpus_per_actor, scheduling_strategy="SPREAD")(actor_class)
    queue = deque(units)
    if not queue:
        return
    count = min(actors or max(1, int(cluster_cpus() // cpus_per_actor)), len(queue))
    cwd = os.getcwd()
    started: list[Any] = []
    starting: dict[Any, Any] = {}  # ready() reference -> actor

    def start() -> None:
        actor = remote.remote(*actor_args, cwd)
        started.append(actor)
        starting[actor.ready.remote()] = actor

    for _ in range(count):
        start()
    replacements = count * UNIT_ATTEMPTS
    free: list[Any] = []  # one entry per unit an actor may take now
    running: dict[Any, tuple[Hashable, Sequence[Any], Any]] = {}
    deaths: dict[Hashable, int] = {}
    try:
        while queue or running:
            while queue and free:
                actor = free.pop(0)
                key, args = queue.popleft()
                running[getattr(actor, method).remote(*args)] = (key, args, actor)
            if not running and not starting:
                for key, _ in queue:
                    yield key, UnitLost(key, deaths.get(key, 0), "no actor left to run it")
                return
            timeout = None if running else START_TIMEOUT_S
            ready, _ = ray.wait([*running, *starting], num_returns=1, timeout=timeout)
            if not ready:
                raise ScaleError(
                    f"no actor started within {START_TIMEOUT_S:.0f} s: the cluster has no "
                    f"free resources for {cpus_per_actor:g} CPU per actor"
                )
            ref = ready[0]
            if ref in starting:
                actor = starting.pop(ref)
                try:
                    problem = ray.get(ref)
                except RayActorError:  # its node died while it started
                    if replacements > 0:
                        replacements -= 1
                        start()
                    continue
                if problem is not None:
                    raise ScaleError(problem)
                free.extend([actor] * IN_FLIGHT_PER_ACTOR)
                continue
            key, args, actor = running.pop(ref)
            try:
                result = ray.get(ref)
            except RayActorError as error:
                free = [a for a in free if a is not actor]
                lost = [(key, args)] + [(k, a) for k, a, who in running.values() if who is actor]
                running = {r: job for r, job in running.items() if job[2] is not actor}
                for lost_key, lost_args in lost:
                    deaths[lost_key] = deaths.get(lost_key, 0) + 1
                    if deaths[lost_key] >= UNIT_ATTEMPTS:
                        yield lost_key, UnitLost(lost_key, deaths[lost_key], str(error))
                    else:
                        queue.appendleft((lost_key, lost_args))
                        logger.warning(
                            "an actor died holding %r; requeued (%s)",
                            lost_key,
                            str(error).splitlines()[0],
                        )
                if replacements > 0 and (queue or running):
                    replacements -= 1
                    start()
                continue
            except Exception as error:  # the unit raised: the caller decides
                result = error
            free.append(actor)
            yield key, result
    finally:
        for actor in started:
            ray.kill(actor)


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ScaleError("scale-out needs Ray: pip install 'occ-gym[ray]'") from None
    return ray


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ScaleError(f"a Ray address is HOST:PORT or 'auto', got {address!r}")
    return host, int(port)


def enter(cwd: str) -> None:
    """Work in the driver's folder ``cwd`` where this node has it (relative paths then mean
    what they meant to the driver)."""
    if os.path.isdir(cwd):
        os.chdir(cwd)


def node_name() -> str:
    """This actor's node and process, for its error messages."""
    return f"{socket.gethostname()} (pid {os.getpid()})"


__all__ = [
    "RayCluster",
    "ScaleError",
    "UnitLost",
    "cluster_cpus",
    "connect",
    "enter",
    "node_name",
    "run_units",
]
