"""Streams a WAV clip to hark with the legacy speechmatics-python client (5.x), unmodified.

usage: speechmatics_legacy.py URL KEY CLIP
Prints one JSON object: the final transcript and any error the client raised.
"""
import json
import sys
import warnings

warnings.simplefilter("ignore")  # the package announces its own deprecation

from speechmatics.client import WebsocketClient  # noqa: E402
from speechmatics.models import (AudioSettings, ConnectionSettings, ServerMessageType,  # noqa: E402
                                 TranscriptionConfig)

url, key, clip = sys.argv[1:4]
# ws:// (no TLS) needs ssl_context=None: the client passes its TLS context otherwise.
client = WebsocketClient(ConnectionSettings(url=url, auth_token=key, ssl_context=None))
finals, out = [], {}
client.add_event_handler(ServerMessageType.AddTranscript,
                         lambda m: finals.append(m["metadata"]["transcript"]))
try:
    with open(clip, "rb") as audio:
        client.run_synchronously(audio, TranscriptionConfig(language="en", enable_partials=True),
                                 AudioSettings(), timeout=120)
except Exception as e:  # reported, for the test to judge
    out["error"] = f"{type(e).__name__}: {e}"
out["text"] = " ".join(t.strip() for t in finals if t.strip())
print(json.dumps(out))
