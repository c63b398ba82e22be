"""``t2reg jobs ...`` and ``t2reg worker``: the queue of long-running work."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import click

from t2reg.adaptation.crossmodel.spec import ExpertTransferRecord, TransferRecord
from t2reg.adaptation.jobs import record_of, run_with_progress, spec_of, submit, submit_here, work, worker_name
from t2reg.adaptation.search.spec import AdaptRecord, AdaptSpec
from t2reg.adaptation.training.spec import TrainRecord
from t2reg.cli.context import AppContext, pass_app
from t2reg.cli.options import OutputFile, json_option, replica_options
from t2reg.cli.output import emit_fields, emit_json, emit_table
from t2reg.records import ScoreRecord
from t2reg.specs import JobSpec
from t2reg.enums import JobStatus


def queue_job(app: AppContext, spec: JobSpec, as_json: bool):
    """Queue a job for a worker and say how to follow it (the ``--detach`` path of every long command)."""
    job = submit(app.registry(), spec)
    if as_json:
        emit_json(job.to_dict())
    else:
        click.echo(f"queued job {job.id}; start a worker with `t2reg worker` and follow it with `t2reg jobs show {job.id}`")
    return job


def run_or_queue(app: AppContext, spec: JobSpec, *, detach: bool, as_json: bool, label: str) -> None:
    """Queue the job (``--detach``), or run it in this process with a progress bar per step and print its result.

    Going through the queue (rather than calling the library directly) is what lets
    ``t2reg jobs resume`` continue a foreground run that crashed."""
    if detach:
        queue_job(app, spec, as_json)
        return
    registry = app.registry()
    claim, job = submit_here(registry, spec)
    click.echo(f"job {job.id}", err=True)
    _follow(registry, job, label, as_json, claim)


def _follow(registry, job, label: str, as_json: bool, claim=None) -> None:
    spec = spec_of(job)
    # adapt, train and distillation count iterations; a projection or a rank transfer is one step
    total = getattr(spec, "iterations", None) if getattr(spec, "method", "distill") == "distill" else None
    finished = run_with_progress(registry, job.id, total, label, claim=claim)
    if as_json:
        emit_json({"job": finished.id, **finished.result})
    else:
        print_result(finished)


def _score_line(name: str, task: str, score: ScoreRecord) -> str:
    low, high = score.interval95
    return f"{name:<8} {task}/{score.split}: {score.score:.4f} (95% CI {low:.3f}-{high:.3f}, n={score.n})"


def _print_adapt(result: AdaptRecord) -> None:
    click.echo(f"published {result.published} from {len(result.components)} experts: {', '.join(result.components)}")
    click.echo(f"search   {result.iterations} generations, {result.evaluations} candidates scored "
               f"({result.population_eval}), best on the shots {result.shot_score:.4f}")
    click.echo(_score_line("adapted", result.heldout.task, result.heldout))
    click.echo(_score_line("base", result.base.task, result.base))


def _print_train(result: TrainRecord) -> None:
    click.echo(f"published {result.published} (best of {result.iterations} iterations: "
               f"iteration {result.best_iteration})")
    for score, name in ((result.validation, "trained"), (result.test, "trained"), (result.base, "base")):
        click.echo(_score_line(name, score.task, score))


def print_transfer(result: ExpertTransferRecord) -> None:
    """One transfer: its report's lines and what it published."""
    for line in result.lines:
        click.echo(line)
    if result.published is None:
        click.echo(f"dry run: nothing published (from {result.source})")
    else:
        click.echo(f"{'reused' if result.reused else 'published'} {result.published} (from {result.source})")
    click.echo("")


def _print_transfers(result: TransferRecord) -> None:
    for transfer in result.transfers:
        print_transfer(transfer)


_PRINTERS = {AdaptRecord: _print_adapt, TrainRecord: _print_train, TransferRecord: _print_transfers}


def print_result(job) -> None:
    """A finished job's result, in the words of its kind."""
    record = record_of(job)
    printer = _PRINTERS.get(type(record))
    if printer is None:
        click.echo(f"job {job.id} {job.status}")
    else:
        printer(record)


@click.group()
def jobs() -> None:
    """Long-running work (adapt, train, ...): list, inspect, cancel, resume, plot."""


@jobs.command("list")
@click.option("--status", type=click.Choice(JobStatus.values()), help="Only jobs in this state.")
@click.option("--kind", help="Only jobs of this kind.")
@click.option("--limit", default=50, show_default=True)
@json_option
@pass_app
def list_jobs(app: AppContext, status, kind, limit, as_json) -> None:
    """Jobs, newest first."""
    found = app.registry().jobs.list(status=status, kind=kind, limit=limit)
    if as_json:
        emit_json([{k: v for k, v in j.to_dict().items() if k != "state"} for j in found])  # checkpoints: `jobs show`
        return
    emit_table(({"id": j.id, "kind": j.kind, "status": j.status, "task": j.spec.get("task"),
                 "model": j.spec.get("model"), "worker": j.worker, "created": j.created_at.strftime("%Y-%m-%d %H:%M")}
                for j in found), ["id", "kind", "status", "task", "model", "worker", "created"], empty="no jobs")


