"""Change notifications between replicas over Redis pub/sub.

After a write commits, the writing replica publishes its revision on ``orgauthz:changes``;
every replica subscribes and nudges its :class:`~orgauthz.engine.feed.ChangeFeed`, which
then reads the change from the database at once instead of at its next poll. The
message carries only the revision: the database stays the one source of what changed.

Messages are hints. A lost one (Redis down, a replica between reconnects) only delays
a change until the feed's next poll; after every (re)subscription the feed is nudged
once, in case something was published while this replica was not listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from orgauthz.cache.redis import RedisLink
from orgauthz.engine.feed import ChangeFeed

log = logging.getLogger(__name__)

CHANNEL = "orgauthz:changes"


class ChangeNotifier:
    """Publishes committed revisions and turns other replicas' messages into nudges."""

    def __init__(self, link: RedisLink, feed: ChangeFeed, *, channel: str = CHANNEL, retry_s: float = 0.5) -> None:
        self.link = link
        self.feed = feed
        self.channel = channel
        self.retry_s = retry_s
        self.subscribed = False
        self.received = 0
        self.published = 0
        self.errors = 0
        self._task: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._listen(), name="orgauthz-change-notifier")

    async def stop(self) -> None:
        for task in [self._task, *self._sends]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def publish(self, revision: int) -> None:
        """Announces a committed revision; fire-and-forget, a failure is counted and logged.

        Only a link that is down (an outage, see :class:`~orgauthz.cache.redis.RedisLink`)
        stops publishing: a publish that timed out leaves the link up, so the next change is
        announced as usual (and the other replicas' feeds read every revision up to it)."""
        if not self.link.available:
            return  # the other replicas' polling picks the change up
        task = asyncio.get_running_loop().create_task(self._publish(revision))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _publish(self, revision: int) -> None:
        if await self.link.call("publish", self.link.client.publish(self.channel, str(revision))) is not None:
            self.published += 1

    async def _listen(self) -> None:
        while True:
            pubsub = self.link.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.link.answered()
                if not self.subscribed:
                    log.info("subscribed to %s", self.channel)
                self.subscribed = True
                self.feed.nudge()  # anything published while not listening
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._received(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: listen again later, polling covers the gap
                self.errors += 1
                if self.subscribed:
                    log.warning("change notifications lost (%s); polling continues", type(exc).__name__)
                self.subscribed = False
                self.link.failed("subscribe", exc)
                await asyncio.sleep(self.retry_s)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _received(self, data: bytes) -> None:
        self.received += 1
        try:
            revision = int(data)
        except ValueError:
            return
        self.feed.observe_head(revision)
        if revision > self.feed.engine.applied:
            self.feed.nudge()
