"""The HTTP API's handlers for rate limits per key: the rules and the busiest keys, setting a
rule (PUT, replacing the pattern's rule) and removing one (DELETE; 404 if there is none)."""

from __future__ import annotations

from datetime import timedelta

from starlette.responses import Response

from ..admin import (
    BUSIEST_KEYS,
    busiest_rate_keys,
    list_rate_limits,
    remove_rate_limit,
    set_rate_limit,
)
from ..rate_limit import RateLimit
from .context import WebContext
from .http import ApiError, answer, field_errors
from .operation import Input
from .rate_models import (
    PatternPath,
    RateKeyResponse,
    RateLimitRemoved,
    RateLimitRequest,
    RateLimits,
    RateRuleResponse,
)

__all__ = ["delete_rate_limit", "get_rate_limits", "put_rate_limit"]


async def get_rate_limits(ctx: WebContext, given: Input) -> Response:
    pool = await ctx.pools.open()
    rules = await list_rate_limits(pool)
    keys = await busiest_rate_keys(pool, BUSIEST_KEYS)
    return answer(
        RateLimits.model_construct(
            rules=[RateRuleResponse.of(r) for r in rules],
            keys=[RateKeyResponse.of(k) for k in keys],
            keys_limit=BUSIEST_KEYS,
        )
    )


async def put_rate_limit(ctx: WebContext, given: Input) -> Response:
    pattern = given.path_as(PatternPath).pattern
    request = given.body_as(RateLimitRequest)
    period = timedelta(seconds=request.period_s)
    pool = await ctx.pools.open()
    with field_errors("pattern"):
        await set_rate_limit(pool, pattern, request.max_starts, per=period)
    rule = RateLimit(key_pattern=pattern, max_starts=request.max_starts, period=period)
    return answer(RateRuleResponse.of(rule))


async def delete_rate_limit(ctx: WebContext, given: Input) -> Response:
    pattern = given.path_as(PatternPath).pattern
    pool = await ctx.pools.open()
    with field_errors("pattern"):
        removed = await remove_rate_limit(pool, pattern)
    if not removed:
        raise ApiError(
            404, "not_found", f"no rate rule has the pattern {pattern!r}", field="pattern"
        )
    return answer(RateLimitRemoved.model_construct(key_pattern=pattern, removed=True))
