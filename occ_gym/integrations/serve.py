"""``occ-gym serve``: the shipped nano tiers behind an OpenAI-compatible HTTP API.

``GET /v1/models``, ``POST /v1/completions`` and ``POST /v1/chat/completions``, as vLLM serves
them, with token log-probabilities (under the model at temperature 1), the server's token counts
in ``usage`` and per-request ``seed``. A completion prompt is text (read as ``<bos>`` and the
text) or a list of token ids (the ``nano`` template sends the exact context the nano tiers
build, so a recording through the server equals a direct one); a chat's messages are read as the
prompt (the first user message), then each earlier candidate (assistant) and the verifier's
feedback on it (user). ``repair_round`` is an extension field (default: the number of feedback
markers in the context). Unsupported options (``n > 1``, ``top_p < 1``, stop sequences, echo)
are refused with a 400 rather than ignored.

``Faults`` make the real server misbehave on purpose, for the endpoint tier's fault tests:
answer an HTTP status, hang, or send malformed JSON for the first requests, or claim another
model name.

Needs the ``serve`` extra (FastAPI, uvicorn) and torch.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict

from occ_gym.resources import MODELS_DIR
from occ_gym.tiers.nano import FEEDBACK, MAX_NEW_TOKENS, NanoModel
from occ_gym.tiers.nano_card import repair_context, sampling_uniforms


@dataclass
class Faults:
    """Misbehaviour on purpose: the first ``count`` generation requests answer ``status``
    (with a ``Retry-After: 0`` header on 429), hang for ``hang_s`` seconds, or get malformed
    JSON; every answer names ``served_name`` as its model when set."""

    status: int = 0
    hang_s: float = 0.0
    malformed: bool = False
    count: int = 0
    served_name: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.seen = 0

    def next_fault(self) -> Response | None:
        with self._lock:
            self.seen += 1
            if self.seen > self.count:
                return None
        if self.hang_s:
            time.sleep(self.hang_s)
        if self.malformed:
            return Response('{"id": "cmpl-broken", "choices": [', media_type="application/json")
        if self.status:
            headers = {"Retry-After": "0"} if self.status == 429 else None
            return _error(self.status, f"injected fault: HTTP {self.status}", headers=headers)
        return None


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = 1
    seed: int | None = None
    stop: str | list[str] | None = None
    repair_round: int | None = None


class CompletionBody(_Body):
    prompt: str | list[int] | list[str] | list[list[int]]
    logprobs: int | None = None
    echo: bool = False


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: str
    content: str


class ChatBody(_Body):
    messages: list[Message]
    logprobs: bool = False
    top_logprobs: int | None = None
    max_completion_tokens: int | None = None


MAX_REPAIR_ROUND = 1000
"""Rounds past the model's last repair embedding share it; this only bounds the field."""


class RequestError(ValueError):
    """A request the server refuses with a 400."""


@dataclass(frozen=True)
class Generated:
    text: str
    tokens: list[str]
    logprobs: list[float]
    prompt_tokens: int
    finish_reason: str


def shipped_tiers(models_dir: Path = MODELS_DIR) -> list[str]:
    """Every model with a card and weights in ``models_dir``."""
    return sorted(
        p.stem for p in models_dir.glob("*.json") if p.with_suffix(".safetensors").exists()
    )


