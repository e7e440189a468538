"""The Celery app both sides share: names, queues and the settings that make death visible.

Acks are early, on purpose. A run is answered within its deadline whatever
happens to its worker (client.py), and every message expires at that
deadline, so a run is never executed after the learner was told it failed.
With late acks Redis would hand a dead worker's run to another one only
after the visibility timeout: set shorter than the longest run, it would
run a live run twice; set longer, only after the learner has been answered.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.backends.redis import RedisBackend

from sandbox.protocol import Device

RUN_TASK = "sidebyside.run"
BEAT_PREFIX = "sidebyside:worker:"  # + device + ":" + node name; value: a WorkerBeat
BEAT_EVERY_S = 2.0
BEAT_TTL_S = 6.0  # three beats missed and the worker is gone
RESULT_TTL_S = 300  # a result nobody reads is gone after this
PUBLISH_TIMEOUT_S = 2.0


def queue_for(device: Device) -> str:
    return f"sidebyside.{device}"


class ResultBackend(RedisBackend):  # type: ignore[misc]
    """Celery's Redis result backend, less the subscription it makes for every task sent.

    The web awaits task states through one subscription of its own on its
    event loop (listener.py). Celery's would subscribe a blocking consumer to
    each run's channel and, never read, let its messages pile up.
    """

    def on_task_call(self, producer: Any, task_id: str) -> None:
        pass


def make_celery(broker_url: str) -> Celery:
    # "module:Class+URL" is how Celery takes a backend class of one's own with its URL.
    backend = f"{__name__}:{ResultBackend.__name__}+{broker_url}"
    app = Celery("sidebyside", broker=broker_url, backend=backend, set_as_current=False)
    app.conf.update(
        task_serializer="json", result_serializer="json", accept_content=["json"],
        task_acks_late=False,
        task_track_started=False,  # the worker says it took a run itself (worker.py)
        worker_prefetch_multiplier=1,  # a worker takes no more runs than it has slots
        result_expires=RESULT_TTL_S,
        task_ignore_result=False,
        broker_connection_timeout=PUBLISH_TIMEOUT_S,
        broker_connection_retry_on_startup=True,
        # A web server must answer "unreachable" quickly, not retry for ever.
        task_publish_retry_policy={"max_retries": 1, "interval_start": 0,
                                   "interval_step": 0.2, "interval_max": 0.2},
        redis_socket_connect_timeout=PUBLISH_TIMEOUT_S,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    return app
