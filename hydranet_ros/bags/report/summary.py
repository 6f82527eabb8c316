"""/diagnostics into the latency summary, and the texts: summary.md, summary.json and what is printed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hydranet_ros.bags.report.index import OUTPUTS, Index
from hydranet_ros.ros.monitor import STAGES

# --- diagnostics and the summary -----------------------------------------------------------------------------------

def _number(value: str) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None  # "n/a": a period without frames
    return v if np.isfinite(v) else None


def _status_camera(status: Any) -> str | None:
    """The camera a hydranet status is about ("hydranet: camera front", or hardware_id), "engine", or None."""
    name = str(status.name)
    if not name.startswith("hydranet:"):
        return None
    rest = name.split(":", 1)[1].strip()
    if rest == "engine":
        return "engine"
    return str(status.hardware_id) or rest.rsplit(" ", 1)[-1]


def summarise_diagnostics(arrays: list[Any]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Per camera: mean and max of each latency over the periods that had frames (a value other than "n/a"),
    mean input/output rates over those periods, the last totals; and the engine's description and model.

    A period's mean is what the node reports for it, so the mean here is the mean of period means (each period
    is one diagnostics_period_s, so periods weigh the same); the max is the largest period max."""
    periods: dict[str, list[dict[str, str]]] = {}
    warnings: dict[str, dict[str, None]] = {}  # camera -> the distinct WARN / ERROR messages, in order
    engine: dict[str, Any] = {}
    batch_sizes = []
    for array in arrays:
        for st in array.status:
            who = _status_camera(st)
            values = {str(kv.key): str(kv.value) for kv in st.values}
            if who == "engine":
                engine.update({k: values[k] for k in ("engine", "model", "model_sha256", "mode", "passes_total")
                               if values.get(k)})
                if _number(values.get("mean_batch_size", "")) is not None:
                    batch_sizes.append(float(values["mean_batch_size"]))
            elif who is not None:
                periods.setdefault(who, []).append(values)
                level = st.level[0] if isinstance(st.level, (bytes, bytearray)) else int(st.level)  # byte field
                # WARN or ERROR while frames came in ("no frames" before and after a recording is expected)
                if level and (_number(values.get("input_rate_hz", "")) or 0) > 0:
                    warnings.setdefault(who, {})[str(st.message)] = None
    if batch_sizes:
        engine["mean_batch_size"] = round(float(np.mean(batch_sizes)), 2)
    cameras = {}
    for cam, ps in periods.items():
        keys = [k for k in dict.fromkeys(k for p in ps for k in p) if k.startswith("latency_") and k.endswith("_ms")]
        order = {f"latency_{s}_ms": i for i, s in enumerate(STAGES)}
        keys.sort(key=lambda k: order.get(k, len(order)))
        busy = [p for p in ps if any(_number(p.get(k, "")) is not None for k in keys)]
        latency: dict[str, dict[str, float]] = {}
        for key in [*keys, "age_at_publish_ms", "stamp_age_at_publish_ms"]:
            means = [v for p in busy if (v := _number(p.get(key, ""))) is not None]
            maxes = [v for p in busy if (v := _number(p.get(key + "_max", p.get(key, "")))) is not None]
            p95s = [v for p in busy if (v := _number(p.get(key + "_p95", ""))) is not None]
            if means:
                label = key[len("latency_"):-len("_ms")] if key.startswith("latency_") else key[:-len("_ms")]
                latency[label] = {"mean": round(float(np.mean(means)), 2), "max": round(float(np.max(maxes)), 2),
                                  "periods": len(means)}
                if p95s:  # the worst period's p95: a bound, not an average
                    latency[label]["p95"] = round(float(np.max(p95s)), 2)
        rates = {k: round(float(np.mean(vs)), 2) for k in ("input_rate_hz", "output_rate_hz")
                 if (vs := [v for p in busy if (v := _number(p.get(k, ""))) is not None])}
        last = ps[-1]
        totals = {k: int(v) for k, v in last.items() if k.endswith("_total") and _number(v) is not None}
        cameras[cam] = {"periods": len(ps), "periods_with_frames": len(busy), "latency_ms": latency, **rates,
                        "totals": totals, "focal_length_from": last.get("focal_length_from", ""),
                        "depth_scale_from": last.get("depth_scale_from", ""),
                        "warnings": [w for w in warnings.get(cam, {}) if not w.startswith("inactive")]}
    return cameras, engine


