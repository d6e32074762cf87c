"""Endpoint tiers: any OpenAI-compatible server (vLLM, SGLang, Ollama, llama.cpp, TGI, a hosted
API, or ``occ-gym serve``) writes the code, through the official ``openai`` client.

Each attempt is one request with its sampling seed (``attempt_seed``: a hash of the attempt's
key, as the nano tiers use), the pool's sampling settings and token log-probabilities requested.
What the server reports is recorded as it reports it: its token counts (``usage``), the model
it names (it must be the one asked for), the log-probabilities (nan where a server gives none:
never made up) and the request's latency. The client retries 429s, 5xxs, timeouts and dropped
connections with exponential backoff (``max_retries``); what still fails raises
``EndpointError`` naming the tier, and the recorder reports it.

Prompt templates (``TierSpec.template``):

- ``completion``: the prompt, then for a repair each earlier candidate with the verifier's
  feedback as comments and the prompt again;
- ``chat``: a system instruction, the prompt as the user's message, then each earlier candidate
  (assistant) and its feedback (user); the answer's code block is the body;
- ``nano``: the token ids the nano tiers read (``repair_context``, cut to the model's window),
  for ``occ-gym serve``; a recording through it equals a direct one.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

from occ_gym.resources import MODELS_DIR
from occ_gym.tiers.nano_card import MAX_NEW_TOKENS, attempt_seed, fit_repair_context, read_card
from occ_gym.tiers.pool import PoolError, PoolSpec, TierSpec
from occ_gym.tiers.writing import AttemptRequest, WrittenAttempt

CHAT_INSTRUCTION = (
    "Complete the Python function the user gives. Answer with the whole function in one "
    "```python code block. When the user answers with test feedback, fix your last answer."
)
FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)


class EndpointError(RuntimeError):
    """An endpoint tier's request failed after its retries, or its answer cannot be used."""


class EndpointWriter:
    """A ``Writer`` (``occ_gym.tiers.nano_tier``) that sends each attempt to an endpoint."""

    def __init__(self, spec: TierSpec, pool: PoolSpec):
        import openai  # only when a pool has an endpoint tier

        if spec.kind != "openai":
            raise ValueError(f"tier {spec.name} is a {spec.kind} tier, not an endpoint")
        self.spec = spec
        self.name = spec.name
        self.cost = pool.cost
        try:
            self.client = openai.OpenAI(
                base_url=spec.base_url,
                api_key=spec.api_key(),
                timeout=spec.timeout_s,
                max_retries=spec.max_retries,
            )
        except PoolError:
            raise
        except Exception as error:  # the client's own check of base_url, as httpx reports it
            raise PoolError(f"tier {spec.name}: unusable base_url ({error})") from None
        self.tokenizer = None
        if spec.template == "nano":
            models_dir = Path(spec.models_dir) if spec.models_dir else MODELS_DIR
            config, self.tokenizer, _ = read_card(models_dir / spec.model)
            self.context_limit = config.block_size - MAX_NEW_TOKENS

    def describe(self) -> str:
        return f"tier {self.name} ({self.spec.base_url}, model {self.spec.model})"

    def write(self, requests: Sequence[AttemptRequest]) -> list[WrittenAttempt]:
        with ThreadPoolExecutor(self.spec.concurrency) as pool:
            return list(pool.map(self.write_one, requests))

    def write_one(self, request: AttemptRequest) -> WrittenAttempt:
        import openai

        spec = self.spec
        seed = attempt_seed(
            request.problem.task_id, self.name, request.sample, request.repair_round
        )
        settings: dict[str, Any] = {
            "model": spec.model,
            "max_tokens": spec.max_tokens,
            "temperature": spec.temperature,
            "seed": seed,
        }
        if spec.top_p != 1.0:
            settings["top_p"] = spec.top_p
        dropped = 0
        started = time.perf_counter()
        try:
            if spec.template == "chat":
                answer: Any = self.client.chat.completions.create(
                    messages=chat_messages(request), logprobs=spec.logprobs, **settings
                )
            else:
                prompt: str | list[int]
                extra: dict[str, Any] = {}
                if self.tokenizer is not None:
                    prompt, dropped = fit_repair_context(
                        self.tokenizer, request.problem.prompt, request.failures, self.context_limit
                    )
                    extra = {"repair_round": request.repair_round}
                else:
                    prompt = completion_prompt(request)
                answer = self.client.completions.create(
                    prompt=prompt,
                    logprobs=1 if spec.logprobs else None,
                    extra_body=extra or None,
                    **settings,
                )
        except openai.APIError as error:
            raise EndpointError(f"{self.describe()}: {_reason(error)}") from None
        except ValueError as error:  # a body that is not the JSON the API promises
            raise EndpointError(f"{self.describe()}: malformed answer ({error})") from None
        wall_ms = 1000 * (time.perf_counter() - started)
        try:
            return self._written(answer, request, dropped, wall_ms)
        except (AttributeError, TypeError, ValueError, KeyError, IndexError) as error:
            raise EndpointError(f"{self.describe()}: malformed answer ({error!r})") from None

    def _written(
        self, answer: Any, request: AttemptRequest, dropped: int, wall_ms: float
    ) -> WrittenAttempt:
        spec = self.spec
        named = getattr(answer, "model", None)
        # Hosted APIs answer with a dated snapshot of the name asked for (gpt-4o-mini-2024-07-18).
        if not isinstance(named, str) or not (
            named == spec.model or named.startswith(spec.model + "-")
        ):
            raise EndpointError(f"{self.describe()}: the server answered as model {named!r}")
        choices = getattr(answer, "choices", None) or []
        usage = getattr(answer, "usage", None)
        if len(choices) != 1:
            raise EndpointError(f"{self.describe()}: expected one choice, got {len(choices)}")
        counts = [getattr(usage, name, None) for name in ("prompt_tokens", "completion_tokens")]
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
            raise EndpointError(
                f"{self.describe()}: the server reported no usable token usage ({usage!r}); "
                "occ-gym never guesses token counts"
            )
        choice = choices[0]
        if spec.template == "chat":
            text = choice.message.content or ""
            content = choice.logprobs.content if choice.logprobs is not None else None
            logprobs = [t.logprob for t in content] if content else []
            body = chat_body(text, request.problem.entry_point)
        else:
            text = choice.text or ""
            token_logprobs = choice.logprobs.token_logprobs if choice.logprobs else None
            logprobs = [lp for lp in token_logprobs or [] if lp is not None]
            body = text
        if not isinstance(text, str) or not all(isinstance(lp, (int, float)) for lp in logprobs):
            raise EndpointError(f"{self.describe()}: malformed answer (text or log-probabilities)")
        context, new = int(counts[0] or 0), int(counts[1] or 0)
        return WrittenAttempt(
            body=body,
            context_tokens=context,
            new_tokens=new,
            flops=spec.flops(context, new) if spec.parameters else 0,
            wall_ms=wall_ms,
            logprob_mean=sum(logprobs) / len(logprobs) if logprobs else math.nan,
            logprob_min=min(logprobs) if logprobs else math.nan,
            context_dropped=dropped,
            cost=spec.cost(self.cost, context, new, wall_ms),
        )


