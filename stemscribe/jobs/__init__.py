"""Jobs: the queue behind the service. `models` (tables, `TaskState`), `store` (every state change),
`worker` (runs the library on a task), `runner` (starts and watches workers), `webhooks` (signed
callbacks, retried), `separation` (a request mode's backend and stem set), `netguard` (outbound URLs),
`storage` (artifact files and their keys), `score` (a task's sheet music, made on first request),
`migrations/` (Alembic)."""
