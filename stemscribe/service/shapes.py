"""Each dialect's answer and callback bodies, built from task records (no HTTP here).

The synchronous answers and the callbacks share these builders, so a callback body is exactly the
answer the same request would have got without a callback, as the providers document.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

from stemscribe.jobs.models import AudioRecord, Principal, TaskKind, TaskRecord, TaskState
from stemscribe.service.context import ServiceContext
from stemscribe.service.errors import failed_task_status


def iso(t: float | None) -> str | None:
    """ISO 8601 UTC with milliseconds ("2025-01-05T07:49:16.881Z"), or None."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ms(t: float | None) -> int | None:
    return None if t is None else int(round(t * 1000))


def acedata_error_code(task: TaskRecord) -> str:
    return "bad_request" if failed_task_status(task) == 400 else "api_error"


# --- native ----------------------------------------------------------------------------------------


def native_upload(audio: AudioRecord) -> dict[str, Any]:
    return {
        "id": audio.id,
        "filename": audio.filename,
        "title": audio.title,
        "duration": audio.duration,
        "size": audio.size,
        "content_type": audio.content_type,
        "sample_rate": audio.sample_rate,
        "source": audio.source,
        "stem": audio.stem_name,
        "parent_id": audio.parent_id,
        "created_at": iso(audio.created_at),
        "expires_at": iso(audio.expires_at),
        "audio_url": f"/v1/uploads/{audio.id}/audio",
    }


def native_task(ctx: ServiceContext, task: TaskRecord, *, with_result: bool = True) -> dict[str, Any]:
    state = ctx.state_of(task)
    done = state is TaskState.SUCCEEDED and task.kind is TaskKind.TRANSCRIBE
    prefix = f"/v1/transcriptions/{task.id}"
    body: dict[str, Any] = {
        "id": task.id,
        "kind": task.kind,
        "state": state,
        "stage": task.stage,
        "progress": task.progress,
        "error": {"code": task.error_code, "message": task.error_message}
        if task.state is TaskState.FAILED
        else None,
        "audio_id": task.audio_id,
        "filename": task.filename,
        "stem": task.stem,
        "quantize": task.quantize,
        "created_at": iso(task.created_at),
        "started_at": iso(task.started_at),
        "finished_at": iso(task.finished_at),
        "expires_at": iso(task.expires_at),
        "result": ctx.result(task) if (done and with_result) else None,
        "midi_url": f"{prefix}.mid" if done else None,
        "midi_quantized_url": f"{prefix}.mid?quantize=1" if done else None,
        "json_url": f"{prefix}.json" if done else None,
        "musicxml_url": f"{prefix}.musicxml" if done else None,
        "pdf_url": f"{prefix}.pdf" if done else None,
        "score_url": f"{prefix}/score" if done else None,
        "audio_url": f"/v1/uploads/{task.audio_id}/audio",
        "callback_url": task.callback_url,
    }
    if task.kind is TaskKind.SEPARATE and task.output:
        body["stems"] = task.output.get("stems", [])
    return body


def score_links(ctx: ServiceContext, task: TaskRecord, pages: int) -> dict[str, Any]:
    """Signed links (no token needed until the task expires) to a finished task's score files."""
    return {
        "musicxml": ctx.link(task.base_url, "musicxml", task.id, task.expires_at),
        "pdf": ctx.link(task.base_url, "pdf", task.id, task.expires_at),
        "pages": [
            ctx.link(task.base_url, "svg", f"{task.id}.{n}", task.expires_at) for n in range(1, pages + 1)
        ],
    }


def native_score(ctx: ServiceContext, task: TaskRecord, pages: int) -> dict[str, Any]:
    """`GET /v1/transcriptions/{id}/score`: the analysis, the page count, and where each file is."""
    result = ctx.require_result(task)
    prefix = f"/v1/transcriptions/{task.id}"
    return {
        "id": task.id,
        "title": ctx.score_title(task),
        "time_signature": result.get("time_signature"),
        "key": result.get("key"),
        "pages": pages,
        "musicxml_url": f"{prefix}.musicxml",
        "pdf_url": f"{prefix}.pdf",
        "page_urls": [f"{prefix}/score/{n}.svg" for n in range(1, pages + 1)],
        "links": score_links(ctx, task, pages),
    }


def with_deliveries(ctx: ServiceContext, task: TaskRecord, body: dict[str, Any]) -> dict[str, Any]:
    """Add the callback's delivery state (`callback`) to a task body."""
    body["callback"] = delivery_state(ctx, task)
    return body


