"""Writing an evaluation: ``summary.json``, ``results.jsonl``, ``table.md`` and ``pass_at_k.png``.

The summary is what dashboards and CI read (fractions, not percents, keyed
by k as strings so JSON round-trips); the JSONL keeps every sample so a score
can be audited; the table and plot are for people. matplotlib is imported
only here, with the ``Agg`` backend, so a headless machine can plot.
"""

from __future__ import annotations

import json
from pathlib import Path

from .problems import status_counts
from .run import EvalReport

__all__ = ["FILES", "summary", "write_report"]

#: The files an evaluation writes into its ``--out`` folder.
FILES = ("summary.json", "results.jsonl", "table.md", "pass_at_k.png")


def summary(report: EvalReport) -> dict:
    """The ``summary.json`` object (see :data:`FILES`)."""
    results, ks = report.results, report.ks
    refine = None
    solved = report.refine_solved_within()
    if solved is not None:
        arms = [r.refine for r in results]
        refine = {
            "rounds": report.settings.get("refine_rounds"),
            "solved_within": solved,
            "pass_at_budget": solved[str(report.settings["n"])],
            "samples": sum(a.samples for a in arms),
            "chains": sum(a.chains for a in arms),
            "tokens": sum(a.tokens for a in arms),
        }
    return {
        "benchmark": "humaneval",
        "mode": report.mode,
        "problems": len(results),
        "samples_per_problem": min(r.n for r in results),
        "pass_at_k": report.pass_at_k(ks),
        "one_shot_curve": report.pass_at_k(range(1, min(r.n for r in results) + 1)),
        "refine": refine,
        "tokens": {"one_shot": sum(r.tokens for r in results),
                   "refine": refine["tokens"] if refine else None},
        "statuses": dict(status_counts(s for r in results for s in r.samples)),
        "seconds": report.seconds,
        "settings": report.settings,
    }


def write_report(report: EvalReport, out: str | Path) -> dict:
    """Write the four files into ``out`` (created if needed); returns the summary."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    data = summary(report)
    (folder / "summary.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    with open(folder / "results.jsonl", "w", encoding="utf-8") as handle:
        for result in report.results:
            handle.write(json.dumps(result.to_json(report.ks), ensure_ascii=False) + "\n")
    (folder / "table.md").write_text(markdown_table(data), encoding="utf-8")
    plot(data, folder / "pass_at_k.png")
    return data


def markdown_table(data: dict) -> str:
    """pass@k per arm in percent, with the tokens each arm spent."""
    ks = list(data["pass_at_k"])
    head = "| arm | " + " | ".join(f"pass@{k}" for k in ks) + " | tokens |"
    rows = [head, "|" + "---|" * (len(ks) + 2)]
    cells = " | ".join(f"{100 * data['pass_at_k'][k]:.1f}" for k in ks)
    rows.append(f"| one-shot | {cells} | {data['tokens']['one_shot']} |")
    refine = data["refine"]
    if refine is not None:
        solved = refine["solved_within"]
        cells = " | ".join(f"{100 * solved[k]:.1f}" if k in solved else "-" for k in ks)
        rows.append(f"| refine ({refine['rounds']} rounds, solved within k samples) | {cells} | "
                    f"{refine['tokens']} |")
    note = (f"\n{data['problems']} HumanEval problems, {data['samples_per_problem']} samples each "
            f"({data['mode']}); timeout {data['settings'].get('timeout_s')} s per problem.\n")
    return "\n".join(rows) + "\n" + note


def plot(data: dict, path: Path) -> None:
    """pass@k (one-shot) and solved-within-k (refine) against samples per problem."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    try:
        curve = data["one_shot_curve"]
        xs = [int(k) for k in curve]
        ax.plot(xs, [100 * v for v in curve.values()], marker="o", label="one-shot pass@k")
        if data["refine"] is not None:
            solved = data["refine"]["solved_within"]
            ax.plot([int(k) for k in solved], [100 * v for v in solved.values()], marker="s",
                    label=f"refine ({data['refine']['rounds']} rounds), solved within k")
        if len(xs) > 10:
            ax.set_xscale("log")
        ax.set_xlabel("samples per problem (k)")
        ax.set_ylabel("% of problems")
        ax.set_ylim(0, 100)
        ax.set_title(f"HumanEval, {data['problems']} problems")
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
