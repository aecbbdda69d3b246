"""`outbox doctor`: checks a deployment before it goes live, each check with pass/fail and the fix.

`report.py` holds the result model, `database.py` the checks PostgreSQL answers (reachable,
migrations, privileges, CDC's WAL settings), `kafka.py` those Kafka answers (every client reaches the
cluster with the login, transaction settings, topic settings). The checks only read.
"""

from outboxkit.doctor.report import Check, Outcome, Report

__all__ = ["Check", "Outcome", "Report"]