def delivery_state(ctx: ServiceContext, task: TaskRecord) -> dict[str, Any] | None:
    """Where the task's callback stands: waiting (task running), pending, delivered or failed."""
    if not task.callback_url:
        return None
    deliveries = ctx.deliveries(task)
    d = deliveries[-1] if deliveries else None
    return {
        "url": task.callback_url,
        "state": d.state if d else "waiting",
        "webhook_id": d.id if d else None,
        "attempts": d.attempts if d else 0,
        "last_status": d.last_status if d else None,
        "last_error": d.last_error if d else None,
        "delivered_at": iso(d.delivered_at) if d else None,
    }


# --- AceData ---------------------------------------------------------------------------------------


def acedata_midi_answer(task: TaskRecord, result: dict[str, Any]) -> dict[str, Any]:
    return {
        "success": True,
        "task_id": task.id,
        "trace_id": task.trace_id,
        "data": [{"state": "complete", "instruments": result["instruments"]}],
    }


def acedata_failure(task: TaskRecord) -> dict[str, Any]:
    return {
        "success": False,
        "error": {"code": acedata_error_code(task), "message": task.error_message or "the task failed"},
        "trace_id": task.trace_id,
        "task_id": task.id,
    }


def acedata_stem_items(ctx: ServiceContext, task: TaskRecord) -> list[dict[str, Any]]:
    items = []
    for stem in (task.output or {}).get("stems", []):
        items.append(
            {
                "id": stem["audio_id"],
                "title": stem["title"],
                "image_url": "",
                "lyric": "",
                "audio_url": ctx.link(task.base_url, "audio", stem["audio_id"], task.expires_at),
                "video_url": "",
                "created_at": iso(task.finished_at),
                "model": (task.output or {}).get("separator", ""),
                "state": "succeeded",
                "style": "",
                "duration": round(float(stem["duration"]), 3),
            }
        )
    return items


def acedata_audios_answer(ctx: ServiceContext, task: TaskRecord) -> dict[str, Any]:
    return {
        "success": True,
        "task_id": task.id,
        "trace_id": task.trace_id,
        "data": acedata_stem_items(ctx, task),
    }


def acedata_response(ctx: ServiceContext, task: TaskRecord) -> dict[str, Any] | None:
    """The synchronous answer of a finished task (the `response` of `/suno/tasks`), None while running."""
    if task.state is TaskState.FAILED:
        return acedata_failure(task)
    if task.state is not TaskState.SUCCEEDED:
        return None
    if ctx.is_expired(task):
        return {
            "success": False,
            "error": {"code": "expired", "message": f"task {task.id} expired; its results were deleted"},
            "trace_id": task.trace_id,
            "task_id": task.id,
        }
    if task.kind is TaskKind.SEPARATE:
        return acedata_audios_answer(ctx, task)
    result = ctx.result(task)
    return acedata_midi_answer(task, result) if result is not None else None


def acedata_task(ctx: ServiceContext, task: TaskRecord) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": task.id,
        "created_at": task.created_at,
        "started_at": task.started_at,
        "request": {k: v for k, v in (task.request or {}).items() if not k.startswith("_")},
        "trace_id": task.trace_id,
        "state": ctx.state_of(task),
    }
    if task.finished_at is not None:
        body["finished_at"] = task.finished_at
        body["elapsed"] = round(task.finished_at - (task.started_at or task.created_at), 3)
    response = acedata_response(ctx, task)
    if response is not None:
        body["response"] = response
    callback = delivery_state(ctx, task)
    if callback is not None:
        body["callback"] = callback
    return body


# --- aimusicapi ------------------------------------------------------------------------------------

AIMUSIC_STATES = {"queued": "pending", "running": "running", "succeeded": "succeeded", "failed": "failed"}


def aimusic_midi_answer(ctx: ServiceContext, task: TaskRecord) -> dict[str, Any]:
    result = ctx.require_result(task)
    return {
        "code": 200,
        "message": "success",
        "data": {
            "midi_url": ctx.link(task.base_url, "midi", task.id, task.expires_at),
            "instruments": result["instruments"],
        },
    }


def aimusic_pending(task: TaskRecord) -> dict[str, Any]:
    return {
        "code": 202,
        "message": "processing; send the same request again to get the result",
        "data": {
            "task_id": task.id,
            "state": AIMUSIC_STATES.get(task.state, task.state),
            "progress": task.progress,
            "midi_url": None,
            "instruments": [],
        },
    }


