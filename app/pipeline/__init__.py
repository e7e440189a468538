"""The one run pipeline: every run the site makes, from any button or command and back.

    work (work.py) ─> build_request (requests.py) ─> RunService (service.py) ─> Executor
                                                      │ output cache (cache.py)
                                                      │ class roster (records.py)
                                                      │ page jobs (jobs.py), precompute
                                                      └ exercises judged (exercise.py)
"""
