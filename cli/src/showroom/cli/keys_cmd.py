"""``showroom keys new``: make an API key and the entry that configures the gateway to accept it.

The gateway is configured with the entry (the key's SHA-256, name and scopes), never with the key:
the key is printed once, for whoever will use it, and is not written anywhere.  Stdout carries just
the key and then the entry, one line each, so a script can take them (``2>/dev/null``).
"""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError

from showroom.common.apikeys import ApiKeyEntry, Scope, new_key

app = typer.Typer(help="API keys: make one, with the configuration entry (its hash) for the gateway.")


@app.command("new")
def new(
    scopes: Annotated[list[Scope], typer.Option("--scopes", "--scope", help="What the key may do; repeatable.")],
    name: Annotated[str, typer.Option(help="Who holds the key: named in logs and rate-limit errors.")] = "key",
    rate_per_s: Annotated[float | None, typer.Option(help="Requests/s for this key (default: the gateway's).")] = None,
    burst: Annotated[int | None, typer.Option(help="Burst size for this key (default: the gateway's).")] = None,
) -> None:
    """Print a new random key, then the entry to add to SHOWROOM_API_KEYS (a JSON list)."""
    key = new_key()
    try:
        entry = ApiKeyEntry.for_key(key, scopes, name=name, rate_per_s=rate_per_s, burst=burst)
    except ValidationError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"New API key for {name!r} (shown once; Showroom stores only its hash):", err=True)
    typer.echo(key)
    typer.echo("Add this entry to the SHOWROOM_API_KEYS list:", err=True)
    typer.echo(entry.config_json())
