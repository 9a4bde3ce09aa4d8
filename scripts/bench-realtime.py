"""Real-time streaming benchmark: clips fed at real-time pace over Speechmatics' protocol.

usage: bench-realtime.py BASE_URL REALTIME_KEY PAT MAX_DELAY STREAMS CLIP...
For every final word: latency = when its AddTranscript arrived - when its end_time was
sent (audio is paced at 1x from the moment RecognitionStarted arrives). Also the first
partial after the first word's start, normalized erasure (partial words later erased /
final words), and the WER of the streamed finals vs the batch transcript of the same clip
(POST /v1/audio/transcriptions with the PAT). STREAMS clips run at once (the clip list is
cycled) to measure capacity. Needs the test venv (websockets comes with openai).
"""
import asyncio
import json
import statistics
import sys
import time
import urllib.request
import uuid
import wave

import websockets



def words(text):
    return [w.strip(".,?!;:\"'").lower() for w in text.split() if w.strip(".,?!;:\"'")]


def wer(ref, hyp):
    r, h = words(ref), words(hyp)
    d = list(range(len(h) + 1))
    for i in range(1, len(r) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(h) + 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (r[i - 1] != h[j - 1]))
            prev, d[j] = d[j], cur
    return d[len(h)] / max(len(r), 1)


def batch_text(base, pat, clip):
    boundary = uuid.uuid4().hex
    data = open(clip, "rb").read()
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"response_format\"\r\n\r\ntext\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
            "Content-Type: audio/wav\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(base + "/v1/audio/transcriptions", body, {
        "Authorization": "Bearer " + pat, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    return urllib.request.urlopen(req).read().decode()


async def stream(url, key, clip, max_delay):
    with wave.open(clip, "rb") as w:
        rate, pcm = w.getframerate(), w.readframes(w.getnframes())
    chunk = rate // 10 * 2  # 100 ms
    out = {"latencies": [], "finals": [], "partial_words": 0, "first_partial": None}
    async with websockets.connect(url, additional_headers={"Authorization": "Bearer " + key},
                                  max_size=None) as ws:
        await ws.send(json.dumps({"message": "StartRecognition",
                                  "audio_format": {"type": "raw", "encoding": "pcm_s16le", "sample_rate": rate},
                                  "transcription_config": {"language": "en", "enable_partials": True,
                                                           "max_delay": max_delay}}))
        while json.loads(await ws.recv())["message"] != "RecognitionStarted":
            pass
        t0 = time.monotonic()
        last_partial = []

        async def send():
            for i, at in enumerate(range(0, len(pcm), chunk)):
                await asyncio.sleep(max(0, t0 + i * 0.1 - time.monotonic()))
                await ws.send(pcm[at:at + chunk])
            await ws.send(json.dumps({"message": "EndOfStream", "last_seq_no": i + 1}))

        sender = asyncio.create_task(send())
        async for raw in ws:
            if isinstance(raw, bytes):
                continue
            m = json.loads(raw)
            now = time.monotonic() - t0
            if m["message"] == "AddPartialTranscript":
                ws_ = [r["alternatives"][0]["content"] for r in m["results"] if r["type"] == "word"]
                if ws_ and out["first_partial"] is None:
                    out["first_partial"] = now - m["results"][0]["start_time"]
                # words of the previous partial not kept as a prefix are erased
                keep = 0
                while keep < min(len(ws_), len(last_partial)) and ws_[keep] == last_partial[keep]:
                    keep += 1
                out["partial_words"] += len(last_partial) - keep
                last_partial = ws_
            elif m["message"] == "AddTranscript":
                for r in m["results"]:
                    if r["type"] == "word":
                        out["latencies"].append(now - r["end_time"])
                        out["finals"].append(r["alternatives"][0]["content"])
                # finals consume the partial they confirm
                n = len([r for r in m["results"] if r["type"] == "word"])
                last_partial = last_partial[n:]
            elif m["message"] == "EndOfTranscript":
                break
        await sender
    return out


async def main():
    base, key, pat, max_delay, n = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
    clips = sys.argv[6:]
    url = base.replace("http://", "ws://") + "/v2"
    runs = [clips[i % len(clips)] for i in range(n)]
    results = await asyncio.gather(*(stream(url, key, c, max_delay) for c in runs))
    lat = sorted(x for r in results for x in r["latencies"])
    finals = sum(len(r["finals"]) for r in results)
    erased = sum(r["partial_words"] for r in results)
    swer, bwer = [], []
    for clip, r in zip(runs, results):
        ref = open(clip.replace(".wav", ".txt")).read()
        swer.append(wer(ref, " ".join(r["finals"])))
        if n == 1 or clip not in runs[:runs.index(clip)]:
            bwer.append(wer(ref, batch_text(base, pat, clip)))
    firsts = [r["first_partial"] for r in results if r["first_partial"] is not None]
    print(json.dumps({
        "streams": n, "max_delay": max_delay, "final_words": finals,
        "latency_median": round(statistics.median(lat), 3),
        "latency_p95": round(lat[int(0.95 * (len(lat) - 1))], 3),
        "first_partial_median": round(statistics.median(firsts), 3) if firsts else None,
        "erasure": round(erased / max(finals, 1), 3),
        "wer_streamed": round(statistics.mean(swer), 3),
        "wer_batch": round(statistics.mean(bwer), 3) if bwer else None,
    }))


asyncio.run(main())
