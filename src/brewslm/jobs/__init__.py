"""Jobs: any stage submitted to run in the background, with the same parameters and the same
result as the CLI.

    from brewslm.jobs import service
    job = service.submit(project, "train", {"overrides": ["max_steps=20"]})   # queued, at once
    service.get(job["id"])      # status, progress, result (the CLI's --json), log path
    service.cancel(job["id"])   # a running training job stops after saving a checkpoint

kinds.py names the stages a job may run and checks parameters against the service function;
service.py stores jobs; execute.py runs one in a child process; worker.py is the embedded
worker (`brewslm worker`, or a thread of `brewslm server`); broker.py sends jobs through a task
queue when BREWSLM_QUEUE_URL names a broker.
"""