def signed_seed(seed: int) -> int:
    """An unsigned 64-bit attempt seed as the signed 64-bit integer servers accept (vLLM
    refuses seeds >= 2**63); ``occ-gym serve`` maps it back (``seed % 2**64``)."""
    return seed - 2**64 if seed >= 2**63 else seed


def completion_prompt(request: AttemptRequest) -> str:
    """The ``completion`` template: the prompt, or for a repair each failed candidate with its
    feedback as comments, then the prompt again."""
    prompt = request.problem.prompt
    parts = []
    for body, feedback in request.failures:
        comments = "".join(f"# {line}\n" for line in feedback.splitlines() or [""])
        parts.append(f"{prompt}{body}\n\n# That version failed its tests:\n{comments}\n")
    return "".join(parts) + prompt


def chat_messages(request: AttemptRequest) -> list[ChatCompletionMessageParam]:
    """The ``chat`` template's messages (what ``occ-gym serve`` reads back as the nano context)."""
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": CHAT_INSTRUCTION},
        {"role": "user", "content": request.problem.prompt},
    ]
    for body, feedback in request.failures:
        messages += [{"role": "assistant", "content": body}, {"role": "user", "content": feedback}]
    return messages


def chat_body(text: str, entry_point: str) -> str:
    """The body to append to the prompt from a chat answer: its code block (or the whole text);
    a block that defines the whole function follows a ``pass`` that closes the prompt's own,
    so the answer's definition is the one the tests call."""
    found = FENCE.search(text)
    code = found.group(1) if found else text
    if re.search(rf"^\s*def {re.escape(entry_point)}\s*\(", code, re.MULTILINE):
        return "    pass\n\n" + code
    return code


def _reason(error: Exception) -> str:
    status = getattr(error, "status_code", None)
    message = getattr(error, "message", None) or str(error)
    return f"HTTP {status}: {message}" if status else f"{type(error).__name__}: {message}"
