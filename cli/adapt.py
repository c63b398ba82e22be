"""``t2reg adapt``: few-shot CEM over a pool of experts (runs in the foreground)."""

from __future__ import annotations

import click

from t2reg.cli.context import AppContext, pass_app
from t2reg.cli.output import emit_json, json_option


@click.command()
@click.option("--model", required=True, help="The model to adapt.")
@click.option("--task", required=True, help="The task to adapt to.")
@click.option("--pool", "pool", multiple=True, required=True, metavar="FILTER",
              help="Experts to mix (repeatable, OR'ed): 'model=llama3-8b', 'task in (gsm8k,mbpp)', or NAME:VERSION.")
@click.option("--shots", default=10, show_default=True, help="Examples that drive the search.")
@click.option("--heldout", default=100, show_default=True, help="Test examples the result is reported on.")
@click.option("--per-matrix", is_flag=True, help="One coefficient per expert and matrix instead of per expert.")
@click.option("--population", default=32, show_default=True)
@click.option("--elite", default=0.2, show_default=True, help="Elite fraction.")
@click.option("--iterations", default=50, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--backend", default="hf", show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False), help="Evaluation data [env T2REG_DATA_DIR].")
@click.option("--name", help="Name of the published expert [default: TASK-MODEL-adapted].")
@json_option
@pass_app
def adapt(app: AppContext, model, task, pool, shots, heldout, per_matrix, population, elite, iterations, seed,
          backend, data_dir, name, as_json) -> None:
    """Find the mixture of pool experts that does best on a few shots; publish it.

    \b
    t2reg adapt --model mistral-7b --task arc-challenge --shots 10 \\
        --pool 'model=llama3-8b' --pool 'model=mistral-7b,task in (gsm8k,mbpp,arc-easy)'
    """
    from tqdm import tqdm

    from t2reg.adaptation.adapt import adapt as run
    from t2reg.adaptation.cem import CEMConfig

    config = CEMConfig(population=population, elite_fraction=elite, iterations=iterations, seed=seed)
    bar = tqdm(total=iterations, desc="CEM", unit="gen")

    def report(state) -> None:
        bar.update(1)
        bar.set_postfix(best=f"{state.best_score[0]:.3f}")

    try:
        result = run(app.registry(), model, task, pool, shots=shots, heldout=heldout, config=config,
                     per_matrix=per_matrix, backend=backend, data_dir=data_dir, name=name, on_generation=report)
    finally:
        bar.close()
    if as_json:
        emit_json(result.to_dict())
        return
    click.echo(f"published {result.version.ref} from {len(result.components)} experts: {', '.join(result.components)}")
    for label, r in (("adapted", result.heldout), ("base", result.base)):
        low, high = r.interval
        click.echo(f"{label:<8} {task}/test: {r.score:.4f} (95% CI {low:.3f}-{high:.3f}, n={r.n})")


COMMANDS = [adapt]
