"""Tier pools as configuration: a TOML file names the tiers, how to reach them and what they cost.

```toml
cost = "flops"                  # every tier's cost model: "flops", "price" or "latency"

[[tiers]]
name = "small"                  # the tier's name in traces and actions (cheapest first)
kind = "openai"                 # "openai": any OpenAI-compatible server; "nano": a shipped model
model = "Qwen2.5-Coder-0.5B"    # the model name the server serves (it must answer with it)
base_url = "http://127.0.0.1:8000/v1"
api_key_env = "OCC_API_KEY"     # the NAME of the variable holding the key (optional locally)
template = "completion"         # "completion", "chat", or "nano" (occ-gym serve's markers)
temperature = 0.8
max_tokens = 256
parameters = 494_000_000        # cost = "flops": 2 N per token ...
layers = 24                     # ... plus the attention term, with d_model (optional, together)
d_model = 896
# cost = "price": input_price and output_price, dollars per token; "latency": nothing more
```

The cost units are stated once per pool (``PoolSpec.cost_unit``): a million FLOPs (as the nano
tiers count), a millionth of a dollar, or a millisecond of wall time. A tier without what its
cost model needs is refused: nothing is priced at 0. ``read_pool`` names the file, line and
field of a bad entry; a key variable that is unset fails in ``PoolSpec.check_keys``, before any
request is made. The key itself never enters a trace, a plan or a log.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from occ_gym.tiers.nano_card import transformer_flops
from occ_gym.traces.table import FLOPS_PER_COST_UNIT

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

COST_MODELS = {"flops": "1e6 FLOPs", "price": "1e-6 USD", "latency": "ms"}
"""Each cost model and the unit its costs are in."""
KINDS = ("nano", "openai")
TEMPLATES = ("completion", "chat", "nano")
TIER_FIELDS = {
    "name": str,
    "kind": str,
    "model": str,
    "base_url": str,
    "api_key_env": str,
    "template": str,
    "temperature": float,
    "top_p": float,
    "max_tokens": int,
    "timeout_s": float,
    "max_retries": int,
    "concurrency": int,
    "parameters": int,
    "layers": int,
    "d_model": int,
    "input_price": float,
    "output_price": float,
    "models_dir": str,
    "logprobs": bool,
}
TRANSPORT_FIELDS = ("timeout_s", "max_retries", "concurrency")
"""Settings that change how requests are sent, never what is recorded (not in a plan's identity,
so a resumed recording may raise its timeout)."""
NO_KEY = "EMPTY"
"""The key sent to a server that needs none (vLLM's convention)."""


class PoolError(ValueError):
    """A pool file is unreadable or names a tier badly."""


@dataclass(frozen=True)
class TierSpec:
    """One tier of a pool: who writes the code, with which settings, at what cost."""

    name: str
    kind: str
    model: str
    base_url: str = ""
    api_key_env: str = ""
    template: str = "completion"
    temperature: float = 0.8
    top_p: float = 1.0
    max_tokens: int = 256
    timeout_s: float = 60.0
    max_retries: int = 4
    concurrency: int = 8
    parameters: int = 0
    layers: int = 0
    d_model: int = 0
    input_price: float = 0.0
    output_price: float = 0.0
    models_dir: str = ""
    """``kind = "nano"``: a folder of model cards and weights (the shipped ones if empty)."""
    logprobs: bool = True
    """Ask for token log-probabilities (off for a server that refuses the option)."""

    def api_key(self) -> str:
        """The key, read from the environment now (``PoolError`` if the variable is unset)."""
        if not self.api_key_env:
            return NO_KEY
        key = os.environ.get(self.api_key_env)
        if not key:
            raise PoolError(
                f"tier {self.name}: the environment variable {self.api_key_env} that should "
                "hold its API key is not set"
            )
        return key

    def flops(self, context_tokens: int, new_tokens: int) -> int:
        """FLOPs of one attempt, counted as the nano tiers count them."""
        return transformer_flops(
            self.parameters, self.layers, self.d_model, context_tokens, new_tokens
        )

    def cost(self, cost_model: str, context_tokens: int, new_tokens: int, wall_ms: float) -> float:
        """The attempt's cost in the pool's units."""
        if cost_model == "flops":
            return self.flops(context_tokens, new_tokens) / FLOPS_PER_COST_UNIT
        if cost_model == "price":
            return 1e6 * (self.input_price * context_tokens + self.output_price * new_tokens)
        return wall_ms


@dataclass(frozen=True)
class PoolSpec:
    """The tiers of a pool, cheapest first as the file lists them, and their cost model."""

    tiers: tuple[TierSpec, ...]
    cost: str
    source: str = ""

    @property
    def cost_unit(self) -> str:
        return COST_MODELS[self.cost]

    def tier(self, name: str) -> TierSpec:
        for spec in self.tiers:
            if spec.name == name:
                return spec
        raise KeyError(f"no tier {name!r} in pool {self.source}")

    def check_keys(self) -> None:
        """Every endpoint tier's key variable is set (call before the first request)."""
        for spec in self.tiers:
            if spec.kind == "openai":
                spec.api_key()

    def identity(self) -> dict[str, Any]:
        """What a recording depends on: every setting, the key variables' names, never keys."""
        tiers = [
            {k: v for k, v in asdict(spec).items() if k not in TRANSPORT_FIELDS}
            for spec in self.tiers
        ]
        return {"cost": self.cost, "tiers": tiers}


def pool_text(pool: PoolSpec) -> str:
    """The pool as a TOML file ``read_pool`` reads back to the same tiers (each setting that
    differs from its default; strings JSON-quoted, which TOML's basic strings accept)."""
    defaults = TierSpec("", "", "")
    lines = [f"cost = {json.dumps(pool.cost)}"]
    for spec in pool.tiers:
        lines += ["", "[[tiers]]"]
        for name, value in asdict(spec).items():
            if name in ("name", "kind", "model") or value != getattr(defaults, name):
                shown = json.dumps(value) if isinstance(value, (str, bool)) else repr(value)
                lines.append(f"{name} = {shown}")
    return "\n".join(lines) + "\n"


def read_pool(path: str | Path) -> PoolSpec:
    """The pool in the TOML file at ``path``; a ``PoolError`` names the file, line and field."""
    path = Path(path)
    try:
        text = path.read_text()
        document = tomllib.loads(text)
    except (OSError, UnicodeDecodeError) as error:
        raise PoolError(f"cannot read pool file {path}: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise PoolError(f"{path}: not valid TOML ({error})") from None
    locate = _Locator(path, text)
    unknown = sorted(set(document) - {"cost", "tiers"})
    if unknown:
        raise PoolError(f"{locate.top(unknown[0])}: unknown; a pool has 'cost' and [[tiers]]")
    cost = document.get("cost", "flops")
    if not isinstance(cost, str) or cost not in COST_MODELS:
        raise PoolError(f"{locate.top('cost')}: {cost!r}; expected one of {sorted(COST_MODELS)}")
    tables = document.get("tiers")
    if not isinstance(tables, list) or not tables:
        raise PoolError(f"{path}: a pool needs at least one [[tiers]] table")
    tiers = tuple(_tier(table, index, cost, locate) for index, table in enumerate(tables))
    names = [t.name for t in tiers]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise PoolError(f"{locate.field(index, 'name')}: tier name {name!r} repeats")
    return PoolSpec(tiers, cost, str(path))


def _tier(table: Any, index: int, cost: str, locate: _Locator) -> TierSpec:
    def fail(name: str, problem: str) -> PoolError:
        return PoolError(f"{locate.field(index, name)}: {problem}")

    if not isinstance(table, dict):
        raise PoolError(f"{locate.path}: tiers[{index}] is not a table")
    for name in ("name", "kind"):
        if name not in table:
            raise PoolError(f"{locate.block(index)}, field {name}: missing")
    for name, value in table.items():
        if name not in TIER_FIELDS:
            raise fail(name, f"unknown; a tier has some of {sorted(TIER_FIELDS)}")
        wanted = TIER_FIELDS[name]
        if wanted in (str, bool):
            ok = isinstance(value, wanted)
        elif wanted is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            shown = "a value" if name == "api_key_env" else repr(value)
            raise fail(name, f"must be of type {wanted.__name__}, got {shown}")
        if wanted in (int, float) and not (0 <= value < 2**63 and math.isfinite(value)):
            raise fail(name, f"must be finite, >= 0 and < 2**63, got {value!r}")
    values = {**table, "model": table.get("model", table["name"])}
    spec = TierSpec(**values)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", spec.name):
        raise fail("name", f"{spec.name!r}: letters, digits, '_', '.' and '-' only")
    if spec.api_key_env and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", spec.api_key_env):
        # Never echo it: a pasted key is the likeliest thing to fail this.
        raise fail("api_key_env", "must be the NAME of an environment variable, not the key")
    if not 0 < spec.top_p <= 1:
        raise fail("top_p", f"must be in (0, 1], got {spec.top_p!r}")
    if spec.kind not in KINDS:
        raise fail("kind", f"{spec.kind!r}; expected one of {list(KINDS)}")
    if spec.template not in TEMPLATES:
        raise fail("template", f"{spec.template!r}; expected one of {list(TEMPLATES)}")
    for name in ("max_tokens", "concurrency"):
        if getattr(spec, name) < 1:
            raise fail(name, "must be >= 1")
    if spec.timeout_s <= 0:
        raise fail("timeout_s", "must be > 0")
    if spec.kind == "openai":
        address = urlsplit(spec.base_url)
        if "@" in address.netloc or address.query:
            raise fail("base_url", "holds credentials or a query: put keys in api_key_env")
        if not spec.base_url.startswith(("http://", "https://")):
            raise fail(
                "base_url", f"an endpoint tier needs an http(s) base_url, got {spec.base_url!r}"
            )
        if cost == "flops" and spec.parameters < 1:
            raise fail("parameters", "cost = 'flops' needs the model's parameter count (> 0)")
        if (spec.layers > 0) != (spec.d_model > 0):
            raise fail("layers", "the attention term needs both layers and d_model")
        if cost == "price" and spec.input_price == 0 and spec.output_price == 0:
            raise fail("input_price", "cost = 'price' needs input_price or output_price (> 0)")
    elif cost != "flops":
        raise fail("kind", f"nano tiers are costed in FLOPs, but the pool's cost is {cost!r}")
    return spec


class _Locator:
    """Line numbers for errors: tomllib parses without them, so they are found in the text."""

    def __init__(self, path: Path, text: str):
        self.path = path
        self.lines = text.splitlines()
        self.starts = [
            i for i, line in enumerate(self.lines) if line.split("#")[0].strip() == "[[tiers]]"
        ]

    def top(self, name: str) -> str:
        end = self.starts[0] if self.starts else len(self.lines)
        return f"{self.path}, line {self._find(name, 0, end)}, field {name}"

    def block(self, index: int) -> str:
        line = self.starts[index] + 1 if index < len(self.starts) else 0
        return f"{self.path}, line {line}"

    def field(self, index: int, name: str) -> str:
        if index >= len(self.starts):
            return f"{self.path}, tiers[{index}], field {name}"
        end = self.starts[index + 1] if index + 1 < len(self.starts) else len(self.lines)
        return f"{self.path}, line {self._find(name, self.starts[index], end)}, field {name}"

    def _find(self, name: str, start: int, end: int) -> int:
        pattern = re.compile(rf"\s*{re.escape(name)}\s*=")
        for number in range(start, end):
            if pattern.match(self.lines[number]):
                return number + 1
        return start + 1
