"""``t2reg run`` and ``t2reg dispatch-report``: two-pass inference with expert dispatch."""

from __future__ import annotations

import click

from t2reg.cli.context import AppContext, pass_app
from t2reg.cli.options import OutputFile, backend_option, data_dir_option, json_option, pool_option, strategy_option
from t2reg.cli.output import emit_json, emit_table


@click.command("run")
@click.argument("questions", nargs=-1, required=True)
@click.option("--model", required=True, help="Base model (name or alias).")
@strategy_option
@pool_option
@backend_option()
@click.option("--max-new-tokens", default=256, show_default=True)
@json_option
@pass_app
def run(app: AppContext, questions, model, strategy, pool, backend, max_new_tokens, as_json) -> None:
    """Answer QUESTIONS with the expert a first pass picks for each (batched over all of them).

    \b
    t2reg run --model smollm2-135m --strategy prompt --pool 'model=smollm2-135m' "What is 12*7?"
    """
    from t2reg.adaptation.dispatch import DispatchSpec, answer_questions

    result = answer_questions(app.registry(), DispatchSpec(model, strategy, tuple(pool), backend), questions,
                              max_new_tokens)
    rows = [{"question": q, "category": c, "expert": e, "answer": a}
            for q, c, e, a in zip(questions, result.categories, result.experts, result.outputs)]
    if as_json:
        emit_json({**result.to_dict(), "answers": rows})
        return
    for row in rows:
        click.echo(f"[{row['category']} -> {row['expert'] or 'base'}] {row['question']}\n{row['answer'].strip()}\n")
    click.echo(f"first pass {result.first_pass_seconds:.2f}s, second pass {result.second_pass_seconds:.2f}s", err=True)


@click.command("dispatch-report")
@click.option("--model", required=True, help="Base model (name or alias).")
@click.option("--tasks", required=True, help="Comma-separated tasks whose test prompts are classified.")
@strategy_option
@pool_option
@click.option("--per-task", default=20, show_default=True, help="Test prompts per task.")
@backend_option()
@data_dir_option
@click.option("--out", type=OutputFile(), help="Write the confusion matrix as a PNG here.")
@json_option
@pass_app
def dispatch_report(app: AppContext, model, tasks, strategy, pool, per_task, backend, data_dir, out, as_json) -> None:
    """How the first pass sorts prompts of known tasks: the confusion matrix over categories."""
    from t2reg.adaptation.dispatch import DispatchSpec, report_dispatch

    result = report_dispatch(app.registry(), DispatchSpec(model, strategy, tuple(pool), backend),
                             [t.strip() for t in tasks.split(",") if t.strip()], per_task, data_dir)
    if out:
        from t2reg.adaptation.reporting.plots import plot_confusion

        plot_confusion(result.confusion, out, f"{model}: {strategy} dispatch, accuracy {result.accuracy:.2f}")
    if as_json:
        emit_json(result.to_dict())
        return
    emit_table(({"true": t, **row} for t, row in result.confusion.items()), ["true", *result.categories])
    click.echo(f"accuracy {result.accuracy:.3f} over {sum(map(sum, (r.values() for r in result.confusion.values())))}"
               f" prompts; first pass {result.seconds:.2f}s" + (f"; wrote {out}" if out else ""))


COMMANDS = [run, dispatch_report]
