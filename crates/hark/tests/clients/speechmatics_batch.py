"""Drives hark's /v2/jobs with the official speechmatics-batch client (1.1.0), unmodified.

usage: speechmatics_batch.py BASE KEY CLIP BAD_KEY REALTIME_KEY
The async client (aiohttp) submits CLIP, waits for it and reads json-v2, txt and srt, lists
and deletes jobs; the sync client (httpx), with a temporary key minted by JWTAuth, submits
CLIP again, and so does the legacy speechmatics-python 5.0.0 BatchClient. Prints one JSON
object for the Rust test to judge.
"""
import asyncio
import json
import sys
import warnings

warnings.simplefilter("ignore")  # speechmatics-python, beside it in the venv, announces its deprecation

from speechmatics.batch import (AsyncClient, AuthenticationError, Client, FetchData,  # noqa: E402
                                FormatType, JobConfig, JobError, JobStatus, JobType, JWTAuth,
                                TranscriptionConfig, TranscriptNotReadyError)
from speechmatics.batch._models import TrackingConfig  # noqa: E402  (not re-exported)

base, key, clip, bad_key, realtime_key = sys.argv[1:6]
url = base + "/v2"


def error(e):
    return f"{type(e).__name__}: {e}"


async def refused(api_key):
    """What the client makes of listing jobs with this key."""
    async with AsyncClient(api_key=api_key, url=url) as client:
        try:
            await client.list_jobs()
            return "accepted"
        except AuthenticationError as e:
            return error(e)


async def main():
    out = {}
    config = JobConfig(
        type=JobType.TRANSCRIPTION,
        transcription_config=TranscriptionConfig(language="en", diarization="none"),
        tracking=TrackingConfig(title="batch test", tags=["hark"]),
    )
    out["submitted_config"] = config.to_dict()
    async with AsyncClient(api_key=key, url=url) as client:
        job = await client.submit_job(clip, config=config)
        out["id"] = job.id
        # Right after submitting: still running, and no transcript yet.
        try:
            await client.get_transcript(job.id)
            out["early_transcript"] = "served"
        except TranscriptNotReadyError as e:
            out["early_transcript"] = error(e)
        transcript = await client.wait_for_completion(job.id, polling_interval=1.0, timeout=300)
        out["text"] = transcript.transcript_text
        out["format"] = transcript.format
        out["job_block"] = {"id": transcript.job.id, "data_name": transcript.job.data_name,
                            "duration": transcript.job.duration}
        out["metadata_type"] = transcript.metadata.type
        out["results"] = [
            {"type": r.type, "start": r.start_time, "end": r.end_time,
             "content": r.alternatives[0].content, "confidence": r.alternatives[0].confidence,
             "language": r.alternatives[0].language}
            for r in transcript.results
        ]
        out["txt"] = await client.get_transcript(job.id, format_type=FormatType.TXT)
        out["srt"] = await client.get_transcript(job.id, format_type=FormatType.SRT)
        info = await client.get_job_info(job.id)
        out["status"] = info.status.value
        out["data_name"] = info.data_name
        out["duration"] = info.duration
        out["echoed_config"] = info.config.to_dict() if info.config else None
        out["listed"] = [j.id for j in await client.list_jobs(limit=10)]
        # fetch_data with an address the outbound guard refuses.
        try:
            refused_job = await client.submit_job(None, config=JobConfig(
                type=JobType.TRANSCRIPTION,
                fetch_data=FetchData(url="http://127.0.0.1/x.wav"),
                transcription_config=TranscriptionConfig(language="en"),
            ))
            out["guarded_fetch"] = {"id": refused_job.id}
        except Exception as e:  # reported, for the test to judge
            out["guarded_fetch"] = error(e)
        await client.delete_job(job.id)
        try:
            await client.get_job_info(job.id)
            out["after_delete"] = "still there"
        except JobError as e:
            out["after_delete"] = error(e)
    out["bad_key"] = await refused(bad_key)
    out["realtime_key"] = await refused(realtime_key)
    # The sync client sends `config` as an application/json part (httpx), with a temporary key.
    with Client(auth=JWTAuth(key, mp_url=base, ttl=60), url=url) as client:
        job = client.submit_job(clip, transcription_config=TranscriptionConfig(language="en"))
        out["sync_text"] = client.wait_for_completion(job.id, format_type=FormatType.TXT,
                                                      polling_interval=1.0, timeout=300)
        out["sync_status"] = client.get_job_info(job.id).status == JobStatus.DONE
    # The legacy client polls every 15 s; a second is plenty here.
    import speechmatics.batch_client as legacy
    from speechmatics.models import BatchTranscriptionConfig, ConnectionSettings
    legacy.POLLING_DURATION = 1
    with legacy.BatchClient(ConnectionSettings(url=url, auth_token=key)) as client:
        job_id = client.submit_job(clip, BatchTranscriptionConfig(language="en"))
        out["legacy_text"] = client.wait_for_completion(job_id, transcription_format="txt")
        out["legacy_words"] = sum(r["type"] == "word" for r in client.get_job_result(job_id)["results"])
        out["legacy_deleted"] = client.delete_job(job_id)
    print(json.dumps(out))


asyncio.run(main())
