"""Where execution outputs and step journals live: Prefect's default result storage.

The embedded default keeps them on the local disk ($PREFECT_HOME/storage), which only
processes on this machine can read. Several machines need one shared store: a Prefect
storage block set as the *server's* default result storage, so every process configured by
PREFECT_API_URL alone finds it (Prefect reads the default from the server at first use).

    flowdeck storage set redis://HOST:6379/1      a Redis Database block (prefect-redis)
    flowdeck storage set s3-bucket/my-results     any storage block already saved in Prefect
    flowdeck storage show

Set it before starting workers and API processes: each reads the default once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from flowdeck.errors import ConfigurationError, NotFound

REDIS_BLOCK_NAME = "flowdeck-results"


@dataclass(frozen=True)
class StorageSetting:
    block: str | None  # "block-type-slug/name", None for the local default
    block_id: UUID | None

    def describe(self) -> str:
        if self.block is None:
            return "local files under PREFECT_HOME/storage (this machine only)"
        return f"{self.block} (shared: every process reads it from the Prefect server)"


async def show() -> StorageSetting:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        configuration = await client.read_server_default_result_storage()
        block_id = configuration.default_result_storage_block_id
        if block_id is None:
            return StorageSetting(None, None)
        document = await client.read_block_document(block_id, include_secrets=False)
        slug = getattr(document.block_type, "slug", None)
        return StorageSetting(f"{slug}/{document.name}" if slug else document.name, block_id)


async def set_default(target: str) -> StorageSetting:
    """Make `target` (a Redis URL or an existing block's slug) the server's default."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        if target.startswith(("redis://", "rediss://")):
            block_id = await _save_redis_block(target)
        elif "/" in target and "://" not in target:
            type_slug, name = target.split("/", 1)
            try:
                document = await client.read_block_document_by_name(name, type_slug, include_secrets=False)
            except ObjectNotFound:
                raise NotFound(
                    f"no block {target!r} in Prefect: create it first (Prefect UI > Blocks, or "
                    "`prefect block create`), or give a redis://HOST:PORT/DB URL"
                ) from None
            block_id = document.id
        else:
            raise ConfigurationError(
                f"{target!r} is neither a Redis URL nor a block slug: give redis://HOST:PORT/DB "
                "or BLOCK-TYPE/NAME (for example s3-bucket/flowdeck-results)"
            )
        await client.update_server_default_result_storage(block_id)
    return await show()


async def _save_redis_block(url: str) -> UUID:
    from prefect_redis.blocks import RedisDatabase  # type: ignore[import-untyped]

    block: Any = RedisDatabase.from_connection_string(url)
    await _check_reachable(block)
    await RedisDatabase.aregister_type_and_schema()
    saved: UUID = await block.asave(REDIS_BLOCK_NAME, overwrite=True)
    return saved


async def _check_reachable(block: Any) -> None:
    from redis.exceptions import RedisError

    client = block.get_async_client()
    try:
        await client.ping()
    except (RedisError, OSError) as error:
        raise ConfigurationError(f"cannot reach Redis at {block.host}:{block.port}: {error}") from None
    finally:
        await client.aclose()
