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

import contextlib
import logging
import os
import socket
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
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
        if head is not None and _resolved(head) != _resolved(_host_port(joined)):
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

    ``actor_class(*actor_args, cwd, index)`` (``index``: which actor of the run it is) must
    not raise: its ``ready()`` returns ``(None, node_id())``, or the reason it cannot work,
    which stops the run with a ``ScaleError``."""
    queue = deque(units)
    if not queue:
        return
    ray = _ray()
    remote = ray.remote(num_cpus=cpus_per_actor, scheduling_strategy="SPREAD")(actor_class)
    count = min(actors or max(1, int(cluster_cpus() // cpus_per_actor)), len(queue))
    scheduler = _Scheduler(ray, lambda cwd, index: remote.remote(*actor_args, cwd, index), method)
    try:
        yield from scheduler.run(queue, count, cpus_per_actor)
    finally:
        scheduler.kill_all()


@dataclass
class _Job:
    key: Hashable
    args: Sequence[Any]
    actor: Any
    order: int
    """Submission order: an actor runs its jobs in this order."""


class _Scheduler:
    """The driver's side of ``run_units``: starts actors, hands out units, and on a death
    requeues the dead actors' units, charging the death to the unit each was running."""

    def __init__(self, ray: Any, create: Callable[[str, int], Any], method: str):
        self.ray = ray
        self.create = create
        self.method = method
        self.cwd = os.getcwd()
        self.started: list[Any] = []
        self.starting: dict[Any, Any] = {}  # ready() reference -> actor
        self.node_of: dict[int, str] = {}  # id(actor) -> its node, once it is ready
        self.free: list[Any] = []  # one entry per unit an actor may take now
        self.running: dict[Any, _Job] = {}
        self.deaths: dict[Hashable, int] = {}
        self.submitted = 0
        self.replacements = 0

    def start(self) -> None:
        actor = self.create(self.cwd, len(self.started))
        self.started.append(actor)
        self.starting[actor.ready.remote()] = actor

    def kill_all(self) -> None:
        for actor in self.started:
            with contextlib.suppress(Exception):  # already gone with its node
                self.ray.kill(actor)

    def run(
        self, queue: deque[tuple[Hashable, Sequence[Any]]], count: int, cpus: float
    ) -> Iterator[tuple[Hashable, Any]]:
        from ray.exceptions import RayActorError, RayError, RayTaskError

        for _ in range(count):
            self.start()
        self.replacements = count * UNIT_ATTEMPTS
        while queue or self.running:
            while queue and self.free:
                actor = self.free.pop(0)
                key, args = queue.popleft()
                ref = getattr(actor, self.method).remote(*args)
                self.running[ref] = _Job(key, args, actor, self.submitted)
                self.submitted += 1
            if not self.running and not self.starting:
                for key, _ in queue:
                    yield key, UnitLost(key, self.deaths.get(key, 0), "no actor could be started")
                return
            timeout = None if self.running else START_TIMEOUT_S
            ready, _ = self.ray.wait([*self.running, *self.starting], timeout=timeout)
            if not ready:
                raise ScaleError(
                    f"no actor became ready within {START_TIMEOUT_S:.0f} s (each needs "
                    f"{cpus:g} CPU free, then loads its models and sandboxes)"
                )
            ref = ready[0]
            if ref in self.starting:
                actor = self.starting.pop(ref)
                try:
                    problem, node = self.ray.get(ref)
                except RayActorError as error:
                    if error.actor_init_failed:  # e.g. occ-gym cannot be imported there
                        raise ScaleError(f"an actor cannot start: {error}") from None
                    logger.warning("an actor's node died while it started; starting another")
                    self.replace(1)
                    continue
                except RayError as error:
                    raise ScaleError(f"an actor cannot start: {error}") from None
                if problem is not None:
                    raise ScaleError(problem)
                self.node_of[id(actor)] = node
                self.free.extend([actor] * IN_FLIGHT_PER_ACTOR)
                continue
            job = self.running.pop(ref)
            try:
                result = self.ray.get(ref)
            except RayTaskError as error:  # the unit raised: the caller decides
                cause = error.cause
                result = cause if isinstance(cause, Exception) else error
            except RayError as error:  # the actor, its node or its object store died
                yield from self.bury(job, error, queue)
                continue
            self.free.append(job.actor)
            yield job.key, result

    def bury(
        self, job: _Job, error: Exception, queue: deque[tuple[Hashable, Sequence[Any]]]
    ) -> Iterator[tuple[Hashable, Any]]:
        """Requeue every unit of ``job``'s actor, and of every actor on its node if that
        died, charging a death to the unit each dead actor was running (its oldest)."""
        dead = {id(job.actor)}
        node = self.node_of.get(id(job.actor))
        if node is not None and node in self._dead_nodes():
            dead |= {key for key, where in self.node_of.items() if where == node}
        jobs = [job] + [j for j in self.running.values() if id(j.actor) in dead]
        self.running = {r: j for r, j in self.running.items() if id(j.actor) not in dead}
        self.free = [a for a in self.free if id(a) not in dead]
        first = error.__class__.__name__ + ": " + str(error).splitlines()[0]
        oldest: dict[int, _Job] = {}
        for each in sorted(jobs, key=lambda j: j.order):
            oldest.setdefault(id(each.actor), each)
        for each in sorted(jobs, key=lambda j: j.order, reverse=True):
            if oldest[id(each.actor)] is each:
                self.deaths[each.key] = self.deaths.get(each.key, 0) + 1
                if self.deaths[each.key] >= UNIT_ATTEMPTS:
                    yield each.key, UnitLost(each.key, self.deaths[each.key], first)
                    continue
            queue.appendleft((each.key, each.args))
            logger.warning("an actor died holding %r; requeued (%s)", each.key, first)
        for key in dead:
            self.node_of.pop(key, None)
        if queue or self.running:
            self.replace(len({id(j.actor) for j in jobs}))

    def replace(self, actors: int) -> None:
        for _ in range(min(actors, self.replacements)):
            self.replacements -= 1
            logger.warning("starting a replacement actor")
            self.start()

    def _dead_nodes(self) -> set[str]:
        return {n["NodeID"] for n in self.ray.nodes() if not n.get("Alive", True)}


def node_id() -> str:
    """The Ray node this actor runs on (for its ``ready()``)."""
    return str(_ray().get_runtime_context().get_node_id())


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


def _resolved(head: tuple[str, int]) -> tuple[str, int]:
    try:
        return socket.gethostbyname(head[0]), head[1]
    except OSError:
        return head


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
    "node_id",
    "node_name",
    "run_units",
]