class NanoServer:
    """The loaded tiers, one lock each (a model writes one request at a time)."""

    def __init__(self, tiers: Sequence[str], models_dir: Path = MODELS_DIR):
        if not tiers:
            raise ValueError(f"no models to serve in {models_dir}")
        self.models = {name: NanoModel.load(name, models_dir) for name in tiers}
        self.locks = {name: threading.Lock() for name in tiers}

    def model(self, name: str) -> NanoModel:
        if name not in self.models:
            raise KeyError(name)
        return self.models[name]

    def generate(self, body: _Body, context: list[int], max_tokens: int | None) -> Generated:
        model = self.model(body.model)
        if body.n != 1:
            raise RequestError("n must be 1 (one sample per request)")
        if body.top_p != 1.0:
            raise RequestError("top_p other than 1 is not supported by the nano tiers")
        if body.stop:
            raise RequestError("stop sequences are not supported (a body ends at <eos>)")
        if not (math.isfinite(body.temperature) and 0 <= body.temperature <= 100):
            raise RequestError("temperature must be finite, in [0, 100]")
        room = model.config.block_size - len(context)
        budget = min(MAX_NEW_TOKENS if max_tokens is None else max_tokens, room)
        if max_tokens is not None and max_tokens < 1:
            raise RequestError("max_tokens must be >= 1")
        if budget < 1:
            raise RequestError(
                f"the prompt has {len(context)} tokens; model {body.model} reads at most "
                f"{model.config.block_size - 1}"
            )
        seed = body.seed if body.seed is not None else int(np.random.default_rng().integers(2**63))
        if not -(2**63) <= seed < 2**64:
            raise RequestError("seed must be in [-2**63, 2**64)")
        # A negative seed is the signed form of an unsigned one (endpoint.signed_seed).
        uniforms = sampling_uniforms(seed % 2**64, budget)[None]
        round_ = body.repair_round if body.repair_round is not None else context.count(FEEDBACK)
        if not 0 <= round_ <= MAX_REPAIR_ROUND:
            raise RequestError(f"repair_round must be in [0, {MAX_REPAIR_ROUND}]")
        with self.locks[body.model]:
            ((ids, scores),) = model.network.generate(
                [context], [round_], uniforms, body.temperature
            )
        pieces = [model.tokenizer.decode([i]) for i in ids]
        finished = len(scores) > len(ids)
        return Generated(
            text="".join(pieces),
            tokens=pieces + (["<eos>"] if finished else []),
            logprobs=[float(s) for s in scores],
            prompt_tokens=len(context),
            finish_reason="stop" if finished else "length",
        )

    def completion_context(self, body: CompletionBody) -> list[int]:
        if body.echo:
            raise RequestError("echo is not supported")
        prompt = body.prompt
        if isinstance(prompt, str):
            return repair_context(self.model(body.model).tokenizer, prompt, [])
        if prompt and all(isinstance(t, int) for t in prompt):
            vocabulary = self.model(body.model).config.vocab_size
            if any(not 0 <= t < vocabulary for t in prompt):  # type: ignore[operator]
                raise RequestError(f"token ids must be in [0, {vocabulary})")
            return list(prompt)  # type: ignore[arg-type]
        raise RequestError("prompt must be one string or one list of token ids")

    def chat_context(self, body: ChatBody) -> list[int]:
        turns = [m for m in body.messages if m.role != "system"]
        if not turns or turns[0].role != "user":
            raise RequestError("a chat needs a user message (the prompt) first")
        roles = [m.role for m in turns[1:]]
        if roles != ["assistant", "user"] * (len(roles) // 2):
            raise RequestError("after the prompt, messages alternate assistant (a candidate), user")
        tokenizer = self.model(body.model).tokenizer
        failures = [(turns[i].content, turns[i + 1].content) for i in range(1, len(turns) - 1, 2)]
        return repair_context(tokenizer, turns[0].content, failures)


def create_app(server: NanoServer, faults: Faults | None = None) -> FastAPI:
    """The FastAPI app over ``server``'s tiers."""
    faults = faults or Faults()
    app = FastAPI(title="occ-gym nano tiers", version="1")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return _error(400, f"invalid request: {error.errors()[:3]}")

    def served(name: str) -> str:
        return faults.served_name or name

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        data = [
            {"id": served(n), "object": "model", "created": 0, "owned_by": "occ-gym"}
            for n in server.models
        ]
        return {"object": "list", "data": data}

    def generated(body: Any, context: Any, limit: int | None) -> Generated | Response:
        """The model's answer, or the response a fault or a bad request gets instead."""
        fault = faults.next_fault()
        if fault is not None:
            return fault
        try:
            return server.generate(body, context(body), limit)
        except KeyError:
            return _error(404, f"model {body.model!r} not found; served: {sorted(server.models)}")
        except RequestError as error:
            return _error(400, str(error))

    @app.post("/v1/completions", response_model=None)
    def completions(body: CompletionBody) -> Any:
        made = generated(body, server.completion_context, body.max_tokens)
        if isinstance(made, Response):
            return made
        logprobs = None
        if body.logprobs is not None:
            offsets = np.cumsum([0, *map(len, made.tokens)])[:-1].tolist()
            logprobs = {
                "tokens": made.tokens,
                "token_logprobs": made.logprobs,
                "top_logprobs": None,
                "text_offset": offsets,
            }
        choice = {
            "index": 0,
            "text": made.text,
            "finish_reason": made.finish_reason,
            "logprobs": logprobs,
        }
        return _answer("text_completion", served(body.model), choice, made)

    @app.post("/v1/chat/completions", response_model=None)
    def chat(body: ChatBody) -> Any:
        made = generated(body, server.chat_context, body.max_completion_tokens or body.max_tokens)
        if isinstance(made, Response):
            return made
        content = [
            {"token": t, "logprob": lp, "bytes": list(t.encode()), "top_logprobs": []}
            for t, lp in zip(made.tokens, made.logprobs, strict=True)
        ]
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": made.text},
            "finish_reason": made.finish_reason,
            "logprobs": {"content": content} if body.logprobs else None,
        }
        return _answer("chat.completion", served(body.model), choice, made)

    return app


def _answer(kind: str, model: str, choice: dict[str, Any], made: Generated) -> dict[str, Any]:
    completion = len(made.logprobs)
    return {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": {
            "prompt_tokens": made.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": made.prompt_tokens + completion,
        },
    }


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": None, "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    tiers: Sequence[str] = (),
    models_dir: Path = MODELS_DIR,
    faults: Faults | None = None,
) -> None:
    """Load the tiers and serve them until interrupted."""
    import uvicorn

    app = create_app(NanoServer(tiers or shipped_tiers(models_dir), models_dir), faults)
    uvicorn.run(app, host=host, port=port, log_level="warning")


__all__ = ["Faults", "NanoServer", "create_app", "serve", "shipped_tiers"]
