"""Long-running jobs end to end (docs/gateway.md): a page uploads a contacts CSV, import workers
(a processor in mode database) import it chunk by chunk and report progress through the outbox, a
projection keeps the job table for page loads, and the gateway pushes every status change."""
