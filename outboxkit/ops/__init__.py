"""The one operations surface of every daemon: /metrics, /healthz and /status.json on one HTTP
server (`endpoints`), the heartbeat behind /healthz (`health`), the status-source port that the
CLI's status commands, /status.json and the operator console read (`status`), and one JSON log
format (`logs`)."""
