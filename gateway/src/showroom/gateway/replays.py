"""Index rebuilds from the event log: ``/v1/replays`` and the collection versions they create.

``POST /v1/replays`` records the replay (``queued``) in the ``replays`` KV bucket and publishes
``replay.requested``; an indexer runs it and keeps its progress in that record, which is all
``GET /v1/replays/{id}`` reads.  See ``showroom.indexer.replay`` for how it runs.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request, status
from faststream.nats import NatsBroker
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from pydantic import BaseModel, Field

from showroom.common.bus import kv_get, kv_keys, kv_update, publish_event
from showroom.common.events import ReplayCancelled, ReplayRequested, ReplaySpec, new_id, utcnow
from showroom.common.replays import ReplayState, ReplayStatus
from showroom.common.telemetry import trace_id_var
from showroom.common.topology import Buckets, Streams, Subjects

router = APIRouter(tags=["replays"])

ReplayId = Annotated[str, Path(pattern=r"^[a-f0-9]{32}$", description="The id POST /v1/replays returned.")]
Version = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,100}$", description="A collection version's name.")]
INDEX_TIMEOUT_S = 10.0


class ReplayAccepted(BaseModel):
    replay_id: str
    status: ReplayStatus
    status_url: str


class CollectionVersion(BaseModel):
    name: str
    current: bool = Field(description="The alias points at it: queries are served from it.")
    chunks: int
    meta: dict[str, Any] = Field(description="How it was built: embedder, dimension, chunk size, replay id.")


class Collections(BaseModel):
    collection: str = Field(description="The alias every read and write goes through.")
    current: str | None
    versions: list[CollectionVersion]


def jetstream(request: Request) -> JetStreamContext:
    broker: NatsBroker = request.app.state.broker
    return broker.config.connection_state.stream


async def _replays(request: Request) -> KeyValue:
    return await jetstream(request).key_value(Buckets.REPLAYS.name)


async def _index_request(request: Request, subject: str, body: dict[str, Any]) -> dict[str, Any]:
    broker: NatsBroker = request.app.state.broker
    try:
        reply = await broker.config.connection_state.connection.request(
            subject, json.dumps(body).encode(), timeout=INDEX_TIMEOUT_S
        )
    except NoRespondersError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "indexer-svc is not running") from exc
    except (NatsTimeout, TimeoutError) as exc:
        raise HTTPException(status.HTTP_504_GATEWAY_TIMEOUT, "indexer-svc did not answer in time") from exc
    return json.loads(reply.data)  # type: ignore[no-any-return]


@router.post(
    "/v1/replays",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReplayAccepted,
    responses={503: {"description": "The bus is not reachable"}},
)
async def create_replay(spec: ReplaySpec, request: Request) -> ReplayAccepted:
    """Rebuild the index from stored page events into a new collection version; nothing is re-fetched.

    Queries keep being served from the current version until the replay swaps the alias (by
    default when it replays everything; see `swap`)."""
    if spec.from_seq and spec.from_time:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "give from_seq or from_time, not both")
    if spec.to_seq and spec.from_seq and spec.to_seq < spec.from_seq:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "to_seq is before from_seq")
    event = ReplayRequested(replay_id=new_id(), spec=spec, trace_id=trace_id_var.get() or new_id())
    record = ReplayState(replay_id=event.replay_id, spec=spec, trace_id=event.trace_id)
    await (await _replays(request)).create(event.replay_id, record.model_dump_json().encode())
    await publish_event(
        request.app.state.broker, event, Subjects.REPLAY_REQUESTED, stream=Streams.REPLAYS.name, msg_id=event.event_id
    )
    return ReplayAccepted(
        replay_id=event.replay_id,
        status=ReplayStatus.QUEUED,
        status_url=str(request.url_for("get_replay", replay_id=event.replay_id)),
    )


@router.get("/v1/replays", response_model=list[ReplayState])
async def list_replays(request: Request) -> list[ReplayState]:
    """Every replay, newest first."""
    kv = await _replays(request)
    keys = await kv_keys(jetstream(request), Buckets.REPLAYS.name)
    states = [s for s in [(await kv_get(kv, k, ReplayState))[0] for k in keys] if s is not None]
    return sorted(states, key=lambda s: s.created_at, reverse=True)


@router.get("/v1/replays/{replay_id}", response_model=ReplayState, responses={404: {"description": "No such replay"}})
async def get_replay(replay_id: ReplayId, request: Request) -> ReplayState:
    """A replay's status and progress: events done/total, rate and ETA."""
    state, _ = await kv_get(await _replays(request), replay_id, ReplayState)
    if state is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no replay {replay_id!r}")
    return state


@router.delete(
    "/v1/replays/{replay_id}",
    response_model=ReplayState,
    responses={404: {"description": "No such replay"}, 409: {"description": "Already finished"}},
)
async def cancel_replay(replay_id: ReplayId, request: Request) -> ReplayState:
    """Cancel a replay: it stops at its next batch; the alias stays where it was unless already swapped."""
    kv = await _replays(request)

    def cancel(current: ReplayState | None) -> ReplayState | None:
        if current is None or current.status.is_final:
            return None
        current.status, current.finished_at = ReplayStatus.CANCELLED, utcnow()
        return current

    state = await kv_update(kv, replay_id, ReplayState, cancel)
    if state is None:
        current, _ = await kv_get(kv, replay_id, ReplayState)
        if current is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no replay {replay_id!r}")
        raise HTTPException(status.HTTP_409_CONFLICT, f"replay {replay_id} is already {current.status.value}")
    await publish_event(
        request.app.state.broker,
        ReplayCancelled(replay_id=replay_id, trace_id=state.trace_id or new_id()),
        Subjects.REPLAY_CANCELLED,
        stream=Streams.REPLAYS.name,
        msg_id=f"{replay_id}.cancelled",
    )
    return state


@router.get("/v1/collections", response_model=Collections, responses={503: {}, 504: {}})
async def list_collections(request: Request) -> Collections:
    """The index's versions: which one serves queries, and how each was built."""
    return Collections.model_validate(await _index_request(request, Subjects.INDEX_VERSIONS, {}))


@router.delete(
    "/v1/collections/{version}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={409: {"description": "It is the version queries are served from, or does not exist"}},
)
async def drop_collection(version: Version, request: Request) -> None:
    """Delete a version the alias does not point at (e.g. the one a replay replaced)."""
    reply = await _index_request(request, Subjects.INDEX_DROP_VERSION, {"version": version})
    if not reply.get("dropped"):
        raise HTTPException(status.HTTP_409_CONFLICT, str(reply.get("error") or f"cannot drop {version}"))
