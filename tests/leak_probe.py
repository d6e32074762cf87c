"""Candidates that look for another candidate's data everywhere a child can read.

The marker is split in two here (``MARKER_HEAD`` + ``MARKER_TAIL``) so that the probe's own
code never holds it whole: a probe finds it only where another candidate put it.
"""

from __future__ import annotations

MARKER_HEAD = "occ-gym-leak-"
MARKER_TAIL = "5c71e9b2"

VICTIM = (
    "SECRET = {marker!r}\n"
    "def f(x):\n"
    "    for path in ('scratch.txt', '/tmp/leak.txt', '/dev/shm/leak.txt'):\n"
    "        try:\n"
    "            with open(path, 'w') as out:\n"
    "                out.write(SECRET + x)\n"
    "        except OSError:\n"
    "            pass\n"
    "    return x + SECRET\n"
)
"""A candidate that leaves the marker in its code, its input, its output and its files."""

PROBE_BODY = """
def scan(os):
    head, tail = {head!r}.encode(), {tail!r}.encode()
    found = []
    scanned = [0]

    def search(data, where):
        scanned[0] += len(data)
        at = data.find(head)
        while at >= 0:
            if data[at + len(head) : at + len(head) + len(tail)] == tail:
                found.append(where)
                return
            at = data.find(head, at + 1)

    def read_file(path):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return b""
        chunks = []
        try:
            while len(chunks) < 64:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
        except OSError:
            pass
        finally:
            os.close(fd)
        return b"".join(chunks)

    def own_memory():
        # every anonymous, heap and stack mapping of this process, through /proc/self/mem
        # (the child starts non-dumpable, as its zygote is; it may make itself dumpable)
        ctypes = os.sys.modules["ctypes"]
        ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)
        maps = read_file("/proc/self/maps").decode(errors="replace").splitlines()
        fd = os.open("/proc/self/mem", os.O_RDONLY)
        try:
            for line in maps:
                fields = line.split()
                path = fields[5] if len(fields) > 5 else ""
                if "r" not in fields[1] or (path and path not in ("[heap]", "[stack]")):
                    continue
                start, end = (int(part, 16) for part in fields[0].split("-"))
                for offset in range(start, end, 1 << 20):
                    try:
                        data = os.pread(fd, min(1 << 20, end - offset), offset)
                    except OSError:
                        break
                    search(data, "own memory")
        finally:
            os.close(fd)

    def memory(pid):
        try:
            fd = os.open("/proc/" + pid + "/mem", os.O_RDONLY)
        except OSError:
            return
        found.append("opened /proc/" + pid + "/mem")
        os.close(fd)

    own_memory()
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            memory(name)
            for leaf in ("cmdline", "environ"):
                search(read_file("/proc/" + name + "/" + leaf), "/proc/" + name + "/" + leaf)
    for root in ("/tmp", "/dev/shm", "/"):
        for folder, folders, files in os.walk(root):
            if folder == "/":  # not the system, not devices (a pipe there would block)
                folders[:] = [d for d in folders if d not in ("proc", "usr", "sys", "dev")]
            for file in files:
                search(read_file(os.path.join(folder, file)), os.path.join(folder, file))
    return sorted(set(found)), scanned[0]
"""

ROUTES = {
    "typing_sys": "from typing import sys\nOS = sys.modules['os']\n",
    "dataclasses_builtins": (
        "import dataclasses\nNS = {}\ndataclasses.builtins.exec('import os', NS)\nOS = NS['os']\n"
    ),
    "attrgetter_globals": (
        "import dataclasses, operator\n"
        "OS = operator.attrgetter('__globals__')(dataclasses.dataclass)['sys'].modules['os']\n"
    ),
    "formatter_get_field": (
        "import dataclasses, string\n"
        "GLOBALS = string.Formatter().get_field('0.__globals__', (dataclasses.dataclass,), {})[0]\n"
        "OS = GLOBALS['sys'].modules['os']\n"
    ),
    "match_class_pattern": (
        "import dataclasses\n"
        "match dataclasses.dataclass:\n"
        "    case object(__globals__=found):\n"
        "        OS = found['sys'].modules['os']\n"
    ),
}
"""Ways past the AST screen to the ``os`` module, each found by an adversarial review."""


def marker() -> str:
    return MARKER_HEAD + MARKER_TAIL


def probe(route: str, plant: bool = False) -> str:
    """A candidate ``f(x)`` that reaches ``os`` by ``route`` and returns where it saw the marker
    and how many bytes it read; ``plant`` makes it build the marker itself first (a control)."""
    body = PROBE_BODY.format(head=MARKER_HEAD, tail=MARKER_TAIL)
    planted = f"PLANTED = {MARKER_HEAD!r} + str({MARKER_TAIL!r})\n" if plant else ""
    return ROUTES[route] + body + planted + "\ndef f(x):\n    return scan(OS)\n"


def victim() -> str:
    return VICTIM.format(marker=marker())
