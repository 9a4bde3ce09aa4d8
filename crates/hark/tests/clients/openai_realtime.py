"""Streams a WAV clip to hark's /v1/realtime with the official openai SDK, unmodified.

usage: openai_realtime.py BASE_URL KEY CLIP vad|manual
Sends 24 kHz pcm16 in 100 ms appends (resampled from the clip with the standard library
only), then either lets server VAD end the turns or commits once; prints one JSON object
with the completed transcripts, the event types seen and any error.
"""
import asyncio
import base64
import json
import sys
import wave

import openai


def pcm24k(path):
    with wave.open(path, "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        rate, frames = w.getframerate(), w.readframes(w.getnframes())
    samples = memoryview(frames).cast("h")
    out = bytearray()
    n = int(len(samples) * 24000 / rate)
    for i in range(n):  # linear interpolation is plenty for a test
        x = i * rate / 24000
        j = int(x)
        a = samples[j]
        b = samples[min(j + 1, len(samples) - 1)]
        out += int(a + (b - a) * (x - j)).to_bytes(2, "little", signed=True)
    return bytes(out)


async def main():
    base, key, clip, mode = sys.argv[1:5]
    client = openai.AsyncOpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
    seen, completed, out = [], [], {}
    try:
        async with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
            await conn.send({"type": "session.update", "session": {
                "type": "transcription",
                "audio": {"input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "transcription": {"model": "whisper-1", "language": "en"},
                    "turn_detection": {"type": "server_vad"} if mode == "vad" else None}}}})
            pcm = pcm24k(clip) + bytes(24000 * 2)  # a second of silence ends the turn
            step = 4800  # 100 ms
            for i in range(0, len(pcm), step):
                await conn.send({"type": "input_audio_buffer.append",
                                 "audio": base64.b64encode(pcm[i:i + step]).decode()})
            if mode == "manual":
                await conn.send({"type": "input_audio_buffer.commit"})
            while True:
                try:  # server VAD may end several turns: wait until it goes quiet
                    event = await asyncio.wait_for(conn.recv(), timeout=4 if completed else 60)
                except asyncio.TimeoutError:
                    break
                seen.append(event.type)
                if event.type == "conversation.item.input_audio_transcription.completed":
                    completed.append(event.transcript)
                    if mode == "manual":
                        break
                if event.type == "error":
                    out["error"] = event.error.message
                    break
    except Exception as e:  # reported, for the test to judge
        out["exception"] = f"{type(e).__name__}: {e}"
    out.update(text=" ".join(completed), events=sorted(set(seen)))
    print(json.dumps(out))


asyncio.run(main())
