"""``python -m showroom.gateway``: serve the HTTP API."""

import uvicorn

from showroom.common.telemetry import setup_logging
from showroom.gateway.app import create_app
from showroom.gateway.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    setup_logging("gateway", settings.log_level, settings.log_json)
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_config=None)


if __name__ == "__main__":
    main()
