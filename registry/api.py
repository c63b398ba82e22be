"""The registry's Python API. Every CLI command is one call on :class:`Registry`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from t2reg.builtin_models import BUILTIN_MODELS
from t2reg.errors import ConflictError, DatabaseError, InvalidInputError, NotFoundError, Remedy, shown
from t2reg.architectures import matrix_specs
from t2reg.expert_file import (
    Expert,
    ExpertMeta,
    Metric,
    check_against_model,
    constant_expert,
    dumps_expert,
    loads_expert,
    read_expert_bytes,
    write_expert,
)
from t2reg.protocols import Measurement, Protocol
from t2reg.question_results import loads_results
from t2reg.registry import base_models, evaluations, labels, lineage, maintenance, protocols, schema, versions
from t2reg.registry.bundles import BundleImport, Manifest, export_bundle, import_bundle
from t2reg.registry.blob_migration import BlobMigration, migrate_to_database
from t2reg.registry.blob_store import (
    BlobStore,
    record_blob_store,
    recorded_blob_store,
    recorded_blob_store_in,
    sha256_of,
)
from t2reg.registry.blobs import FileBlobStore
from t2reg.registry.blobs_db import DatabaseBlobStore
from t2reg.registry.db import Database, MissingDatabaseError
from t2reg.registry.filters import parse_filter
from t2reg.registry.jobs import JobQueue
from t2reg.registry.derived import DerivedExpert, publish_derived
from t2reg.registry.entities import (
    Derivation,
    EvaluationInfo,
    ExpertVersion,
    GcReport,
    Lineage,
    LineageGraph,
    ListedPage,
    ModelInfo,
    ProtocolInfo,
    RankedVersion,
    VerifyReport,
)
from t2reg.registry.model_sources import ModelSpec, from_builtin, resolve_spec
from t2reg.registry.orm import BaseModelRow
from t2reg.files import check_destination, contained
from t2reg.registry.validation import (
    check_metric,
    check_tag,
    check_text,
    parse_metric,
    parse_reference,
    path_slug,
    METRIC_MAX,
    validate_count,
    validate_model_name,
    validate_name,
    validate_task,
)
from t2reg.settings import Settings, load_settings
from t2reg.enums import BlobStoreKind, ListSort, Relation, Source, VersionStatus

_MIGRATE = Remedy("move them into the database", ("blobs", "migrate"), (), (("to", "db"),))

ExpertSource = str | os.PathLike[str] | bytes | Expert


class Registry:
    """A catalog of SVF experts: a database for rows, a blob store for files.

    A registry is opened, never conjured: a database that does not exist, an
    empty file or an empty database is refused (:class:`MissingDatabaseError`,
    naming ``t2reg init``) unless ``create`` is given, which initialises it
    (schema at head, built-in models registered). A database at another schema
    revision is refused with the command that fixes it. Opening leaves this
    registry's marker in its blob store (see :mod:`t2reg.registry.blobs`).
    """

    def __init__(self, settings: Settings | None = None, *, create: bool = False, check_schema: bool = True) -> None:
        self.settings = settings or load_settings()
        self.db = Database(self.settings.database_url, create=create)
        self.blobs: BlobStore = self._asked_for_store()  # until the registry says otherwise
        self.jobs = JobQueue(self.db, self.settings.job_timeout)
        if not check_schema:
            return
        try:
            if schema.check_schema(self.db) == "empty":
                if not create:
                    raise MissingDatabaseError(
                        f"database {self.db.display_url} holds no registry", remedy=Remedy("make one there", ("init",)))
                self._init_racing_others()
            self.blobs = self._recorded_store()
        except BaseException:
            self.db.dispose()
            raise
        if not self.db.read_only:
            self.blobs.register_user(self.db.identity)

    @classmethod
    def open(
        cls,
        home: str | os.PathLike[str] | None = None,
        database_url: str | None = None,
        blob_root: str | os.PathLike[str] | None = None,
        *,
        create: bool = False,
    ) -> "Registry":
        """Open the registry the arguments and environment point at (``create``: make it if it is not there)."""
        return cls(load_settings(home, database_url, blob_root), create=create)

    def close(self) -> None:
        self.db.dispose()

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- set-up ---------------------------------------------------------------

    def init(self) -> None:
        """Bring the schema to head, register the built-in models and record the blob store (idempotent).

        Blobs asked for in the database (``blob_root`` ``db``) are recorded as the registry's store, so
        every later open, on any machine, uses it; a registry that already keeps files is refused (it
        would lose them from sight) and pointed at ``t2reg blobs migrate``.
        """
        schema.upgrade(self.db, "head")
        in_database = self.settings.blob_root is None

        def register(session) -> None:
            for alias in BUILTIN_MODELS:
                if base_models.find_model(session, alias) is None:
                    base_models.add_model(session, from_builtin(alias))
            if in_database and recorded_blob_store_in(session) is not BlobStoreKind.DATABASE:
                if versions.count_all(session):
                    raise ConflictError(
                        f"registry {self.db.display_url} already keeps its blobs in files", remedy=_MIGRATE)
                record_blob_store(session, BlobStoreKind.DATABASE)

        self.db.write(register)
        self.blobs = self._recorded_store()
        self.blobs.prepare()
        self.blobs.register_user(self.db.identity)

    # The two places that know the store classes: everything else speaks to a BlobStore.

    def _asked_for_store(self) -> BlobStore:
        root = self.settings.blob_root
        return DatabaseBlobStore(self.db) if root is None else FileBlobStore(root)

    def _recorded_store(self) -> BlobStore:
        """The store this registry recorded wins over the settings: a machine that only reaches the
        database must find the blobs there without being told."""
        if recorded_blob_store(self.db) is BlobStoreKind.DATABASE:
            return DatabaseBlobStore(self.db)
        if self.settings.blob_root is None:
            raise ConflictError(
                f"registry {self.db.display_url} keeps its blobs in files, not in its database; give the file "
                "store's location", remedy=_MIGRATE)
        return FileBlobStore(self.settings.blob_root)

    def _init_racing_others(self) -> None:
        try:
            self.init()
        except DatabaseError:
            # Another process initialised the same empty database first.
            if schema.check_schema(self.db) != "ok":
                raise

    # -- models ---------------------------------------------------------------

    def add_model(
        self, source: str, *, name: str | None = None, aliases: Sequence[str] = (), revision: str | None = None
    ) -> ModelInfo:
        """Register a model from a directory with config.json, a built-in name or a hub id."""
        return self.add_model_spec(resolve_spec(source, name, revision), aliases)

    def add_model_spec(self, spec: ModelSpec, aliases: Sequence[str] = ()) -> ModelInfo:
        """Register a model described by a :class:`ModelSpec` (see :mod:`model_sources`)."""

        def add(session) -> ModelInfo:
            return base_models.to_info(session, base_models.add_model(session, spec, tuple(aliases)))

        return self.db.write(add)

    def model_config(self, ref: str) -> dict[str, Any]:
        """The model's ``config.json`` (or the built-in subset of it)."""
        with self.db.session() as session:
            return dict(base_models.get_model(session, ref).config)

    def spectra_dir(self, ref: str) -> Path:
        """Where the model's spectra live: ``<home>/spectra/<name>/<revision>`` ('/' written as '--')."""
        return self.spectra_root(self.get_model(ref))

    def spectra_root(self, info: ModelInfo) -> Path:
        """:meth:`spectra_dir` of a model already looked up (no query: a page listing every model's)."""
        return contained(self.settings.home / "spectra", path_slug(info.name), path_slug(info.revision or "default"))

    def models_dir(self, name: str) -> Path:
        """Where weights converted for model ``name`` live: ``<home>/models/<name>`` ('/' written as '--')."""
        return contained(self.settings.home / "models", path_slug(validate_model_name(name)))

    def set_spectra_fingerprint(self, ref: str, fingerprint: str) -> None:
        def work(session) -> None:
            base_models.get_model(session, ref).spectra_fingerprint = fingerprint

        self.db.write(work)

    def get_model(self, ref: str) -> ModelInfo:
        with self.db.session() as session:
            return base_models.to_info(session, base_models.get_model(session, ref))

    def list_models(self) -> list[ModelInfo]:
        with self.db.session() as session:
            return base_models.list_models(session)

    def model_shapes(self, ref: str) -> dict[str, tuple[int, int]]:
        """Parameter name -> ``(out, in)`` of every adaptable matrix of a registered model."""
        with self.db.session() as session:
            row = base_models.get_model(session, ref)
            return {k: (v[0], v[1]) for k, v in row.shapes.items()}

    def new_expert_file(
        self,
        model: str,
        out: str | os.PathLike[str],
        *,
        task: str | None = None,
        modules: str = "mlp",
        value: float = 1.0,
        noise: float = 0.0,
        seed: int = 0,
    ) -> Path:
        """Write a constant (identity by default) expert for a registered model."""
        with self.db.session() as session:
            row = base_models.get_model(session, model)
            specs = matrix_specs(row.config, modules)
            meta = ExpertMeta(base_model=row.name, architecture=row.architecture, base_model_revision=row.revision,
                              task=task, provenance={"source": Source.NATIVE.value,
                                                         "init": {"value": value, "noise": noise, "seed": seed}})
        return write_expert(constant_expert({s.name: s.rank for s in specs}, meta, value, noise, seed), out)

    # -- experts --------------------------------------------------------------

    def publish(
        self,
        source: ExpertSource,
        *,
        model: str | None = None,
        task: str | None = None,
        name: str | None = None,
        description: str = "",
        metrics: Iterable[Metric | str] = (),
        split: str | None = None,
        n: int | None = None,
        tags: Mapping[str, str] | None = None,
        lineage: Iterable[Lineage] = (),
        measurements: Iterable[Measurement] = (),
    ) -> ExpertVersion:
        """Validate an expert file and store it as the next version of its expert.

        The name defaults to ``TASK-MODEL`` (the model's alias); ``model`` and
        ``task`` default to the file's own metadata. Metrics given as text
        (``TASK:METRIC=VALUE``) get ``split`` and ``n``; they, and those embedded
        in the file, are recorded as hand-reported. ``measurements`` are runs t2reg
        measured, recorded under their protocols in the same transaction.
        ``lineage`` edges name their parent by reference.
        """
        data, expert, origin = _load_source(source)
        runs = tuple(measurements)
        for run in runs:
            _check_results(run.results)
        with self.db.session() as session:
            model_row, handle = self._publish_model(session, model, expert)
            check_against_model(expert, {k: min(v) for k, v in model_row.shapes.items()}, model_row.name, origin)
            task = validate_task(task or expert.meta.task)
            name = validate_name(name or self._default_name(task, handle))
            check_text(description, "description", 10_000, newlines=True)
            # scores embedded in the file pass the same rules as typed ones; they are hand-reported
            reported = Measurement(tuple(map(check_metric, expert.meta.metrics))
                                   + tuple(_as_metric(m, task, split, n) for m in metrics))
            new = versions.NewVersion(
                name=name,
                model_id=model_row.id,
                task=task,
                description=description,
                source=Source(expert.meta.source),
                data=data,
                expert=expert,
                tags=tuple(check_tag(k, str(v)) for k, v in (tags or {}).items()),
                lineage=tuple(self._lineage_rows(session, lineage)),
            )
            versions.check_owner(session, name, model_row.id)
        self.db.check_writable("publishing writes")

        def land(session) -> ExpertVersion:
            row = versions.land_version(session, new)
            for run in (reported, *runs):
                evaluations.add_run(session, row.id, run, "publish")
            return versions.describe(session, row)

        return self.blobs.write(self.db, [data, *_results_of(runs)], land)

    def publish_derived(self, derived: DerivedExpert) -> ExpertVersion:
        """Publish an expert t2reg made (see :mod:`t2reg.registry.derived`); once per job."""
        return publish_derived(self, derived)

    def _publish_model(self, session, model: str | None, expert: Expert) -> tuple[BaseModelRow, str]:
        file_model = expert.meta.base_model or None
        if model is None and file_model is None:
            raise InvalidInputError("the file names no base_model: say which model it is for ({model})",
                                    options=["model"])
        row = base_models.get_model(session, model or file_model)
        if model is not None and file_model is not None:
            claimed = base_models.find_model(session, file_model)
            if claimed is not None and claimed.id != row.id:
                raise ConflictError(
                    f"{{model}} {model} is {row.name!r}, but the file says its base model is {claimed.name!r}",
                    options=["model"],
                )
        ref = model or file_model
        aliases = base_models.aliases_of(session, row.id)
        handle = ref if ref in aliases else base_models.to_info(session, row).handle
        return row, handle

    @staticmethod
    def _default_name(task: str | None, handle: str) -> str:
        if not task:
            raise InvalidInputError("no task: give one ({task}), set 'task' in the file's metadata, or name the "
                                    "expert ({name})", options=["task", "name"])
        return f"{task}-{handle}"

    def _lineage_rows(self, session, lineage: Iterable[Lineage]):
        for edge in lineage:
            parent_id = None if edge.parent is None else versions.resolve(session, parse_reference(edge.parent)).id
            yield parent_id, edge

    def get(self, ref: str) -> ExpertVersion:
        """A version with its tags, aliases, evaluations and lineage."""
        parsed = parse_reference(ref)
        with self.db.session() as session:
            return versions.describe(session, versions.resolve(session, parsed))

    def list(
        self,
        model: str | None = None,
        task: str | None = None,
        sources: Iterable[str] = (),
        all_versions: bool = False,
        where: str | None = None,
    ) -> list[ExpertVersion]:
        """Experts (latest live version each) matching the options and a ``where`` filter."""
        parsed = parse_filter(where) if where is not None else None  # '' is a malformed filter, not no filter
        with self.db.session() as session:
            model_id = base_models.get_model(session, model).id if model else None
            return versions.list_versions(session, model_id, task, sources, all_versions, parsed)

    def list_page(self, where: str | None = None, sort: ListSort = ListSort.NAME, descending: bool = False,
                  offset: int = 0, limit: int = 50, metric: str = "accuracy") -> ListedPage:
        """A page of what ``list(where=...)`` lists, sorted (by score: each version's newest ``metric`` under
        its task's default protocol, the unscored last), with the total count and the page's scores; sorted,
        counted and cut in the database, so a page costs the same on a registry of any size."""
        parsed = parse_filter(where) if where is not None else None
        validate_count(limit, "limit")
        validate_count(offset, "offset", minimum=0)
        validate_name(metric, "metric", max_length=METRIC_MAX)
        with self.db.session() as session:
            return versions.list_page(session, parsed, ListSort(sort), descending, offset, limit, metric)

    def pool(self, specs: Sequence[str]) -> list[ExpertVersion]:
        """The union of several filters (or ``NAME:VERSION`` refs): each match's latest live version.

        A filter that matches nothing is an error naming it, so a typo never
        silently shrinks a pool.
        """
        chosen: dict[str, ExpertVersion] = {}
        for spec in specs:
            if "=" not in spec and " in " not in spec:
                found = [self.get(spec)]
            else:
                found = self.list(where=spec)
            if not found:
                raise NotFoundError(f"pool filter {shown(spec)} matched no live expert")
            for version in found:
                chosen.setdefault(version.ref, version)
        return list(chosen.values())

    def find_derived(self, parent: str, relation: Relation, params: Mapping[str, Any]) -> ExpertVersion | None:
        """A live version derived from ``parent`` by ``relation`` with exactly ``params``, if one exists."""
        parsed = parse_reference(parent)
        with self.db.session() as session:
            parent_row = versions.resolve(session, parsed)
            row = versions.find_derived(session, parent_row.id, Relation(relation).value, dict(params))
            return None if row is None else versions.describe(session, row)

    def derivations(self, ref: str) -> list[Derivation]:
        """The live versions made from this one (its lineage seen from the parent's side)."""
        with self.db.session() as session:
            return list(versions.derivations(session, versions.resolve(session, parse_reference(ref))))

    def lineage_graph(self, ref: str, up: int = 4, down: int = 2, limit: int = 40) -> LineageGraph:
        """The version's family: its ancestors ``up`` generations back, the live versions made from it ``down``
        generations on, at most ``limit`` versions, in a few queries however many it holds."""
        for count, what in ((up, "up"), (down, "down")):
            validate_count(count, what, minimum=0)
        validate_count(limit, "limit")
        with self.db.session() as session:
            root = versions.resolve(session, parse_reference(ref))
            return lineage.lineage_graph(session, root, up, down, limit)

    def read_expert(self, ref: str) -> Expert:
        """The stored expert file, parsed."""
        return loads_expert(self.expert_bytes(ref), ref)

    def expert_bytes(self, ref: str) -> bytes:
        """The exact published bytes of a version (what ``download`` writes), hash-checked on read."""
        return self.blobs.read(self._stored(ref).sha256)

    def download(self, ref: str, out: str | os.PathLike[str]) -> Path:
        """Copy the exact published bytes of a version to ``out`` (an existing non-regular file is refused)."""
        check_destination(out)  # before reading the blob: a bad path is the cheaper thing to find
        return self.blobs.copy_to(self._stored(ref).sha256, Path(out))

    def _stored(self, ref: str) -> ExpertVersion:
        version = self.get(ref)
        if version.status == VersionStatus.PURGED:
            raise NotFoundError(f"{version.ref} was purged by gc: its file is gone")
        return version

    def delete(self, ref: str) -> ExpertVersion:
        """Soft-delete one version (``NAME:VERSION`` or ``NAME@ALIAS``)."""
        parsed = parse_reference(ref)
        if parsed.version is None and parsed.alias is None:
            raise InvalidInputError(f"name the version to delete: {parsed.name}:VERSION")

        def work(session) -> ExpertVersion:
            row = versions.resolve(session, parsed, live_only=True)
            versions.soft_delete(session, row)
            return versions.describe(session, row)

        return self.db.write(work)

    # -- evaluations ----------------------------------------------------------

    def record(
        self,
        ref: str,
        metrics: Iterable[Metric | str],
        split: str | None = None,
        n: int | None = None,
        source: str = "record",
        protocol: Protocol | None = None,
        results: bytes | None = None,
    ) -> ExpertVersion:
        """Add evaluations to a version; the newest per task, metric and protocol is what ``best`` ranks.

        Text metrics may leave out the task (``accuracy=0.8``): the expert's own is used. Scores without a
        ``protocol`` were measured somewhere t2reg cannot see and rank only among such scores.
        ``results`` are the run's per-question results (:mod:`t2reg.question_results`), kept as a blob.
        """
        parsed = parse_reference(ref)
        _check_results(results)

        def work(session) -> ExpertVersion:
            row = versions.resolve(session, parsed, live_only=True)
            session.refresh(row, with_for_update=True)  # serialise concurrent records of one version
            task = versions.describe(session, row).task
            parsed_metrics = tuple(_as_metric(m, task, split, n) for m in metrics)
            if not parsed_metrics:
                raise InvalidInputError("give at least one score ({metrics}), e.g. gsm8k:accuracy=0.79",
                                        options=["metrics"])
            evaluations.add_run(session, row.id, Measurement(parsed_metrics, protocol, results), source)
            return versions.describe(session, row)

        return self.blobs.write(self.db, [] if results is None else [results], work)

    def best(
        self,
        task: str,
        metric: str = "accuracy",
        model: str | None = None,
        split: str | None = None,
        sources: Iterable[str] = (),
        limit: int = 5,
        protocol: str | None = None,
    ) -> list[RankedVersion]:
        """Live versions ranked by their most recent ``task``/``metric`` score under one protocol, best first.

        ``protocol`` is a protocol id; by default the task's most used measured protocol with such scores. Each
        row carries its 95% interval and whether that overlaps the leader's."""
        validate_count(limit, "limit")
        with self.db.session() as session:
            model_id = base_models.get_model(session, model).id if model else None
            if protocol is not None:
                protocols.get(session, protocol)
            return evaluations.best(session, task, metric, model_id, split, sources, limit, protocol)

    def record_model_evaluation(self, model: str, metrics: Iterable[Metric], source: str = "eval",
                                protocol: Protocol | None = None, results: bytes | None = None) -> list[EvaluationInfo]:
        """Record scores of the base model itself (no expert): the baseline for its experts."""
        _check_results(results)
        results_sha = None if results is None else sha256_of(results)

        def work(session) -> list[EvaluationInfo]:
            row = base_models.get_model(session, model)
            return [base_models.add_evaluation(session, row.id, metric, source, protocol_id, results_sha)
                    for metric, protocol_id in protocols.assign(session, list(metrics), protocol)]

        return self.blobs.write(self.db, [] if results is None else [results], work)

    def model_evaluations(self, model: str, task: str | None = None) -> list[EvaluationInfo]:
        with self.db.session() as session:
            return base_models.evaluations(session, base_models.get_model(session, model).id, task)

    def protocols(self, task: str | None = None) -> list[ProtocolInfo]:
        """Protocols with recorded scores (of one task), most used first."""
        with self.db.session() as session:
            rows = protocols.for_task(session, task) if task else protocols.every(session)
            return [r.to_entity() for r in rows]

    def protocols_by_id(self, ids: Iterable[str]) -> dict[str, ProtocolInfo]:
        """The protocols of these ids that exist, in one query (an unknown id is left out)."""
        with self.db.session() as session:
            return {r.id: r.to_entity() for r in protocols.some(session, set(ids))}

    def protocol(self, protocol_id: str) -> ProtocolInfo:
        with self.db.session() as session:
            return protocols.get(session, protocol_id).to_entity()

    def latest_measured(self, task: str, protocol: str, *, ref: str | None = None,
                        model: str | None = None) -> EvaluationInfo | None:
        """The newest score of the expert ``ref`` (or of the base ``model`` alone) on ``task`` under
        ``protocol`` that kept its per-question results, if there is one."""
        with self.db.session() as session:
            if ref is not None:
                row = versions.resolve(session, parse_reference(ref))
                return evaluations.latest_with_results(session, row.id, task, protocol)
            return base_models.latest_with_results(session, base_models.get_model(session, model).id, task,
                                                   protocol)

    def evaluation_results(self, sha256: str) -> list[dict[str, Any]]:
        """The per-question results an evaluation kept (hash-checked on read)."""
        return loads_results(self.blobs.read(sha256), f"results {sha256[:12]}")

    def metrics_for_task(self, task: str) -> list[str]:
        with self.db.session() as session:
            return evaluations.metrics_for_task(session, task)

    # -- labels ---------------------------------------------------------------

    def tag(self, ref: str, tags: Mapping[str, str], remove: Sequence[str] = ()) -> ExpertVersion:
        parsed = parse_reference(ref)
        clean = dict(check_tag(k, str(v)) for k, v in tags.items())

        def work(session) -> ExpertVersion:
            row = versions.resolve(session, parsed)
            labels.set_tags(session, row, clean)
            if remove:
                labels.remove_tags(session, row, list(remove))
            return versions.describe(session, row)

        return self.db.write(work)

    def alias(self, ref: str, alias: str, force: bool = False) -> ExpertVersion:
        """Point ``NAME@alias`` at this version (``force`` moves it from another one)."""
        parsed = parse_reference(ref)

        def work(session) -> ExpertVersion:
            row = versions.resolve(session, parsed)
            labels.set_alias(session, row, alias, move=force)
            return versions.describe(session, row)

        return self.db.write(work)

    # -- sharing --------------------------------------------------------------

    def export_bundle(self, ref: str, out: str | os.PathLike[str], *, with_lineage: bool = False) -> Manifest:
        """Write a version as a bundle folder (see :mod:`t2reg.registry.bundles`); ``with_lineage`` adds
        every ancestor, so a transfer or a mixture travels with what it came from."""
        return export_bundle(self, ref, out, with_lineage=with_lineage)

    def import_bundle(self, folder: str | os.PathLike[str]) -> BundleImport:
        """Bring a bundle folder in: checked whole, then written in one transaction; idempotent."""
        return import_bundle(self, folder)

    # -- maintenance ----------------------------------------------------------

    def migrate_blobs_to_database(self, on_blob: Callable[[str], None] | None = None) -> BlobMigration:
        """Move the blobs from the file store into the database and switch to it (see
        :mod:`t2reg.registry.blob_migration`); a run on a registry already there does nothing."""
        self.db.check_writable("migrating writes")
        report = migrate_to_database(self.db, self.blobs, on_blob)
        self.blobs = self._recorded_store()
        return report

    def verify(self) -> VerifyReport:
        return maintenance.verify(self.db, self.blobs)

    def gc(
        self,
        grace_seconds: float = 600.0,
        dry_run: bool = False,
        *,
        force: bool = False,
        shared_ok: bool = False,
        purge_deleted: bool = False,
        purge_grace_seconds: float = 7 * 86400.0,
    ) -> GcReport:
        """Free unreferenced blobs (see :func:`t2reg.registry.maintenance.gc` for when it refuses).

        ``purge_deleted`` first purges versions soft-deleted at least ``purge_grace_seconds`` ago.
        """
        if not dry_run:
            self.db.check_writable("gc would write")
        return maintenance.gc(self.db, self.blobs, grace_seconds, dry_run, force=force, shared_ok=shared_ok,
                              purge=purge_deleted, purge_grace_seconds=purge_grace_seconds)


def _load_source(source: ExpertSource) -> tuple[bytes, Expert, str]:
    if isinstance(source, Expert):
        data = dumps_expert(source)
        return data, loads_expert(data, "expert"), "expert"
    if isinstance(source, bytes):
        return source, loads_expert(source), "<bytes>"
    data = read_expert_bytes(source)
    return data, loads_expert(data, str(source)), str(source)


def _check_results(results: bytes | None) -> None:
    """Refuse malformed per-question results before anything is stored."""
    if results is not None:
        loads_results(results)


def _results_of(runs: Iterable[Measurement]) -> list[bytes]:
    return [run.results for run in runs if run.results is not None]


def _as_metric(metric: Metric | str, task: str | None, split: str | None = None, n: int | None = None) -> Metric:
    return check_metric(metric) if isinstance(metric, Metric) else parse_metric(metric, task, split, n)
