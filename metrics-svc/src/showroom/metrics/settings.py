"""metrics-svc settings (env prefix ``SHOWROOM_``)."""

from showroom.common.settings import ServiceSettings


class MetricsSettings(ServiceSettings):
    http_port: int = 9104