def summarise(bag: Path, index: Index, frames: list[int], topics: dict[str, dict[str, Any]], fps: float,
             video: Path) -> dict[str, Any]:
    cameras, engine = summarise_diagnostics(index.diagnostics)
    cam = cameras.get(index.camera, {})
    # What the node said on /diagnostics and a reader of the report must know, said here too.
    if cam.get("focal_length_from") == "canonical":
        index.notes.append("depth used the model's canonical focal length: the camera had no camera_info (and no "
                           "fallback_fx), so its metres are off by the ratio of the real focal length to it")
    said = [w for w in cam.get("warnings", []) if "canonical focal length" not in w]  # that one is said above
    if said:
        index.notes.append("the node warned: " + "; ".join(said[:3])
                           + (f" (and {len(said) - 3} more)" if len(said) > 3 else ""))
    missing = {}
    # The default model's outputs that the bag lacks altogether, and every output the model has.
    absent = [name for name in OUTPUTS if name not in index.topics]
    for name in dict.fromkeys([*OUTPUTS, *index.outputs]):
        have = index.stamps.get(name, set())
        missing[name] = sum(s not in have for s in frames)
    if index.image_topic:
        missing["camera image"] = sum(s not in index.image_stamps for s in frames)
    for topic, errors in index.failures.items():
        missing[f"decodable {topic}"] = len(errors)
    lacking = {k: v for k, v in missing.items() if v and k not in absent}
    if lacking:
        completeness = "; ".join(f"{v} of {len(frames)} frames lack {k.replace('_', ' ') if k in index.topics else k}"
                                 for k, v in lacking.items())
    else:
        completeness = f"all {len(frames)} frames have every output" + (" recorded" if absent else "")
    if absent:
        completeness += f"; not in the bag: {', '.join(f'{index.base}/{name}' for name in absent)}"
    if index.duplicates:
        index.notes.append("stamps seen twice (shown once, the first): " + ", ".join(
            f"{name} {n}" for name, n in index.duplicates.items()))
    unanswered = len(index.image_stamps - set(frames))
    if unanswered:
        completeness += f"; {unanswered} camera images have no output at all (dropped by the node?)"
    relevant = [t for t in topics if t.startswith(index.base + "/") or t in (index.image_topic, "/diagnostics")]
    return {
        "bag": str(bag), "camera": index.camera, "base": index.base, "cameras_in_bag": index.bases,
        "image_topic": index.image_topic,
        "outputs": {"masks": index.masks, "depth": index.depth, "detections": index.detections},
        "camera_panel": "camera" if index.image_topic else ("overlay" if "overlay" in index.topics else "grey"),
        "frames": len(frames), "duration_s": round((frames[-1] - frames[0]) / 1e9, 3), "fps": round(fps, 3),
        "video": video.name, "missing": missing, "completeness": completeness,
        "camera_images_without_output": unanswered,
        "duplicate_stamps": dict(index.duplicates),
        "topics": topics, "relevant_topics": relevant, "cameras": cameras, "engine": engine, "notes": index.notes,
    }


