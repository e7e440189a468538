"""Remote workers: the sandbox pool on other hosts, fed through Celery over Redis.

    web server (client.py)                 Redis                   worker host (worker.py)
    a FairQueue per device ──RemoteRun──> list "sidebyside.<device>" ──> Celery ──> local Pool
          ▲                                                                             │
          ├── RunFinished, pub/sub on the task's key (listener.py) <── result backend <──┤
          └── WorkerBeat keys, 6 s TTL (registry.py) <────────────── heartbeat every 2 s ┘

What the two sides trade is `messages.py`. Imports the sandbox's contract
and the local pool, never `app/`. Everything a
worker sends (results, heartbeats) is validated again on the web side.
"""
