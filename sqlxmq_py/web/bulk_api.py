"""The handlers of the HTTP API's bulk actions (declared in ``routes.py``): count, retry,
cancel, delete and run now every job matching a filter, in batches (``sqlxmq_py.admin``)."""

from __future__ import annotations

from starlette.responses import Response

from ..admin import (
    ChainsWouldBeReleasedError,
    cancel_matching,
    chains_released,
    count_matching,
    delete_matching,
    retry_matching,
    run_now,
)
from .bulk_models import (
    BulkCancelRequest,
    BulkCountRequest,
    BulkCountResponse,
    BulkDeleteRequest,
    BulkRequest,
    BulkResponse,
)
from .context import WebContext
from .http import ApiError, answer, field_errors
from .operation import Input
from .responses import BlockedChains

__all__ = ["bulk_cancel", "bulk_count", "bulk_delete", "bulk_retry", "bulk_run_now"]


async def bulk_count(ctx: WebContext, given: Input) -> Response:
    request = given.body_as(BulkCountRequest)
    job_filter = request.job_filter()
    pool = await ctx.pools.open()
    count = await count_matching(pool, job_filter, action=request.action)
    chains = await chains_released(pool, job_filter) if request.action == "delete" else []
    rows = BlockedChains.of(chains).chains
    return answer(BulkCountResponse.model_construct(count=count, chains=rows))


async def bulk_retry(ctx: WebContext, given: Input) -> Response:
    job_filter = given.body_as(BulkRequest).job_filter()
    changed = await retry_matching(await ctx.pools.open(), job_filter)
    return answer(BulkResponse.model_construct(changed=changed))


async def bulk_cancel(ctx: WebContext, given: Input) -> Response:
    request = given.body_as(BulkCancelRequest)
    job_filter = request.job_filter()
    pool = await ctx.pools.open()
    with field_errors("reason"):
        changed = await cancel_matching(pool, job_filter, reason=request.reason or "cancelled")
    return answer(BulkResponse.model_construct(changed=changed))


async def bulk_delete(ctx: WebContext, given: Input) -> Response:
    request = given.body_as(BulkDeleteRequest)
    job_filter = request.job_filter()
    pool = await ctx.pools.open()
    try:
        changed = await delete_matching(pool, job_filter, release_chains=request.release_chains)
    except ChainsWouldBeReleasedError as exc:
        chains = BlockedChains.of(list(exc.chains)).model_dump(mode="json")["chains"]
        raise ApiError(
            409,
            "chains_would_be_released",
            f"{exc} (send release_chains: true)",
            field="release_chains",
            extra={"chains": chains},
        ) from None
    return answer(BulkResponse.model_construct(changed=changed))


async def bulk_run_now(ctx: WebContext, given: Input) -> Response:
    job_filter = given.body_as(BulkRequest).job_filter()
    changed = await run_now(await ctx.pools.open(), job_filter)
    return answer(BulkResponse.model_construct(changed=changed))