@jobs.command("show")
@click.argument("job_id", type=int)
@json_option
@pass_app
def show(app: AppContext, job_id: int, as_json: bool) -> None:
    """One job: its settings, progress, last step and result."""
    registry = app.registry()
    job = registry.jobs.get(job_id)
    events = registry.jobs.events(job_id)
    if as_json:
        emit_json({**job.to_dict(), "state": _readable(job.state), "events": [e.to_dict() for e in events]})
        return
    last = events[-1].data if events else {}
    emit_fields([("id", job.id), ("kind", job.kind), ("status", job.status), ("worker", job.worker),
                 ("attempts", job.attempts), ("created", job.created_at), ("heartbeat", job.heartbeat_at),
                 ("finished", job.finished_at), ("steps done", len(events)), ("last step", _summary(last)),
                 ("spec", {k: v for k, v in job.spec.items() if v not in (None, False)}),
                 ("published", (job.result or {}).get("published")), ("error", job.error)])


def _readable(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """The checkpoint without its binary payload (training keeps tensors as base64 text)."""
    if state is None:
        return None
    return {k: f"<{len(v)} characters>" if isinstance(v, str) and len(v) > 256 else v for k, v in state.items()}


def _summary(event: dict[str, Any]) -> str | None:
    if not event:
        return None
    parts = [f"{k}={v[0] if isinstance(v, list) else v:.4g}" for k, v in event.items()
             if k in ("best", "mean_score", "reward", "validation", "kl") and v is not None]
    return f"iteration {event.get('iteration')}: " + ", ".join(parts)


@jobs.command()
@click.argument("job_id", type=int)
@pass_app
def cancel(app: AppContext, job_id: int) -> None:
    """Stop a job: a queued one never starts, a running one stops at its next step."""
    job = app.registry().jobs.cancel(job_id)
    click.echo(f"cancelled job {job.id}")


@jobs.command()
@click.argument("job_id", type=int)
@click.option("--detach", is_flag=True, help="Only put it back in the queue; a `t2reg worker` continues it.")
@click.option("--force", is_flag=True, help="Take over a job whose worker still looks alive (it must be dead).")
@json_option
@pass_app
def resume(app: AppContext, job_id: int, detach: bool, force: bool, as_json: bool) -> None:
    """Continue a failed, cancelled or abandoned job from its last completed step."""
    registry = app.registry()
    job = registry.jobs.requeue(job_id, force=force)
    if detach:
        click.echo(f"queued job {job.id} again")
        return
    _follow(registry, job, job.kind, as_json)


@jobs.command()
@click.argument("job_id", type=int)
@click.option("--out", required=True, type=OutputFile(), help="PNG file to write.")
@pass_app
def plot(app: AppContext, job_id: int, out: str) -> None:
    """Plot a job's steps: best/mean score and alpha weights per generation (adapt), or its training curve."""
    from t2reg.adaptation.reporting.plots import plot_job

    registry = app.registry()
    path = plot_job(registry.jobs.get(job_id), registry.jobs.events(job_id), out)
    click.echo(f"wrote {path}")


@click.command()
@click.option("--once", is_flag=True, help="Exit when the queue is empty instead of waiting for more.")
@click.option("--kinds", help="Comma-separated job kinds to take [default: all].")
@click.option("--poll", default=2.0, show_default=True, help="Seconds between looks at an empty queue.")
@replica_options(AdaptSpec)
@pass_app
def worker(app: AppContext, once: bool, kinds: str | None, poll: float, replicas: int | None, ray_address: str | None,
           threads: int | None) -> None:
    """Claim queued jobs from the registry's database and run them; several workers may share one queue.

    With --replicas N every adapt and eval job this worker claims runs on N model replicas on Ray
    (the queue stays in the registry; Ray carries only each job's compute).
    """
    from t2reg.adaptation.distributed.settings import check_cluster, check_replica_fields

    overrides = {"replicas": replicas, "ray_address": ray_address, "threads": threads}
    check_replica_fields(SimpleNamespace(**overrides))  # refused now, not once per job it claims
    check_cluster(SimpleNamespace(**overrides))
    name = worker_name()
    click.echo(f"worker {name} on {app.registry().db.display_url}"
               + (f", {replicas} replica(s) per job" if replicas else ""), err=True)

    def report(job) -> None:
        tail = f": {job.error}" if job.error else ""
        click.echo(f"job {job.id} ({job.kind}) {job.status}{tail}")

    kinds_list = [k.strip() for k in kinds.split(",") if k.strip()] if kinds else None
    count = work(app.registry(), kinds_list, once=once, poll=poll, worker=name, on_job=report, overrides=overrides)
    click.echo(f"worker {name}: {count} job(s) run", err=True)


COMMANDS = [jobs, worker]
