"""The nano tiers without torch: tokenizer, config, FLOP count, model cards and constants.

Replay mode, cost estimates and trace recording's bookkeeping read these; only writing code
(``occ_gym.tiers.nano``, the network) needs torch.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<fb>", "<unk>")
PAD, BOS, EOS, FEEDBACK, UNK = range(len(SPECIAL_TOKENS))
TOKEN_PATTERN = re.compile(r"\n(?: {4})*| ?[A-Za-z_]+| ?\d+| ?(?:==|!=|<=|>=|->|::)| ?[^\w\s]|\s")
"""Words and numbers keep one leading space; a newline keeps the indent after it."""
FALLBACK_CHARACTERS = (*tuple(chr(code) for code in range(32, 127)), "\n")


class CodeTokenizer:
    """Token ids for the task language; pieces outside the vocabulary fall back to characters."""

    def __init__(self, pieces: Sequence[str]):
        if tuple(pieces[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(f"a vocabulary starts with the special tokens {SPECIAL_TOKENS}")
        if len(set(pieces)) != len(pieces):
            raise ValueError("the vocabulary has repeated pieces")
        missing = set(FALLBACK_CHARACTERS) - set(pieces)
        if missing:
            raise ValueError(f"the vocabulary lacks fallback characters {sorted(missing)}")
        self.pieces = tuple(pieces)
        self.ids = {piece: index for index, piece in enumerate(self.pieces)}

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int) -> CodeTokenizer:
        """The pieces seen at least ``min_count`` times in ``texts``, plus every character."""
        counts: dict[str, int] = {}
        for text in texts:
            for piece in TOKEN_PATTERN.findall(text):
                counts[piece] = counts.get(piece, 0) + 1
        frequent = sorted(p for p, n in counts.items() if n >= min_count and len(p) > 1)
        return cls([*SPECIAL_TOKENS, *FALLBACK_CHARACTERS, *frequent])

    def __len__(self) -> int:
        return len(self.pieces)

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for piece in TOKEN_PATTERN.findall(text):
            index = self.ids.get(piece)
            if index is not None:
                ids.append(index)
            else:
                ids.extend(self.ids.get(ch, UNK) for ch in piece)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.pieces[i] for i in ids if i >= len(SPECIAL_TOKENS))


@dataclass(frozen=True)
class NanoConfig:
    """The shape of a NanoCodeGen model."""

    vocab_size: int
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 512
    block_size: int = 512
    max_repair_rounds: int = 3
    """Rounds beyond this share the last round's embedding."""

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")


def matmul_parameters(config: NanoConfig) -> int:
    """Weights one token passes through in matrix multiplications (the output head included)."""
    per_layer = 4 * config.d_model * config.d_model + 2 * config.d_model * config.d_ff
    return config.n_layers * per_layer + config.d_model * config.vocab_size


def attempt_flops(config: NanoConfig, context_tokens: int, new_tokens: int) -> int:
    """Matmul FLOPs of one attempt of a nano model (``transformer_flops`` of its shape)."""
    return transformer_flops(
        matmul_parameters(config), config.n_layers, config.d_model, context_tokens, new_tokens
    )


def transformer_flops(
    parameters: int, layers: int, d_model: int, context_tokens: int, new_tokens: int
) -> int:
    """Matmul FLOPs of one attempt: prefill ``context_tokens``, then decode ``new_tokens``.

    Every position fed through the model costs ``2 * parameters`` (the weights a token passes
    through in matrix multiplications) plus, per layer, ``4 * d_model * keys`` for the scores
    and the weighted sum over the ``keys`` it attends to (itself and everything before). The
    last new token is sampled but never fed back. Endpoint tiers declare their shape in a pool
    file and are counted the same way (``layers = d_model = 0``: no attention term).
    """
    fed = context_tokens + max(new_tokens - 1, 0)
    return 2 * parameters * fed + 4 * d_model * layers * (fed * (fed + 1) // 2)


def sampling_uniforms(seed: int, tokens: int) -> np.ndarray:
    """The uniform numbers that pick each written token of an attempt seeded ``seed``: the same
    prefix for any ``tokens``, so a server asked for fewer tokens samples the same body."""
    return np.random.default_rng(seed).random(tokens)


class CheckpointError(ValueError):
    """A model file is missing, truncated or does not match its card."""


def read_card(stem: Path) -> tuple[NanoConfig, CodeTokenizer, dict]:
    """The config, tokenizer and model card of a saved model, without loading its weights."""
    path = stem.with_suffix(".json")
    try:
        document = json.loads(path.read_text())
        config = NanoConfig(**document["config"])
        tokenizer = CodeTokenizer(document["vocabulary"])
        card = dict(document["card"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"cannot read model card {path}: {error}") from error
    if len(tokenizer) != config.vocab_size:
        raise CheckpointError(f"{path}: vocabulary size does not match the config")
    return config, tokenizer, card


MAX_NEW_TOKENS = 96
"""The longest body a tier writes (a reference body has at most about 60 tokens)."""
TEMPERATURE = 0.8
"""Sampling temperature of OCC-Code-v0's recorded and live attempts (each suite in
``occ_gym.tiers.suites`` names its own)."""
REPAIR_ESTIMATE_TOKENS = 70
"""Tokens a failed candidate and its feedback add to the context, for cost estimates."""
BODY_ESTIMATE_TOKENS = 35
"""Tokens of a typical body, for cost estimates made before an attempt."""
TIER_NAMES = ("cheap", "medium", "expensive")
"""The generalists, cheapest first: OCC-Code-v0's tiers (v1 adds specialists: ``suites``)."""


def repair_context(
    tokenizer: CodeTokenizer,
    prompt: str,
    failures: Sequence[tuple[str, str]],
    limit: int | None = None,
) -> list[int]:
    """``<bos> prompt`` then ``body <eos> <fb> feedback <eos>`` for each failed attempt.

    With a ``limit``, the oldest failures are left out until the context fits (the prompt and
    the latest failure always stay): ``fit_repair_context`` says how many.
    """
    return fit_repair_context(tokenizer, prompt, failures, limit)[0]


def fit_repair_context(
    tokenizer: CodeTokenizer,
    prompt: str,
    failures: Sequence[tuple[str, str]],
    limit: int | None = None,
) -> tuple[list[int], int]:
    """``repair_context`` and the number of earlier failed attempts it left out to fit."""
    head = [BOS, *tokenizer.encode(prompt)]
    turns = [
        [*tokenizer.encode(body), EOS, FEEDBACK, *tokenizer.encode(feedback), EOS]
        for body, feedback in failures
    ]
    dropped = 0
    while limit is not None and len(turns) > 1 and len(head) + sum(map(len, turns)) > limit:
        turns.pop(0)
        dropped += 1
    return head + [token for turn in turns for token in turn], dropped


def attempt_seed(task_id: str, tier: str, sample: int, repair_round: int) -> int:
    """The seed of one attempt's sampling: a stable hash of its key, never Python's ``hash``."""
    text = f"{task_id}|{tier}|{sample}|{repair_round}"
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
