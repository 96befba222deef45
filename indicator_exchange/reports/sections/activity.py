"""The "activity" section: per-bucket counts that the other sections tallied as they went."""

from collections import Counter

from indicator_exchange.reports.context import ReportContext, from_us
from indicator_exchange.reports.model import Activity, ActivityPoint


def activity_section(ctx: ReportContext, bucket: str, activity: dict[str, Counter[int]]) -> Activity:
    slots = max(1, -(-(ctx.end_us - ctx.start_us) // ctx.bucket_us))
    points = [
        ActivityPoint(
            start=from_us(ctx.start_us + slot * ctx.bucket_us),
            published=activity["published"][slot],
            received=activity["received"][slot],
            served=activity["served"][slot],
            denied=activity["denied"][slot],
        )
        for slot in range(slots)
    ]
    return Activity(bucket=bucket, points=points)
