"""Function calling on local models: the pure pieces every backend may use.

``grammar`` turns a request's ``tools`` into validated specs and a decoding plan per
``tool_choice`` (``gbnf`` compiles their JSON schemas), ``template`` renders OpenAI messages
with tool calls for a model's own chat template, ``parsing`` turns what the model wrote back
into OpenAI ``tool_calls`` and merges streamed call deltas. They live in core because the
llama backend needs them; the tools feature (agent loop, sandbox, built-in tools) builds on
them.
"""
