"""A Terraform provider whose "cloud" is a JSON file, so drift can be made for real.

It serves ``toilkit up``'s demo and the test suite alike. Terraform launches this file as
a plugin through the executable that :mod:`toilkit.demo.mirror` writes into a filesystem
mirror. Every resource lives in one JSON document::

    {"cloud_bucket": {"<id>": {...attributes...}}, "cloud_queue": {"<id>": {...}}}

``read`` re-reads that document on every refresh, so whoever edits it after an apply
changes "the world outside Terraform" exactly as a console click would, and the next
plan reports it under ``resource_drift``.

Configuration:
    * ``provider "cloud" { state_file = "..." }`` or ``TOILKIT_CLOUD_FILE``: the JSON
      document (created on first write).
    * ``TOILKIT_CLOUD_LATENCY_MS``: added to every read, as a real cloud API's round trip
      is; benchmarks use it to make N states cost what N real states would.

It imports nothing from toilkit: Terraform runs it as a script, with only the ``tf``
package (PyPI) and the standard library on its path.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from tf import blocks, schema, types
from tf.iface import (
    Config,
    CreateContext,
    DeleteContext,
    ImportContext,
    ReadContext,
    State,
    UpdateContext,
)
from tf.provider import Provider, Resource
from tf.runner import run_provider
from tf.utils import Diagnostics

PROVIDER_SOURCE = "terraform.toilkit.test/toilkit/cloud"
PROVIDER_VERSION = "0.1.0"
CLOUD_FILE_ENV = "TOILKIT_CLOUD_FILE"
LATENCY_ENV = "TOILKIT_CLOUD_LATENCY_MS"
# Stored with every object's state; with no version the framework warns on each plan
# that it "upgraded" the state with its default upgrade.
SCHEMA_VERSION = 1


class JsonCloud:
    """The JSON document that plays the cloud; safe across threads and processes.

    Terraform calls a provider from several gRPC threads at once (``-parallelism``)
    and tests may run several Terraform processes against one document, so every
    change is a read-modify-write under an exclusive ``flock`` and lands by an atomic
    rename: a reader never sees half a document.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock_path.open("a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _load(self) -> dict[str, dict[str, dict[str, Any]]]:
        if not self.path.exists():
            return {}
        document: dict[str, dict[str, dict[str, Any]]] = json.loads(self.path.read_text())
        return document

    def _store(self, document: dict[str, dict[str, dict[str, Any]]]) -> None:
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name)
        with os.fdopen(handle, "w") as out:
            json.dump(document, out, indent=2, sort_keys=True)
        os.replace(temporary, self.path)

    def get(self, kind: str, object_id: str) -> dict[str, Any] | None:
        with self._locked():
            found = self._load().get(kind, {}).get(object_id)
        return copy.deepcopy(found)

    def put(self, kind: str, object_id: str, attributes: dict[str, Any]) -> None:
        with self._locked():
            document = self._load()
            document.setdefault(kind, {})[object_id] = attributes
            self._store(document)

    def remove(self, kind: str, object_id: str) -> None:
        with self._locked():
            document = self._load()
            document.get(kind, {}).pop(object_id, None)
            self._store(document)


def _simulate_api_latency() -> None:
    latency_ms = float(os.environ.get(LATENCY_ENV, "0") or 0)
    if latency_ms > 0:
        time.sleep(latency_ms / 1000)


class CloudProvider(Provider):  # type: ignore[misc]  # tf ships no type hints
    """``provider "cloud"``: resources ``cloud_bucket`` and ``cloud_queue``."""

    def __init__(self) -> None:
        self.cloud: JsonCloud | None = None

    def full_name(self) -> str:
        return PROVIDER_SOURCE

    def get_model_prefix(self) -> str:
        return "cloud_"

    def get_provider_schema(self, diags: Diagnostics) -> schema.Schema:
        return schema.Schema(
            attributes=[
                schema.Attribute(
                    "state_file",
                    types.String(),
                    optional=True,
                    description=f"The JSON document that is the cloud; else ${CLOUD_FILE_ENV}.",
                ),
            ]
        )

    def validate_config(self, diags: Diagnostics, config: Config) -> None:
        if not config.get("state_file") and not os.environ.get(CLOUD_FILE_ENV):
            diags.add_error(
                "No cloud document",
                f"Set state_file in the provider block or ${CLOUD_FILE_ENV}.",
            )

    def configure_provider(self, diags: Diagnostics, config: Config) -> None:
        location = config.get("state_file") or os.environ.get(CLOUD_FILE_ENV, "")
        self.cloud = JsonCloud(Path(location))

    def get_data_sources(self) -> list[type[Any]]:
        return []

    def get_resources(self) -> list[type[Resource]]:
        return [Bucket, Queue]


