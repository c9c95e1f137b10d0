"""Remote runs on Celery workers: the Redis protocol (``protocol``), the worker side
(``worker``, ``execute``) and the broker connections (``broker``). See docs/celery.md."""
