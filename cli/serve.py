"""``t2reg serve``: an OpenAI-compatible server where every request names its expert (or ``<model>:auto``)."""

from __future__ import annotations

import click

from t2reg.adaptation.serving.spec import SERVE_STRATEGIES, ServeSpec
from t2reg.cli.context import AppContext, pass_app
from t2reg.cli.options import backend_option, default_of, device_option, dtype_option


@click.command()
@click.option("--model", required=True, help="Base model (name or alias).")
@click.option("--pool", multiple=True, metavar="FILTER",
              help="Experts to serve (repeatable, OR'ed), e.g. 'model=smollm2-135m' or NAME:VERSION "
                   "[default: every expert of the model].")
@backend_option(ServeSpec.default("backend"),
                help="hf (each row of a batch with its own expert) or vllm (batches grouped by expert).")
@default_of(ServeSpec, "host")
@default_of(ServeSpec, "port", help="0 picks a free port (the ready line says which).")
@default_of(ServeSpec, "strategy", type=click.Choice(SERVE_STRATEGIES),
            help="How MODEL:auto picks the expert: the model names the category (prompt) or the trained "
                 "dispatch expert does (classifier).")
@click.option("--api-key", envvar="T2REG_API_KEY", help="Require 'Authorization: Bearer KEY' on /v1 "
                                                       "[env T2REG_API_KEY].")
@default_of(ServeSpec, "max_batch", help="Rows decoded together.")
@default_of(ServeSpec, "max_tokens", help="The most tokens a request may ask for (its default when it names none).")
@default_of(ServeSpec, "max_prompt_tokens", help="The longest prompt, in tokens; longer get 400.")
@default_of(ServeSpec, "max_kv_tokens",
            help="KV-cache tokens all running requests may hold together (rows x the longest row's prompt + "
                 "max_tokens); requests wait for room, one that alone needs more gets 503.")
@default_of(ServeSpec, "max_queue", help="Requests that may wait for a row; more get 503.")
@default_of(ServeSpec, "max_body", help="Largest request body in bytes; larger get 413.")
@default_of(ServeSpec, "max_connections", help="Open connections (idle keep-alive ones too); requests beyond get 503.")
@default_of(ServeSpec, "read_timeout", help="Seconds a client may take to send its headers (then the connection "
                                            "closes), and again its body (408).")
@default_of(ServeSpec, "grace", help="Seconds SIGTERM waits for requests in flight.")
@device_option
@dtype_option
@default_of(ServeSpec, "log_level", type=click.Choice(["debug", "info", "warning", "error"]))
@pass_app
def serve(app: AppContext, **options) -> None:
    """Serve MODEL and its experts over the OpenAI API (/v1/models, /v1/chat/completions, /v1/completions).

    A request's `model` picks what answers it: the base model, an expert
    (NAME:VERSION, or NAME for its newest), or MODEL:auto, where a first pass
    picks the pool's best expert for the prompt's category. Requests for
    different experts share batches. POST /v1/reload (or SIGHUP) re-reads the
    pool; GET /health and GET /metrics (Prometheus) need no key. SIGTERM
    finishes the requests in flight and exits 0.

    \b
    t2reg serve --model smollm2-135m --pool 'model=smollm2-135m' --port 8000
    """
    from t2reg.adaptation.serving.server import serve as run_server

    spec = ServeSpec(**{**options, "pool": tuple(options["pool"])})
    run_server(app.registry(), spec)


COMMANDS = [serve]
