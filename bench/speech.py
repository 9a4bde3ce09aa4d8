#!/usr/bin/env python3
"""Speed, memory and accuracy of hark's engine beside faster-whisper, in one run.

    bash bench/speech.sh            # sets up the venv and builds, then runs this

Both engines load the same CTranslate2 model folder, use 2 CPU threads and decode
long_mix.wav (and every clip, for word error rate) with the same settings. Timings are
wall-clock for a whole transcription in a fresh process (model loading included, as a
user of `hark transcribe` or a first request would see), alternating the engines.
"""
import json, os, pathlib, statistics, subprocess, sys, time

ROOT = pathlib.Path(__file__).resolve().parent.parent
AUDIO = ROOT.parent / "shared" / "audio"
MODEL = ROOT / "models" / "whisper-tiny.en"
HARK = ROOT / "target" / "release" / "hark"
WER = ROOT / "target" / "release" / "examples" / "wer"
ROUNDS = int(os.environ.get("ROUNDS", "3"))
# PARTS=wer (or speed) runs one half only.
PARTS = os.environ.get("PARTS", "speed,wer").split(",")


def run_faster_whisper(path, compute_type, beam):
    code = f"""
import time, json, sys
t0 = time.time()
from faster_whisper import WhisperModel
m = WhisperModel({str(MODEL)!r}, device="cpu", compute_type={compute_type!r}, cpu_threads=2)
segments, info = m.transcribe({str(path)!r}, beam_size={beam}, language="en")
text = " ".join(s.text.strip() for s in segments)
print(json.dumps({{"text": text}}))
"""
    return timed([sys.executable, "-c", code], lambda out: json.loads(out)["text"])


def run_hark(path, beam):
    cmd = [str(HARK), "transcribe", str(path), "--model-dir", str(MODEL), "--beam-size", str(beam),
           "--threads", "2", "--format", "txt"]
    return timed(cmd, lambda out: out.strip())


def timed(cmd, parse):
    wrapped = ["/usr/bin/time", "-f", "MAXRSS_KB %M"] + cmd
    start = time.perf_counter()
    proc = subprocess.run(wrapped, capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - start
    rss = next(int(l.split()[1]) for l in proc.stderr.splitlines() if l.startswith("MAXRSS_KB"))
    return elapsed, rss / 1024, parse(proc.stdout)


def wer(reference, hypothesis):
    out = subprocess.run([str(WER), reference, hypothesis], capture_output=True, text=True, check=True)
    return float(out.stdout)


def main():
    if "speed" in PARTS:
        speed()
    if "wer" in PARTS:
        accuracy()


def speed():
    long_mix = AUDIO / "long_mix.wav"
    print("## Speed and memory on long_mix.wav (%.0f s of audio)\n" % (4489044 / 2 / 16000))
    print("| engine | settings | runs (s) | median (s) | ratio hark/faster-whisper | peak RSS (MB) |")
    print("|---|---|---|---|---|---|")
    for beam in (1, 5):
        for compute in ("int8", "float32"):
            fw, hk = [], []
            for _ in range(ROUNDS):
                fw.append(run_faster_whisper(long_mix, compute, beam))
                hk.append(run_hark(long_mix, beam))
            fw_med = statistics.median(t for t, _, _ in fw)
            hk_med = statistics.median(t for t, _, _ in hk)
            print(f"| faster-whisper | {compute}, beam {beam} | {', '.join('%.2f' % t for t, _, _ in fw)} | {fw_med:.2f} | | {max(r for _, r, _ in fw):.0f} |")
            print(f"| hark | f32, beam {beam} | {', '.join('%.2f' % t for t, _, _ in hk)} | {hk_med:.2f} | **{hk_med / fw_med:.2f}** vs {compute} | {max(r for _, r, _ in hk):.0f} |")
            sys.stdout.flush()


def accuracy():
    print("\n## Word error rate per clip (beam 5)\n")
    print("| clip | hark (f32) | faster-whisper float32 | faster-whisper int8 |")
    print("|---|---|---|---|")
    totals = {"hark": [0.0, 0], "fw": [0.0, 0], "fw8": [0.0, 0]}
    for wav in sorted(AUDIO.glob("*.wav")) + [AUDIO / "meeting_01_stereo44k.mp3"]:
        ref_path = wav.with_suffix(".txt")
        reference = ref_path.read_text().strip()
        words = len(reference.split())
        _, _, hark_text = run_hark(wav, 5)
        _, _, fw_text = run_faster_whisper(wav, "float32", 5)
        _, _, fw8_text = run_faster_whisper(wav, "int8", 5)
        scores = {"hark": wer(reference, hark_text), "fw": wer(reference, fw_text),
                  "fw8": wer(reference, fw8_text)}
        for key, value in scores.items():
            totals[key][0] += value * words
            totals[key][1] += words
        print(f"| {wav.name} | " + " | ".join(f"{v * 100:.1f}%" for v in scores.values()) + " |")
        sys.stdout.flush()
    print("| **all (word-weighted)** | " + " | ".join(
        f"**{t[0] / t[1] * 100:.1f}%**" for t in totals.values()) + " |")


if __name__ == "__main__":
    main()
