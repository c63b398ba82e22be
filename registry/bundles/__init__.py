"""Bundles: an expert version with its history in a folder another registry (or the Hub) can take.

A bundle is a folder::

    README.md                          a Hugging Face model card (YAML front matter, see card.py)
    t2reg.json                         the manifest: versions, scores, protocols, tags, aliases, lineage
    experts/<sha256>.safetensors       expert files, format v1, byte for byte as published
    results/<sha256>.jsonl.gz          per-question results of the recorded scores

Every file is named by its sha256 and listed in the manifest with it; an
importer derives each path from the hash itself and checks the bytes, so
nothing in a bundle can steer a write or a read outside it.
"""

from t2reg.registry.bundles.exchange import BundleImport, export_bundle, import_bundle, read_bundle
from t2reg.registry.bundles.manifest import FORMAT_VERSION, Manifest

__all__ = ["BundleImport", "FORMAT_VERSION", "Manifest", "export_bundle", "import_bundle", "read_bundle"]
