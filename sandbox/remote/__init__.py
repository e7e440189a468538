"""Remote workers: the sandbox pool on other hosts, fed through Celery over Redis.

    web server (client.py) ──RemoteRun──> Redis list "sidebyside.<device>" ──> worker
         ▲   one FairQueue per device          │                              (worker.py)
         │   in front                          │                                 │
         └── RunFinished, pub/sub ── Redis result backend <── task ── local Pool ─┘
         └── WorkerBeat keys (TTL) <───────────────── heartbeat, every 2 s ──────┘

Imports `sandbox.protocol` and the local pool, never `app/`. Everything a
worker sends (results, heartbeats) is validated again on the web side.
"""