class _CloudObject(Resource):  # type: ignore[misc]  # tf ships no type hints
    """CRUD against :class:`JsonCloud`; subclasses only name themselves and their schema."""

    kind: ClassVar[str]

    def __init__(self, provider: CloudProvider) -> None:
        self.provider = provider

    @classmethod
    def get_name(cls) -> str:
        # Terraform prefixes the provider's name: "bucket" is the cloud_bucket resource.
        return cls.kind.removeprefix("cloud_")

    @staticmethod
    def _schema(
        *attributes: schema.Attribute, block_types: list[schema.NestedBlock] | None = None
    ) -> schema.Schema:
        """An object's schema: the id the cloud gives it, its name, then its own attributes."""
        return schema.Schema(
            version=SCHEMA_VERSION,
            attributes=[
                schema.Attribute("id", types.String(), computed=True),
                # A new name is a new object, as renaming a real bucket or queue is.
                schema.Attribute("name", types.String(), required=True, requires_replace=True),
                *attributes,
            ],
            block_types=block_types,
        )

    @property
    def _cloud(self) -> JsonCloud:
        if self.provider.cloud is None:
            raise RuntimeError("the provider was not configured before a resource call")
        return self.provider.cloud

    def create(self, ctx: CreateContext, planned: State) -> State:
        created = dict(planned)
        created["id"] = f"{self.kind}-{uuid.uuid4().hex[:12]}"
        self._cloud.put(self.kind, created["id"], created)
        return created

    def read(self, ctx: ReadContext, current: State) -> State | None:
        _simulate_api_latency()
        # None tells Terraform the object is gone, which a plan reports as drift too.
        return self._cloud.get(self.kind, current["id"])

    def update(self, ctx: UpdateContext, current: State, planned: State) -> State:
        updated = dict(planned)
        updated["id"] = current["id"]
        self._cloud.put(self.kind, updated["id"], updated)
        return updated

    def delete(self, ctx: DeleteContext, current: State) -> None:
        self._cloud.remove(self.kind, current["id"])

    def import_(self, ctx: ImportContext, id: str) -> State | None:
        found = self._cloud.get(self.kind, id)
        if found is None:
            ctx.diagnostics.add_error(f"No {self.kind} with id {id!r} in the cloud")
        return found


class Bucket(_CloudObject):
    """``cloud_bucket``: a name, tags, a versioning flag and lifecycle rules."""

    kind = "cloud_bucket"

    @classmethod
    def get_schema(cls) -> schema.Schema:
        return cls._schema(
            schema.Attribute("tags", types.Map(types.String()), optional=True),
            schema.Attribute("versioning", types.Bool(), optional=True),
            block_types=[
                blocks.SetNestedBlock(
                    "lifecycle_rule",
                    schema.Block(
                        attributes=[
                            schema.Attribute("prefix", types.String(), required=True),
                            schema.Attribute("expiration_days", types.Number(), required=True),
                        ]
                    ),
                )
            ],
        )


class Queue(_CloudObject):
    """``cloud_queue``: a name, a visibility timeout, tags and a sensitive secret."""

    kind = "cloud_queue"

    @classmethod
    def get_schema(cls) -> schema.Schema:
        return cls._schema(
            schema.Attribute("visibility_timeout", types.Number(), optional=True),
            schema.Attribute("tags", types.Map(types.String()), optional=True),
            schema.Attribute("secret", types.String(), optional=True, sensitive=True),
        )


def main() -> None:
    """Serve the provider over go-plugin's gRPC handshake, as Terraform expects."""
    run_provider(CloudProvider(), sys.argv)


if __name__ == "__main__":
    main()
