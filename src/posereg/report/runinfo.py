"""What a report's runs are: how many under the folder, their setup, code versions and time spent."""

from __future__ import annotations

from collections import Counter
from datetime import timezone
from typing import Any

from posereg.report.collect import STATUSES, RunRecord, status_counts
from posereg.report.table import DIRTY_MARK, MIXED_MARK, UNKNOWN_COMMIT, Table
from posereg.runs.files import DIRTY_SUFFIX

SETUP_FIELDS = (("data", "data"), ("joint_set", "joint set"), ("backbone", "backbone"),
                ("input_size", "input"), ("batch_size", "batch"), ("epochs", "epochs"), ("steps", "steps"),
                ("device", "device"), ("device_model", "device model"), ("precision", "precision"))
SHORT_SHA = 7


def count_runs(n: int, what: str = "") -> str:
    """`1 done run`, `3 done runs`."""
    return f"{n} {what + ' ' if what else ''}run{'' if n == 1 else 's'}"


def short_commit(commit: str) -> str:
    """`c04810a` or `c04810a+dirty`."""
    sha, _, rest = commit.partition("+")
    return sha[:SHORT_SHA] + (f"+{rest}" if rest else "") if len(sha) == 40 else commit


def _value_text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "+".join(str(v) for v in value)
    return str(value)


def _summary(values: list[Any]) -> str:
    """Distinct values: `64`, `64, 128`, or `20–2688 (varies)` for many numbers."""
    distinct = list(dict.fromkeys(_value_text(v) for v in values))
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(distinct) > 3 and len(numbers) == len(values):
        return f"{min(numbers):g}–{max(numbers):g} (varies)"
    return ", ".join(distinct) + (" (varies)" if len(distinct) > 1 else "")


def runs_line(table: Table) -> str:
    """`Runs in the folder: 30 (done 25 · failed 1 · ...); 3 foreign (not cells of this grid, listed below)`."""
    counts = status_counts(table.all_records)
    text = f"Runs in the folder: {len(table.all_records)} (" + " · ".join(
        f"{s} {counts.get(s, 0)}" for s in STATUSES) + ")"
    by_experiment = Counter(r.experiment or "?" for r in table.all_records)
    if len(by_experiment) > 1:
        text += " in experiments " + ", ".join(f"{e} ({n})" for e, n in sorted(by_experiment.items()))
    n = len(table.foreign)
    text += f"; {n} foreign (not cells of this grid, listed below)" if n else "; all are cells of this grid"
    return text + "."


def setup_line(table: Table) -> str:
    """The done runs' setup from metrics.json (data, backbone, input, steps, seeds, device, precision)."""
    done = [r for r in table.members if r.status == "done"]
    with_setup = [r for r in done if r.setup]
    if not with_setup:
        return f"Setup: not recorded (no metrics.json `setup` in {count_runs(len(done), 'done')})."
    parts = []
    for key, label in SETUP_FIELDS:
        values = [r.setup[key] for r in with_setup if r.setup.get(key) is not None]
        if values:
            parts.append(f"{label} {_summary(values)}")
    seeds = sorted({str(r.setup.get("seed", r.seed)) for r in with_setup}, key=lambda s: (len(s), s))
    parts.insert(min(len(parts), 3), f"seeds {', '.join(seeds)}")
    missing = len(done) - len(with_setup)
    tail = f" ({count_runs(missing, 'done')} without a recorded setup)" if missing else ""
    return f"Setup of {count_runs(len(with_setup), 'done')}: " + " · ".join(parts) + tail + "."


def commit_line(table: Table) -> str:
    """The git commit(s) of the done runs; a warning when they mix several."""
    counts = table.commit_counts()
    if not counts:
        return "Code: no run is done yet."
    if list(counts) == [UNKNOWN_COMMIT]:
        return "Code: the done runs record no git commit (status.json git_commit)."
    listed = ", ".join(f"{short_commit(c)} ({n})" for c, n in counts.items())
    dirty = sum(n for c, n in counts.items() if c.endswith(DIRTY_SUFFIX))
    warning = (f" WARNING: {dirty} of {sum(counts.values())} done runs ran on uncommitted code ({DIRTY_SUFFIX}): the "
               f"repository does not hold the code that produced them; cells marked {DIRTY_MARK}.") if dirty else ""
    if len(counts) == 1:
        return f"Code: git {listed} for every done run." + warning
    return (f"WARNING: the done runs mix {len(counts)} git commits: {listed}; cells marked {MIXED_MARK} hold runs "
            f"from a commit other than {short_commit(next(iter(counts)))} (the most common) or from several." + warning)


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds < 36000 else f"{seconds / 3600:.0f} h"


def time_line(table: Table) -> str:
    """Time span (first start to last end, UTC) and the summed run time of the grid's runs."""
    runs: list[RunRecord] = table.members
    starts = [r.started_at for r in runs if r.started_at]
    ends = [r.ended_at for r in runs if r.ended_at]
    timed = [r.duration_s for r in runs if r.duration_s is not None]
    if not starts:
        return "Time: no run has started."

    def utc(t: Any) -> str:
        t = t.astimezone(timezone.utc) if t.tzinfo else t
        return t.strftime("%Y-%m-%d %H:%M")

    span = f"{utc(min(starts))} → {utc(max(ends))} UTC" if ends else f"since {utc(min(starts))} UTC"
    if not timed:
        return f"Time: {span}; no run records its duration (status.json duration_s)."
    return (f"Time: {span}; {_hours(sum(timed))} of run time (sum of status.json duration_s over "
            f"{count_runs(len(timed), 'finished')}, last attempt each).")


def header_lines(table: Table) -> list[str]:
    """Every header line about the runs, in order."""
    return [runs_line(table), setup_line(table), commit_line(table), time_line(table), table.protocol.line()]
