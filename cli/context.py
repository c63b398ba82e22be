"""What every command shares: global options and the lazily opened registry."""

from __future__ import annotations

from dataclasses import dataclass, field

import click

from t2reg.registry import Registry
from t2reg.settings import Settings, load_settings


@dataclass
class AppContext:
    home: str | None = None
    database_url: str | None = None
    blob_root: str | None = None
    debug: bool = False
    _registry: Registry | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        return load_settings(self.home, self.database_url, self.blob_root)

    def registry(self, check_schema: bool = True, create: bool = False) -> Registry:
        """The registry the global options name; only ``init`` (and ``demo``) may ``create`` one."""
        if self._registry is None:
            self._registry = Registry(self.settings, check_schema=check_schema, create=create)
        return self._registry

    def close(self) -> None:
        if self._registry is not None:
            self._registry.close()


pass_app = click.make_pass_decorator(AppContext)
