"""Kombu's Redis transport, made to survive the broker going away with steps in flight.

When Redis dies while a worker holds unacknowledged steps (late acks: every running step),
Celery's consumer closes its channel, and the channel's close tries to put those messages
back in the queue over the dead connection. In kombu 5.7 that raises an AttributeError
that Celery's connection-loss handler does not expect, and the worker exits with
"Unrecoverable error" instead of reconnecting (seen in the jobs fault test: a Redis
restart left the worker dead and the job stranded). The same happens once it has
reconnected, when a step that was running across the outage finishes and acks on the old,
closed channel. Here both are logged and dropped: the messages stay in Redis's unacked
index, where the visibility sweep restores them (a step run twice is saved once), and the
jobs controller's reconciler re-queues any step that still does not move (controller.py).
Selected by `broker_transport` in celery_app.py; `startctl worker` also restarts a Celery
worker that exits on an error this does not catch.
"""

from __future__ import annotations

from kombu.transport import redis as kombu_redis

from services.common.logs import get_logger

log = get_logger("orchestrator.broker")


class QoS(kombu_redis.QoS):
    def restore_unacked_once(self, stderr=None) -> None:  # noqa: ANN001 - kombu's signature
        try:
            super().restore_unacked_once(stderr)
        except Exception as exc:  # noqa: BLE001 - any failure here must not end the worker
            log.warning(
                "could not return unacknowledged steps to the queue (broker gone); "
                "the visibility sweep and the reconciler will",
                steps=len(self._delivered),
                error=f"{type(exc).__name__}: {exc}",
            )
            self._delivered.clear()

    def ack(self, delivery_tag) -> None:  # noqa: ANN001
        if self._channel_closed(delivery_tag):
            return
        super().ack(delivery_tag)

    def reject(self, delivery_tag, requeue=False) -> None:  # noqa: ANN001
        if self._channel_closed(delivery_tag):
            return
        super().reject(delivery_tag, requeue)

    def _channel_closed(self, delivery_tag) -> bool:  # noqa: ANN001
        """A step delivered on a channel that has since closed (Redis went away while it ran)."""
        if self.channel.connection is not None:
            return False
        log.info("step finished after its broker channel closed; its message is restored later", tag=delivery_tag)
        self._delivered.pop(delivery_tag, None)
        return True


class Channel(kombu_redis.Channel):
    QoS = QoS


class Transport(kombu_redis.Transport):
    Channel = Channel
