"""The Hugging Face Hub: a bundle uploaded as a model repository, and pulled back into a registry.

Everything goes through ``huggingface_hub``, so its usual rules hold: the
token comes from ``HF_TOKEN`` or ``huggingface-cli login`` (or ``token``), the
cache from ``HF_HOME``/``HF_HUB_CACHE``, and with ``HF_HUB_OFFLINE=1`` nothing
touches the network: a pull reads the snapshot already in the local cache, a
push is refused. What lands in a repository is exactly a bundle folder
(:mod:`t2reg.registry.bundles`), model card included, so the Hub shows the
card and a pull imports the bundle with all of its checks.
"""

from __future__ import annotations

import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from t2reg.errors import HubError, InvalidInputError, NotFoundError, shown
from t2reg.registry.bundles import BundleImport, Manifest
from t2reg.registry.bundles.exchange import export_bundle, import_bundle
from t2reg.registry.validation import validate_revision

if TYPE_CHECKING:
    from t2reg.registry.api import Registry

REPO_TYPE = "model"


@dataclass(frozen=True)
class HubPush:
    """A push: the repository, the branch written (None: the default one), the commit's URL, what went."""

    repo: str
    revision: str | None
    commit_url: str
    manifest: Manifest


def push(registry: Registry, ref: str, repo: str, *, revision: str | None = None, with_lineage: bool = False,
         private: bool | None = None, token: str | None = None) -> HubPush:
    """Upload ``ref`` as a bundle to the model repository ``repo`` (created if missing), on ``revision``."""
    _check_repo_id(repo)
    revision = validate_revision(revision) or None
    with tempfile.TemporaryDirectory(prefix="t2reg-push-") as tmp:
        folder = Path(tmp) / "bundle"
        manifest = export_bundle(registry, ref, folder, with_lineage=with_lineage)
        url = upload_folder(folder, repo, revision=revision, private=private, token=token,
                            message=f"t2reg: {manifest.root}")
    return HubPush(repo, revision, url, manifest)


def upload_folder(folder: Path, repo: str, *, revision: str | None, private: bool | None, token: str | None,
                  message: str) -> str:
    """One commit of ``folder`` to ``repo``; the commit's URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    with _hub_errors(repo, "push to"):
        api.create_repo(repo, repo_type=REPO_TYPE, private=private, exist_ok=True)
        if revision is not None:
            api.create_branch(repo, repo_type=REPO_TYPE, branch=revision, exist_ok=True)
        info = api.upload_folder(folder_path=folder, repo_id=repo, repo_type=REPO_TYPE, revision=revision,
                                 commit_message=message)
    return str(getattr(info, "commit_url", info))


def pull(registry: Registry, repo: str, *, revision: str | None = None, token: str | None = None) -> BundleImport:
    """Download (or, offline, find in the local cache) ``repo`` at ``revision`` and import it as a bundle.

    ``revision`` is a branch, tag or commit: names joined by '/' (never '..'). What is imported is the
    snapshot folder ``<cache>/models--org--name/snapshots/<commit>`` and nothing else: a ref file in the cache
    naming another folder (``../../x``) is refused, not followed.
    """
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.file_download import repo_folder_name

    _check_repo_id(repo)
    revision = validate_revision(revision) or None
    cache = Path(constants.HF_HUB_CACHE).expanduser().resolve()
    storage = cache / repo_folder_name(repo_id=repo, repo_type=REPO_TYPE)
    with _hub_errors(repo, "pull"):
        folder = Path(snapshot_download(repo_id=repo, repo_type=REPO_TYPE, revision=revision, token=token,
                                        cache_dir=cache))
    _check_snapshot(folder, storage, repo)
    # the snapshot's files link into <cache>/models--org--name/blobs
    return import_bundle(registry, folder, links_within=storage)


_COMMIT = re.compile(r"[0-9a-f]{40}")


def _check_snapshot(folder: Path, storage: Path, repo: str) -> None:
    real = folder.resolve()
    if real.parent != (storage / "snapshots").resolve() or not _COMMIT.fullmatch(real.name):
        raise InvalidInputError(f"the Hugging Face cache names {shown(str(folder))} as the snapshot of {repo}, "
                                f"which is not a commit's folder under {storage / 'snapshots'}; refusing to import it")


def _check_repo_id(repo: str) -> None:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo)
    except HFValidationError:
        raise InvalidInputError(f"{shown(repo)} is not a Hugging Face repository id (ORG/NAME)") from None


@contextmanager
def _hub_errors(repo: str, doing: str) -> Iterator[None]:
    """huggingface_hub's and the network's failures as one-line t2reg errors."""
    import httpx
    from huggingface_hub import errors

    where = f"{repo} on the Hugging Face Hub"
    try:
        yield
    except errors.OfflineModeIsEnabled:
        raise HubError(f"cannot {doing} {where}: HF_HUB_OFFLINE is set") from None
    except errors.LocalEntryNotFoundError:
        raise NotFoundError(f"{where} is not in the local Hugging Face cache and the Hub cannot be reached "
                            "(or HF_HUB_OFFLINE is set)") from None
    except (errors.RepositoryNotFoundError, errors.RevisionNotFoundError):
        raise NotFoundError(f"cannot {doing} {where}: no such repository or revision (or no access)") from None
    except (errors.HfHubHTTPError, errors.IncompleteSnapshotError, httpx.HTTPError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise HubError(f"cannot {doing} {where}: {first}") from None
