"""Scale-out workers: `tasks` (the Celery tasks that run jobs and deliver callbacks, one worker process
holding its models), `cli` (`stemscribe worker`). API nodes send to them through `jobs.broker`."""
