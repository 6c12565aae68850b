"""The benchmark report: Markdown and JSON in ``benchmarks/results/``."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write(stem, report, markdown):
    """Write ``results/STEM.json`` and ``results/STEM.md``; print the Markdown."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    (RESULTS / f"{stem}.md").write_text(markdown)
    print(markdown)


def rst_list_table(header, rows, widths=None):
    """Lines of a reStructuredText ``list-table``, for the docs to include."""
    lines = [".. list-table::", "   :header-rows: 1"]
    if widths:
        lines.append(f"   :widths: {' '.join(map(str, widths))}")
    lines.append("")
    for row in [header, *rows]:
        lines += [f"   {'*' if i == 0 else ' '} - {cell}" for i, cell in enumerate(row)]
    return [*lines, ""]


def machine_line(machine):
    return f"CPU: {machine['cpu']}, {machine['cores']} cores; " + ", ".join(
        f"{k} {v}" for k, v in machine["versions"].items()
    )


def training_table(report):
    lines = [f"# sk-mnist benchmarks ({'quick' if report['quick'] else 'full'})", ""]
    m = report["machine"]
    lines += [machine_line(m), ""]
    imp = report["import"]
    lines += [
        f"`import sk_mnist`: {imp['seconds']:.2f} s; TensorFlow imported: "
        f"{imp['tensorflow_imported']}; Keras imported: {imp['keras_imported']}",
        "",
    ]
    for backend, res in report["speed"].items():
        if "error" in res:
            lines += [f"## {backend}: not run ({res['error']})", ""]
            continue
        raw = res["peers"].get("raw Keras (tutorial)", {})
        best = res["peers"].get("raw Keras (compiled)", {})
        floor = 6 * 669_706 * res["n_train"] / (res["matmul_gflops"] * 1e9)
        lines += [
            f"## {backend} ({res['n_train']} images, {res['epochs']} epochs)",
            "",
            f"Matmul throughput {res['matmul_gflops']:.1f} GFLOP/s; floor of one epoch "
            f"(6 x 669,706 parameters x {res['n_train']} samples) {floor:.2f} s.",
            "",
            "| peer | s/epoch | vs raw Keras | vs compiled Keras | vs floor "
            "| test acc | predict 1 (ms) | predict 32 (ms) | predict 10k (ms) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, p in res["peers"].items():
            if "error" in p:
                lines.append(f"| {name} | failed: {p['error'][:120]} ||||||||")
                continue
            ratio, versus_best = (
                p["steady_epoch_seconds"] / peer["steady_epoch_seconds"]
                if "steady_epoch_seconds" in peer
                else float("nan")
                for peer in (raw, best)
            )
            lat = p["latency_ms"]
            lines.append(
                f"| {name} | {p['steady_epoch_seconds']:.3f} | {ratio:.3f} | "
                f"{versus_best:.3f} | "
                f"{p['steady_epoch_seconds'] / floor:.2f} | {p['test_accuracy']:.4f} | "
                f"{lat['1']:.2f} | {lat['32']:.2f} | {lat['10000']:.1f} |"
            )
        lines.append("")
    mem = report.get("memory", {})
    if (
        "sk-mnist" in mem
        and "raw" in mem
        and "error" not in mem["sk-mnist"] | mem["raw"]
    ):
        ratio = mem["sk-mnist"]["peak_rss_mb"] / mem["raw"]["peak_rss_mb"]
        lines += [
            "## Memory",
            "",
            f"Peak RSS of one fit: sk-mnist Pipeline {mem['sk-mnist']['peak_rss_mb']:.0f} MB, "
            f"raw Keras {mem['raw']['peak_rss_mb']:.0f} MB, ratio {ratio:.3f}.",
            "",
        ]
    growth = report.get("growth", {})
    if "rss_mb" in growth:
        rss = growth["rss_mb"]
        lines += [
            f"RSS over {len(rss)} successive fits: {rss[0]:.0f} MB after the first, "
            f"{rss[len(rss) // 2]:.0f} MB in the middle, {rss[-1]:.0f} MB after the last.",
            "",
        ]
    for backend, acc in report.get("time_to_98", {}).items():
        if "seconds" in acc:
            lines.append(
                f"Time to 98% test accuracy on {backend}: {acc['seconds']:.1f} s "
                f"(epoch {acc['epoch']})."
            )
    return "\n".join(lines) + "\n"