def aimusic_task_item(ctx: ServiceContext, task: TaskRecord, audio: AudioRecord | None) -> dict[str, Any]:
    """A MIDI task as one entry of aimusicapi's task list."""
    expired = ctx.is_expired(task)
    item: dict[str, Any] = {
        "clip_id": task.audio_id,
        "task_id": task.id,
        "state": "expired" if expired else AIMUSIC_STATES.get(task.state, task.state),
        "title": audio.title if audio else "",
        "audio_url": ctx.link(task.base_url, "audio", task.audio_id, task.expires_at),
        "duration": audio.duration if audio else None,
        "created_at": iso(task.created_at),
        "progress": task.progress,
        "error": task.error_message,
    }
    if task.state is TaskState.SUCCEEDED and not expired:
        item["midi_url"] = ctx.link(task.base_url, "midi", task.id, task.expires_at)
        item["musicxml_url"] = ctx.link(task.base_url, "musicxml", task.id, task.expires_at)
        item["pdf_url"] = ctx.link(task.base_url, "pdf", task.id, task.expires_at)
    return item


def aimusic_clip(ctx: ServiceContext, audio: AudioRecord, base_url: str) -> dict[str, Any]:
    return {
        "clip_id": audio.id,
        "state": "succeeded",
        "title": audio.title,
        "audio_url": ctx.link(base_url, "audio", audio.id, audio.expires_at),
        "duration": audio.duration,
        "created_at": iso(audio.created_at),
    }


# --- kie.ai ----------------------------------------------------------------------------------------

# Our stem names -> kie's record (camelCase) and callback (snake_case) fields.
KIE_STEM_FIELDS = {
    "vocals": ("vocalUrl", "vocal_url"),
    "instrumental": ("instrumentalUrl", "instrumental_url"),
    "drums": ("drumsUrl", "drums_url"),
    "bass": ("bassUrl", "bass_url"),
    "guitar": ("guitarUrl", "guitar_url"),
    "piano": ("pianoUrl", "keyboard_url"),
}
KIE_RECORD_FIELDS = (
    "instrumentalUrl vocalUrl backingVocalsUrl drumsUrl bassUrl guitarUrl pianoUrl keyboardUrl "
    "percussionUrl stringsUrl synthUrl fxUrl brassUrl woodwindsUrl"
).split()
KIE_CALLBACK_FIELDS = (
    "vocal_url instrumental_url backing_vocals_url drums_url bass_url guitar_url keyboard_url "
    "percussion_url strings_url synth_url fx_url brass_url woodwinds_url"
).split()
KIE_SEPARATION_FLAGS = {
    "queued": "PENDING",
    "running": "PENDING",
    "succeeded": "SUCCESS",
    "failed": "GENERATE_AUDIO_FAILED",
}
KIE_MIDI_FLAGS = {"queued": 0, "running": 0, "succeeded": 1, "failed": 3}


def kie_ok(data: Any) -> dict[str, Any]:
    return {"code": 200, "msg": "success", "data": data}


def _kie_stem_urls(
    ctx: ServiceContext, task: TaskRecord
) -> tuple[dict[str, str | None], dict[str, str | None], list]:
    record = dict.fromkeys(KIE_RECORD_FIELDS)
    callback = dict.fromkeys(KIE_CALLBACK_FIELDS)
    origin = []
    for stem in (task.output or {}).get("stems", []):
        url = ctx.link(task.base_url, "audio", stem["audio_id"], task.expires_at)
        fields = KIE_STEM_FIELDS.get(stem["name"])
        if fields:
            record[fields[0]] = url
            callback[fields[1]] = url
            if stem["name"] == "piano":
                record["keyboardUrl"] = url
        origin.append(
            {
                "id": stem["audio_id"],
                "audio_url": url,
                "duration": round(float(stem["duration"]), 3),
                "stem_type_group_name": stem["title"].rsplit("(", 1)[-1].rstrip(")").split(" - ")[-1],
            }
        )
    return record, callback, origin


def kie_separation_record(ctx: ServiceContext, task: TaskRecord) -> dict[str, Any]:
    state = ctx.state_of(task)
    response = None
    if state is TaskState.SUCCEEDED:
        record, _, origin = _kie_stem_urls(ctx, task)
        response = {
            "id": task.id,
            "originUrl": ctx.link(task.base_url, "audio", task.audio_id, task.expires_at),
            "originData": origin,
            **record,
        }
    callback = delivery_state(ctx, task)
    flag = "EXPIRED" if state is TaskState.EXPIRED else KIE_SEPARATION_FLAGS.get(task.state, "PENDING")
    if flag == "SUCCESS" and callback is not None and callback["state"] == "failed":
        flag = "CALLBACK_EXCEPTION"
    return {
        "taskId": task.id,
        "musicId": task.audio_id,
        "callbackUrl": task.callback_url,
        "audioId": task.audio_id,
        "type": task.mode,
        "completeTime": ms(task.finished_at),
        "createTime": ms(task.created_at),
        "successFlag": flag,
        "errorCode": 501 if task.state is TaskState.FAILED else None,
        "errorMessage": task.error_message,
        "response": response,
        "callback": callback,
    }


