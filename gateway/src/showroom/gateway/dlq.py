"""Dead letters: list, inspect, re-drive, purge (admin scope).

A dead letter is a message of the DLQ stream (``dlq.<service>``, see ``common.bus.dead_letter``); its id
here is its sequence in that stream.  Re-driving publishes the original payload to its original subject
(and so its original stream) with:

- ``Nats-Msg-Id: redrive.<id>``: the stream's duplicate window stores a re-drive once, however often it
  is asked for (two admins at once, a retry after a timeout), so the event is processed once;
- ``Showroom-Redrive-For: <service>``: only the service that gave up handles it; the stream's other
  consumers processed the original already and skip the copy.

then deletes the letter.  A letter whose payload was truncated cannot be re-driven.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import APIError, NoStreamResponseError, NotFoundError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from showroom.common.bus import MSG_ID_HEADER, REDRIVE_FOR_HEADER
from showroom.common.events import DeadLetter
from showroom.common.topology import Streams, Subjects

router = APIRouter(tags=["dlq"])

SERVICE_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
SUMMARY_CHARS = 200
NO_MESSAGE = 10057
"""JetStream's error code for deleting a message that is not there (answered as a 500, not a 404)."""
REDRIVE_ALL_LIMIT = 10_000
"""Letters one ``{"all": true}`` call re-drives; call again for the rest (``more`` says there are)."""

LetterId = Annotated[int, Path(ge=1, description="The letter's sequence in the DLQ stream.")]
ServiceFilter = Annotated[str | None, Query(pattern=SERVICE_PATTERN, description="Only this service's letters.")]


class DeadLetterSummary(BaseModel):
    id: int = Field(description="The letter's sequence in the DLQ stream.")
    service: str
    subject: str = Field(description="Where the message was published; a re-drive publishes it there again.")
    stream: str | None
    stream_seq: int | None = Field(description="The original message's sequence in its stream.")
    reason: str
    deliveries: int
    occurred_at: datetime
    payload_summary: str = Field(description=f"The payload's first {SUMMARY_CHARS} characters.")
    payload_chars: int
    truncated: bool = Field(description="Only the payload's head was kept: it cannot be re-driven.")


class DeadLetterEntry(DeadLetterSummary):
    payload: str
    headers: dict[str, Any]
    trace_id: str


class DeadLetterPage(BaseModel):
    items: list[DeadLetterSummary]
    total: int = Field(description="Letters matching the filter, in all pages.")
    next_after: int | None = Field(description="Pass as `after` for the next page; null on the last one.")


class RedriveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[int, Field(ge=1)]] | None = Field(default=None, min_length=1, max_length=1000)
    all: bool = Field(default=False, description="Every letter (of `service`, when given).")
    service: str | None = Field(default=None, pattern=SERVICE_PATTERN)

    @model_validator(mode="after")
    def _one_selection(self) -> RedriveRequest:
        if (self.ids is None) == (not self.all):
            raise ValueError('give either "ids" or "all": true')
        if self.ids is not None and self.service is not None:
            raise ValueError('"service" filters "all"; with "ids" leave it out')
        return self


class RedriveSkipped(BaseModel):
    id: int
    reason: str


class RedriveResult(BaseModel):
    redriven: list[int] = Field(description="Published again and removed from the DLQ.")
    duplicates: list[int] = Field(description="Already re-driven (the stream kept one copy); removed from the DLQ.")
    skipped: list[RedriveSkipped] = Field(description="Left in the DLQ, with why.")
    not_found: list[int]
    more: bool = Field(False, description='An `"all"` request left letters for a next call.')


class PurgeResult(BaseModel):
    purged: int


def _js(request: Request) -> JetStreamContext:
    return request.app.state.broker.config.connection_state.stream  # type: ignore[no-any-return]


def _filter(service: str | None) -> str:
    return Subjects.dlq(service or "*")


async def _count(js: JetStreamContext, service: str | None) -> int:
    info = await js.stream_info(Streams.DLQ.name, subjects_filter=_filter(service))
    return sum((info.state.subjects or {}).values())


def _parse(raw: RawStreamMsg) -> DeadLetter:
    """The letter; something else published on ``dlq.*`` is shown as it is, and never re-driven."""
    try:
        return DeadLetter.model_validate_json(raw.data or b"")
    except ValidationError as exc:
        subject = raw.subject or "dlq.unknown"
        return DeadLetter(
            service=subject.split(".", 1)[-1],
            subject=subject,
            reason=f"not a dead letter: {exc.errors()[0]['msg']}",
            deliveries=0,
            payload=(raw.data or b"").decode(errors="replace"),
            truncated=True,
        )


async def _letter(js: JetStreamContext, seq: int) -> DeadLetter | None:
    try:
        raw = await js.get_msg(Streams.DLQ.name, seq=seq)
    except NotFoundError:
        return None
    if not (raw.subject or "").startswith("dlq."):
        return None
    return _parse(raw)


