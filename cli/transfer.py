"""``t2reg transfer``: carry experts from one base model to another."""

from __future__ import annotations

import click

from t2reg.cli.context import AppContext, pass_app
from t2reg.cli.jobs import print_transfer, queue_job, run_or_queue
from t2reg.cli.options import data_dir_option, default_of, json_option
from t2reg.cli.output import emit_json
from t2reg.adaptation.crossmodel.spec import ExpertTransferRecord, TransferSpec
from t2reg.transfer.alignment import LAYER_ALIGNMENTS, RANK_ALIGNMENTS
from t2reg.transfer.core import BASELINES
from t2reg.enums import Checkpointing, TransferMethod


@click.command()
@click.argument("ref", required=False)
@click.option("--from", "source_model", help="Transfer every latest expert of this model (instead of REF).")
@click.option("--to", "target", required=True, help="Target base model (name or alias).")
@click.option("--task", help="With --from: only experts for this task.")
@default_of(TransferSpec, "method", type=click.Choice(TransferMethod.values()),
            help="rank: z along canonical singular-value order (no data; carries skill between copies of a model). "
                 "projection: the expert's effect mapped through what both models' matrices do on shared text "
                 "(closed form, minutes). distill: the target's z trained to move its answers as the expert moves "
                 "the source's, on unlabeled questions (a training job).")
@default_of(TransferSpec, "layer_align", type=click.Choice(LAYER_ALIGNMENTS),
            help="rank: relative interpolates between the nearest source layers; index: equal depth, layer j to j.")
@default_of(TransferSpec, "rank_align", type=click.Choice(RANK_ALIGNMENTS),
            help="rank: how singular-value indices correspond: by position i/r, one to one, or by cumulative "
                 "energy (needs both models' spectra).")
@default_of(TransferSpec, "baseline", type=click.Choice(BASELINES),
            help="shuffled: the method's control. rank: each vector permuted; projection: the map fitted on "
                 "mismatched positions; distill: the teacher's per-question shifts handed to other questions.")
@default_of(TransferSpec, "seed", help="Seed of the control and of the texts' sample.")
@click.option("--texts", metavar="TASK[:SPLIT]",
              help="projection, distill: the unlabeled questions of a task's split (answers never read) "
                   "[default: the expert's task, train].")
@click.option("--texts-file", type=click.Path(dir_okay=False),
              help="projection: your own texts, UTF-8, one per line (or JSONL with a 'text' field).")
@default_of(TransferSpec, "n_texts", help="projection, distill: texts (questions) drawn, seeded.")
@click.option("--ridge", type=float, help="projection: relative ridge of the map [default: chosen per matrix on "
                                           "held-out positions].")
@default_of(TransferSpec, "bound", help="projection: |z - 1| is clipped to this.")
@default_of(TransferSpec, "beta", help="distill: the teacher moves the target by beta times the expert's "
                                       "log-ratio on the source.")
@default_of(TransferSpec, "iterations", help="distill: training iterations.")
@default_of(TransferSpec, "examples_per_step", help="distill: questions drawn for each iteration's step.")
@default_of(TransferSpec, "lr", help="distill: AdamW learning rate (cosine decay).")
@default_of(TransferSpec, "kl", help="distill: weight of the KL penalty to the target's base model.")
@default_of(TransferSpec, "validation", help="distill: held-out questions (another split) scored by agreement "
                                             "with the teacher, to pick the checkpoint.")
@default_of(TransferSpec, "eval_every", help="distill: iterations between those held-out scores.")
@click.option("--line-search", is_flag=True, default=TransferSpec.default("line_search"),
              help="distill: after training, scale z - 1 by the factor (1, 1.5, 2, 3, 4, 6, in turn until one does "
                   "worse) with the lowest KL to the teacher on the held-out questions, never one that agrees with "
                   "it less than the trained z; still no label read.")
@default_of(TransferSpec, "checkpoint_by", type=click.Choice(Checkpointing.values()),
            help="distill: how the held-out questions choose the checkpoint published. agreement: the iteration "
                 "whose picks agree with the teacher's most often; kl: the lowest KL to the teacher among the "
                 "iterations that agree with it at least as often as the target alone.")
@data_dir_option
@click.option("--name", help="Name of the published expert (only with REF).")
@click.option("--dry-run", is_flag=True, help="rank: compute the plan and report; publish nothing.")
@click.option("--detach", is_flag=True, help="Only queue it as a job; a `t2reg worker` runs it.")
@json_option
@pass_app
def transfer(app: AppContext, detach: bool, as_json: bool, **options) -> None:
    """Carry experts to another base model.

    Between copies of one model (same singular directions) `rank` carries the skill; between families
    the directions do not correspond, and `projection` or `distill` learn the correspondence from
    unlabeled text run through both models. Data-driven transfers run as jobs (a killed one resumes
    with `t2reg jobs resume ID`); every transfer is published with a lineage row holding its method,
    settings and the texts' identity, and reused when asked for again.

    \b
    t2reg transfer gsm8k-llama3-8b:2 --to mistral-7b
    t2reg transfer --from llama3-8b --to mistral-7b --task gsm8k
    t2reg transfer gsm8k-llama3-8b:2 --to mistral-7b --baseline shuffled --seed 7
    t2reg transfer arc-easy-smollm2-135m:1 --to gemma3-270m --method projection --n-texts 1000
    t2reg transfer arc-easy-smollm2-135m:1 --to gemma3-270m --method distill --iterations 30 --detach
    """
    from t2reg.adaptation.crossmodel.publishing import run_transfer

    if (options["ref"] is None) == (options["source_model"] is None):
        raise click.UsageError("give an expert REF or --from MODEL (one of them)")
    spec = TransferSpec(**options)
    spec.validate()
    if spec.method != TransferMethod.RANK:
        from t2reg.adaptation.crossmodel.publishing import check

        check(app.registry(), spec)  # the texts and experts, before a job exists
        run_or_queue(app, spec, detach=detach, as_json=as_json, label=f"transfer ({spec.method})")
        return
    if detach:
        queue_job(app, spec, as_json)
        return
    records = [ExpertTransferRecord.of(r) for r in run_transfer(app.registry(), spec)]
    if as_json:
        emit_json([r.to_dict() for r in records])
        return
    for record in records:
        print_transfer(record)


COMMANDS = [transfer]
