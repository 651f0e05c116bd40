"""metrics-svc settings (env prefix ``SHOWROOM_``)."""

from showroom.common.settings import ServiceSettings


class MetricsSettings(ServiceSettings):
    http_port: int = 9104

    nats_monitor_url: str | None = None
    """nats-server's monitoring endpoint (``-m``/``http_port``), e.g. ``http://nats:8222``; read for /varz and /jsz.
    Unset: only JetStream's stream and consumer state is reported."""

    bus_poll_interval_s: float = 5.0
    """How often the bus's own state (streams, consumers, DLQ, server) is read."""

    count_batch: int = 200
    """Events counted (and snapshotted once) per fetch."""