async def _scan(
    js: JetStreamContext, service: str | None, after: int, limit: int, upto: int | None = None
) -> list[tuple[int, DeadLetter]]:
    """Up to ``limit`` letters with a sequence above ``after`` (and at most ``upto``), in order."""
    found: list[tuple[int, DeadLetter]] = []
    seq = after + 1
    while len(found) < limit:
        try:
            raw = await js.get_msg(Streams.DLQ.name, seq=seq, subject=_filter(service), next=True)
        except NotFoundError:
            break
        if upto is not None and (raw.seq or seq) > upto:
            break
        found.append((raw.seq or seq, _parse(raw)))
        seq = (raw.seq or seq) + 1
    return found


async def _delete(js: JetStreamContext, seq: int) -> bool:
    """Delete letter ``seq``; False when it was not there (never was, or a concurrent call removed it)."""
    try:
        return bool(await js.delete_msg(Streams.DLQ.name, seq))
    except NotFoundError:
        return False
    except APIError as exc:
        if exc.err_code == NO_MESSAGE:
            return False
        raise


def _summary(seq: int, letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": seq,
        **letter.model_dump(include={"service", "subject", "stream", "stream_seq", "reason", "deliveries"}),
        "occurred_at": letter.occurred_at,
        "payload_summary": letter.payload[:SUMMARY_CHARS],
        "payload_chars": len(letter.payload),
        "truncated": letter.truncated,
    }


@router.get("/v1/dlq", response_model=DeadLetterPage)
async def list_dead_letters(
    request: Request,
    service: ServiceFilter = None,
    after: Annotated[int, Query(ge=0, description="Letters after this id (the previous page's `next_after`).")] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> DeadLetterPage:
    """Poison messages, oldest first: who gave up, why, after how many deliveries, and what it was."""
    js = _js(request)
    page = await _scan(js, service, after, limit + 1)
    items = [DeadLetterSummary(**_summary(seq, letter)) for seq, letter in page[:limit]]
    more = len(page) > limit
    return DeadLetterPage(items=items, total=await _count(js, service), next_after=items[-1].id if more else None)


@router.get("/v1/dlq/{letter_id}", response_model=DeadLetterEntry, responses={404: {"description": "No such letter"}})
async def get_dead_letter(request: Request, letter_id: LetterId) -> DeadLetterEntry:
    """One letter, whole: payload and headers as they were."""
    letter = await _letter(_js(request), letter_id)
    if letter is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dead letter {letter_id}")
    return DeadLetterEntry(
        **_summary(letter_id, letter), payload=letter.payload, headers=letter.headers, trace_id=letter.trace_id
    )


@router.post("/v1/dlq/redrive", response_model=RedriveResult)
async def redrive(request: Request, body: RedriveRequest) -> RedriveResult:
    """Publish letters' payloads to their original subjects again (once each), for the service that gave up."""
    js = _js(request)
    result = RedriveResult(redriven=[], duplicates=[], skipped=[], not_found=[])
    if body.ids is not None:
        chosen: list[tuple[int, DeadLetter | None]] = [(i, await _letter(js, i)) for i in dict.fromkeys(body.ids)]
    else:
        # Only letters present now: a re-driven message that fails again is a new letter, for a later call.
        upto = (await js.stream_info(Streams.DLQ.name)).state.last_seq
        chosen = list(await _scan(js, body.service, 0, REDRIVE_ALL_LIMIT + 1, upto))
        result.more = len(chosen) > REDRIVE_ALL_LIMIT
        chosen = chosen[:REDRIVE_ALL_LIMIT]
    for seq, letter in chosen:
        if letter is None:
            result.not_found.append(seq)
            continue
        if letter.truncated:
            result.skipped.append(RedriveSkipped(id=seq, reason="the payload was truncated when dead-lettered"))
            continue
        headers = {k: str(v) for k, v in letter.headers.items() if not k.startswith("Nats-")}
        headers |= {MSG_ID_HEADER: f"redrive.{seq}", REDRIVE_FOR_HEADER: letter.service}
        try:
            ack = await js.publish(letter.subject, letter.payload.encode(), headers=headers, timeout=10)
        except NoStreamResponseError:
            result.skipped.append(RedriveSkipped(id=seq, reason=f"no stream takes subject {letter.subject!r}"))
            continue
        except (NatsTimeout, TimeoutError):
            result.skipped.append(RedriveSkipped(id=seq, reason="the stream did not acknowledge in time; retry"))
            continue
        (result.duplicates if ack.duplicate else result.redriven).append(seq)
        await _delete(js, seq)  # False: a concurrent re-drive removed it first
    return result


@router.delete("/v1/dlq", response_model=PurgeResult)
async def purge(request: Request, service: ServiceFilter = None) -> PurgeResult:
    """Drop every letter (of ``service``, when given)."""
    js = _js(request)
    before = await _count(js, service)
    await js.purge_stream(Streams.DLQ.name, subject=_filter(service))
    return PurgeResult(purged=before)


@router.delete(
    "/v1/dlq/{letter_id}", status_code=status.HTTP_204_NO_CONTENT, responses={404: {"description": "No such letter"}}
)
async def delete_dead_letter(request: Request, letter_id: LetterId) -> Response:
    """Drop one letter."""
    js = _js(request)
    if await _letter(js, letter_id) is None or not await _delete(js, letter_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dead letter {letter_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
