"""WebSocket push of status events to browsers (docs/gateway.md): channels, tokens, resume by version.

A gateway process follows every partition of its status topics (read_committed), routes each event
to the connections subscribed to its channels, and replays a client's gap from Kafka on resume. It
keeps no state of its own: several processes behind a load balancer are interchangeable.
"""

from outboxkit.gateway.config import GatewayConfig
from outboxkit.gateway.tokens import issue_token

__all__ = ["GatewayConfig", "issue_token"]