def kie_separation_callback(ctx: ServiceContext, task: TaskRecord) -> dict[str, Any]:
    if task.state is not TaskState.SUCCEEDED:
        return {"code": 501, "msg": task.error_message or "separation failed", "data": {"task_id": task.id}}
    _, callback, _ = _kie_stem_urls(ctx, task)
    info = {"origin_url": ctx.link(task.base_url, "audio", task.audio_id, task.expires_at), **callback}
    return {
        "code": 200,
        "msg": "vocal separation completed",
        "data": {"task_id": task.id, "vocal_separation_info": info},
    }


def kie_midi_data(ctx: ServiceContext, task: TaskRecord) -> dict[str, Any] | None:
    result = ctx.result(task)
    return None if result is None else {"state": "complete", "instruments": result["instruments"]}


def kie_midi_record(ctx: ServiceContext, task: TaskRecord) -> dict[str, Any]:
    state = ctx.state_of(task)

    def link(kind: str) -> str | None:
        return (
            ctx.link(task.base_url, kind, task.id, task.expires_at) if state is TaskState.SUCCEEDED else None
        )

    return {
        "taskId": task.id,
        "recordTaskId": task.parent_task_id or task.audio_id,
        "audioId": task.request.get("audioId") if task.request else None,
        "callbackUrl": task.callback_url,
        "createTime": ms(task.created_at),
        "completeTime": ms(task.finished_at),
        "successFlag": KIE_MIDI_FLAGS.get(task.state, 0),
        "state": state,
        "midiData": kie_midi_data(ctx, task),
        "midiUrl": link("midi"),
        "musicxmlUrl": link("musicxml"),
        "pdfUrl": link("pdf"),
        "errorCode": 501 if task.state is TaskState.FAILED else None,
        "errorMessage": task.error_message,
        "callback": delivery_state(ctx, task),
    }


def kie_midi_callback(ctx: ServiceContext, task: TaskRecord) -> dict[str, Any]:
    data = kie_midi_data(ctx, task) if task.state is TaskState.SUCCEEDED else None
    if data is None:
        return {
            "task_id": task.id,
            "code": 500,
            "msg": task.error_message or "MIDI generation failed",
            "data": None,
        }
    return {"task_id": task.id, "code": 200, "msg": "success", "data": data}


def kie_signature(secret: str, task_id: str, timestamp: int) -> str:
    """kie.ai's callback signature: base64(HMAC-SHA256(key, "<taskId>.<timestamp>"))."""
    mac = hmac.new(secret.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


# --- callbacks -------------------------------------------------------------------------------------


class DialectRenderer:
    """The `CallbackRenderer` of the service: each task's callback in its own dialect."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def payload(self, task: TaskRecord) -> dict[str, Any]:
        ctx = self.ctx
        if task.dialect == "acedata":
            return acedata_response(ctx, task) or acedata_failure(task)
        if task.dialect == "kie":
            if task.kind is TaskKind.SEPARATE:
                return kie_separation_callback(ctx, task)
            return kie_midi_callback(ctx, task)
        if task.dialect == "aimusicapi":
            if task.state is TaskState.SUCCEEDED:
                return {"type": "midi", "task_id": task.id, **aimusic_midi_answer(ctx, task)}
            return {"type": "midi", "task_id": task.id, "code": 500, "message": task.error_message}
        body = native_task(ctx, task)
        for key in ("midi_url", "midi_quantized_url", "json_url", "musicxml_url", "pdf_url", "score_url"):
            if body[key]:
                body[key] = task.base_url + body[key]
        body["audio_url"] = ctx.link(task.base_url, "audio", task.audio_id, task.expires_at)
        return body

    def headers(self, task: TaskRecord, timestamp: int, principal: Principal) -> dict[str, str]:
        if task.dialect == "kie":
            return {
                "X-Webhook-Timestamp": str(timestamp),
                "X-Webhook-Signature": kie_signature(principal.webhook_secret, task.id, timestamp),
            }
        return {}
