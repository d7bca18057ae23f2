#!/usr/bin/env python3
"""Expected audiowaveform output for an audio file, computed without Conveyor.

Decodes the first audio stream with the ffmpeg CLI to s16le (its own channel count and rate), then applies
audiowaveform's documented definition with numpy: mono = sum of channels / channel count (integer division,
truncated toward zero), min/max over blocks of samples_per_pixel frames, a final partial block emitted, 8-bit =
16-bit value / 256 truncated toward zero. Writes the binary .dat (version 1 mono, 2 with a channel count) and the
JSON form for each variant.

usage: waveform_oracle.py INPUT OUTDIR VARIANT...   VARIANT = mono|split , 8|16 , pps=N|spp=N  e.g. split-8-spp=256
Prints {"sample_rate", "channels", "frames"} of the decoded audio as JSON.
"""
import json
import struct
import subprocess
import sys

import numpy as np


def trunc_div(values, divisor):
    return np.sign(values) * (np.abs(values) // divisor)


def main():
    path, outdir, variants = sys.argv[1], sys.argv[2], sys.argv[3:]
    probe = json.loads(subprocess.check_output(
        ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=sample_rate,channels",
         "-of", "json", path]))
    stream = probe["streams"][0]
    rate, channels = int(stream["sample_rate"]), int(stream["channels"])
    raw = subprocess.check_output(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-map", "0:a:0", "-f", "s16le", "-acodec", "pcm_s16le", "-"])
    samples = np.frombuffer(raw, dtype="<i2").reshape(-1, channels).astype(np.int64)
    frames = samples.shape[0]
    for variant in variants:
        layout, bits, scale = variant.split("-")
        bits = int(bits)
        kind, number = scale.split("=")
        spp = rate // int(number) if kind == "pps" else int(number)
        if layout == "mono":
            signal = trunc_div(samples.sum(axis=1), channels).reshape(-1, 1)
        else:
            signal = samples
        out_channels = signal.shape[1]
        blocks = (frames + spp - 1) // spp
        pad = blocks * spp - frames
        lows = np.vstack([signal, np.full((pad, out_channels), 32767)]).reshape(blocks, spp, out_channels).min(axis=1)
        highs = np.vstack([signal, np.full((pad, out_channels), -32768)]).reshape(blocks, spp, out_channels).max(axis=1)
        data = np.stack([lows, highs], axis=2).reshape(-1)  # pixel, channel, (min, max)
        if bits == 8:
            data = trunc_div(data, 256)
        version = 1 if out_channels == 1 else 2
        header = struct.pack("<iIiiI", version, 1 if bits == 8 else 0, rate, spp, blocks)
        if version == 2:
            header += struct.pack("<i", out_channels)
        body = data.astype("<i1" if bits == 8 else "<i2").tobytes()
        with open(f"{outdir}/{variant}.dat", "wb") as f:
            f.write(header + body)
        document = {"version": 2, "channels": out_channels, "sample_rate": rate, "samples_per_pixel": spp,
                    "bits": bits, "length": blocks, "data": [int(v) for v in data]}
        with open(f"{outdir}/{variant}.json", "w") as f:
            f.write(json.dumps(document, separators=(",", ":")) + "\n")
    print(json.dumps({"sample_rate": rate, "channels": channels, "frames": frames}))


if __name__ == "__main__":
    main()