def _latency_table(cam: dict[str, Any]) -> list[str]:
    rows = ["| stage | mean (ms) | max (ms) | periods |", "|---|---:|---:|---:|"]
    ages = ("age_at_publish", "stamp_age_at_publish")
    stages = {k: v for k, v in cam.get("latency_ms", {}).items() if k not in ages}
    for k, v in stages.items():
        rows.append(f"| {k} | {v['mean']:.2f} | {v['max']:.2f} | {v['periods']} |")
    if stages:
        rows.append(f"| **all stages (sum of means)** | {sum(v['mean'] for v in stages.values()):.2f} | | |")
    for key, what in zip(ages, ("arrival in the node to publish", "frame's stamp to publish"), strict=True):
        if age := cam.get("latency_ms", {}).get(key):
            p95 = f", p95 {age['p95']:.2f}" if "p95" in age else ""
            rows.append(f"| age at publish ({what}{p95}) | {age['mean']:.2f} | {age['max']:.2f} | {age['periods']} |")
    return rows


def texts(bag: Path, out: Path, index: Index, s: dict[str, Any], video: Path, sheet: Path) -> tuple[str, str]:
    """(the text printed at the end, summary.md)."""
    lines = [f"hydranet report of {bag}: camera {index.camera} ({index.base}/*), camera images from "
             + (index.image_topic or {"overlay": f"{index.base}/overlay", "grey": "nowhere (grey)"}[s["camera_panel"]])]
    if len(index.bases) > 1:
        lines.append(f"cameras in this bag: {', '.join(index.bases)} (pick one with --camera NAME)")
    lines.append(f"frames: {s['frames']} over {s['duration_s']:.2f} s; {s['completeness']}")
    lines.append("shown: masks " + (", ".join(index.masks) or "none") + f"; depth {index.depth or 'none'}; "
                 "detections " + (", ".join(index.detections) or "none"))
    ours = [t for t in s["relevant_topics"] if t.startswith(index.base + "/")]
    others = [t for t in s["relevant_topics"] if t not in ours]
    lines.append("messages: " + ", ".join(f"{t} {s['topics'][t]['count']}" for t in others) + f"; under {index.base}/: "
                 + ", ".join(f"{t[len(index.base) + 1:]} {s['topics'][t]['count']}" for t in ours))
    engine = s["engine"]
    if engine:
        lines.append(f"model: {engine.get('model', '?')} (sha256 {engine.get('model_sha256', '?')[:12]}) on "
                     f"{engine.get('engine', '?')}, {engine.get('passes_total', '?')} passes, mean batch "
                     f"{engine.get('mean_batch_size', 'n/a')}")
    cam = s["cameras"].get(index.camera)
    table: list[str] = []
    if cam is None:
        lines.append("/diagnostics: none for this camera in the bag (no latency summary)")
    else:
        t = cam["totals"]
        drops = ", ".join(f"{k[len('dropped_'):-len('_total')]} {v}" for k, v in t.items() if k.startswith("dropped_"))
        lines.append(f"/diagnostics: {cam['periods_with_frames']} of {cam['periods']} periods had frames; in "
                     f"{cam.get('input_rate_hz', 'n/a')} Hz, out {cam.get('output_rate_hz', 'n/a')} Hz; received "
                     f"{t.get('received_total', '?')}, published {t.get('published_total', '?')}, dropped: "
                     f"{drops or 'n/a'}, lost before reaching the node: {t.get('lost_in_transport_total', 'n/a')}")
        table = _latency_table(cam)
    lines += [f"note: {n}" for n in index.notes]
    text = "\n".join([*lines, *table, f"wrote {video.name} ({s['frames']} frames at {s['fps']:.1f} fps), "
                      f"{sheet.name}, summary.md, summary.json in {out}"])
    md = [f"# hydranet report: {bag.name}", "", *[f"- {line}" for line in lines], ""]
    if table:
        md += [f"## Latency of camera {index.camera} (/diagnostics)", "", *table, ""]
    md += ["## Topics", "", "| topic | type | messages |", "|---|---|---:|"]
    md += [f"| {t} | {v['type']} | {v['count']} |" for t, v in s["topics"].items()]
    md += ["", f"Files: [{video.name}]({video.name}), [{sheet.name}]({sheet.name}), [summary.json](summary.json)", ""]
    return text, "\n".join(md)
