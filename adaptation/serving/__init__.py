"""``t2reg serve``: an OpenAI-compatible HTTP server in which every request picks its expert.

| module     | holds                                                                              |
| ---------- | ---------------------------------------------------------------------------------- |
| spec       | the server's settings (:class:`ServeSpec`), light: the CLI reads its defaults       |
| decoding   | the parts of a decode loop whose rows come and go: KV-cache rows, sampling, text    |
| scheduler  | the thread that owns the model: continuous batching with per-row experts (hf, in   |
|            | factored form) or groups of one expert with weights pushed between them (vllm)     |
| catalog    | what the server offers: the base model, the pool's experts, ``<model>:auto``       |
| wire       | the OpenAI request bodies, response and chunk shapes, error bodies                 |
| service    | one request end to end: limits, ``:auto`` dispatch, completions, responses, streams |
| metrics    | Prometheus counters and histograms                                                 |
| app        | the FastAPI application: routes, key check, body limit, streaming                  |
| server     | loading it all and running uvicorn (SIGTERM drains, SIGHUP reloads)                |

Only :mod:`spec` imports without torch and FastAPI; the rest is imported by
the ``serve`` command when it runs.
"""
