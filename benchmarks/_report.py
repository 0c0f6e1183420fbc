"""Result rows, their targets, and the printed table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "PEERS",
    "AllOf",
    "AtLeast",
    "AtLeastPeer",
    "AtLeastRatio",
    "AtMost",
    "AtMostRatio",
    "Row",
    "Target",
    "render_table",
]

PEERS = ("pgqueuer", "procrastinate")
"""The peer queues, each with a column of its own."""

Unit = Literal["jobs/s", "ms", "MB", "us/job", "x"]


class Target:
    """What a row's sqlxmq_py figure must reach."""

    def describe(self) -> str:
        """The target as printed in the table."""
        raise NotImplementedError

    def met(self, row: Row) -> bool | None:
        """Whether the row meets it; None when a figure it needs is missing."""
        raise NotImplementedError


@dataclass(frozen=True)
class AtLeast(Target):
    """sqlxmq_py's figure is at least ``value`` (throughput)."""

    value: float

    def describe(self) -> str:
        return f">= {_number(self.value)}"

    def met(self, row: Row) -> bool | None:
        return None if row.sqlxmq is None else row.sqlxmq >= self.value


@dataclass(frozen=True)
class AtLeastRatio(Target):
    """sqlxmq_py's figure is at least ``ratio`` times the baseline's."""

    ratio: float

    def describe(self) -> str:
        return f">= {self.ratio:.0%} of baseline"

    def met(self, row: Row) -> bool | None:
        ratio = row.ratio()
        return None if ratio is None else ratio >= self.ratio


@dataclass(frozen=True)
class AtMostRatio(Target):
    """sqlxmq_py's figure is at most ``ratio`` times the baseline's (CPU per job)."""

    ratio: float

    def describe(self) -> str:
        return f"<= {self.ratio:g}x baseline"

    def met(self, row: Row) -> bool | None:
        ratio = row.ratio()
        return None if ratio is None else ratio <= self.ratio


@dataclass(frozen=True)
class AtLeastPeer(Target):
    """sqlxmq_py's figure is at least ``ratio`` times ``peer``'s, measured in the same run."""

    peer: str
    ratio: float = 1.0

    def describe(self) -> str:
        return f">= {self.peer}" if self.ratio == 1 else f">= {self.ratio:g}x {self.peer}"

    def met(self, row: Row) -> bool | None:
        peer = row.peers.get(self.peer)
        if row.sqlxmq is None or peer is None:
            return None
        return row.sqlxmq >= self.ratio * peer


@dataclass(frozen=True)
class AllOf(Target):
    """Every one of ``targets`` (missed as soon as one is missed)."""

    targets: tuple[Target, ...]

    def describe(self) -> str:
        return " and ".join(target.describe() for target in self.targets)

    def met(self, row: Row) -> bool | None:
        results = [target.met(row) for target in self.targets]
        if False in results:
            return False
        return None if None in results else True


@dataclass(frozen=True)
class AtMost(Target):
    """sqlxmq_py's figure is at most ``value`` and, if ``peer`` is given, at most that peer's
    figure measured in the same run (latency, memory)."""

    value: float
    peer: str | None = None

    def describe(self) -> str:
        text = f"<= {_number(self.value)}"
        return text if self.peer is None else f"{text} and <= {self.peer}"

    def met(self, row: Row) -> bool | None:
        if row.sqlxmq is None:
            return None
        ok = row.sqlxmq <= self.value
        if self.peer is not None:
            peer = row.peers.get(self.peer)
            if peer is None:
                return None if ok else False
            ok = ok and row.sqlxmq <= peer
        return ok


@dataclass
class Row:
    """One line of the table: sqlxmq_py beside its baseline (and peers) for one scenario."""

    number: str
    scenario: str
    unit: Unit
    sqlxmq: float | None
    baseline: float | None = None
    peers: dict[str, float | None] = field(default_factory=dict)
    target: Target | None = None
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def ratio(self) -> float | None:
        """sqlxmq_py's figure divided by the baseline's."""
        if self.sqlxmq is None or not self.baseline:
            return None
        return self.sqlxmq / self.baseline

    def met(self) -> bool | None:
        """Whether the target is met; None without a target or a figure."""
        return None if self.target is None else self.target.met(self)

    def as_json(self) -> dict[str, Any]:
        """The row for ``--json``."""
        return {
            "number": self.number,
            "scenario": self.scenario,
            "unit": self.unit,
            "sqlxmq_py": self.sqlxmq,
            "baseline": self.baseline,
            "ratio": self.ratio(),
            "peers": self.peers,
            "target": None if self.target is None else self.target.describe(),
            "met": self.met(),
            "notes": self.notes,
            "details": self.details,
        }


def _number(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _figure(value: float | None) -> str:
    return "-" if value is None else _number(value)


def _met(value: bool | None, has_target: bool) -> str:
    if not has_target:
        return "(info)"
    return {True: "yes", False: "NO", None: "?"}[value]


def render_table(rows: Sequence[Row]) -> str:
    """The rows as a plain-text table, with numbered notes underneath."""
    header = ["#", "scenario", "unit", "sqlxmq_py", "baseline", "ratio", *PEERS, "target", "met"]
    lines: list[list[str]] = []
    notes: list[str] = []
    for row in rows:
        ratio = row.ratio()
        marks = ""
        for note in row.notes:
            notes.append(note)
            marks += f"[{len(notes)}]"
        lines.append(
            [
                row.number,
                row.scenario + (f" {marks}" if marks else ""),
                row.unit,
                _figure(row.sqlxmq),
                _figure(row.baseline),
                "-" if ratio is None else f"{ratio:.2f}",
                *(_figure(row.peers.get(peer)) if peer in row.peers else "" for peer in PEERS),
                "" if row.target is None else row.target.describe(),
                _met(row.met(), row.target is not None),
            ]
        )
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]
    numeric = {3, 4, 5, 6, 7}

    def fmt(cells: list[str]) -> str:
        return "  ".join(
            cell.rjust(width) if i in numeric else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    out = [fmt(header), rule, *(fmt(cells) for cells in lines), rule]
    out += [f"[{i}] {note}" for i, note in enumerate(notes, start=1)]
    return "\n".join(out)
