"""How precheck shows its results: linkerd's column of ✔ / ‼ / ✖ lines by category (streamed as
each check ends, through `Printer`), a summary line, or the whole result as JSON/YAML."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from meshctl.output import OutputFormats
from meshctl.precheck.checks import ERROR, OK, WARNING, Outcome

FORMATS = OutputFormats(("text", "json", "yaml"), default="text", aliases=(("log", "text"),))
SYMBOL = {OK: "✔", WARNING: "‼", ERROR: "✖"}
STYLE = {OK: "green", WARNING: "yellow", ERROR: "red"}
MAX_DETAILS = 20


@dataclass
class PrecheckResult:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(o.result.status == ERROR for o in self.outcomes)

    def count(self, status: str) -> int:
        return sum(o.result.status == status for o in self.outcomes)

    def to_dict(self) -> dict:
        categories: list[dict] = []
        for o in self.outcomes:
            if not categories or categories[-1]["categoryName"] != o.check.category:
                categories.append({"categoryName": o.check.category, "checks": []})
            categories[-1]["checks"].append({
                "id": o.check.id, "description": o.check.description, "hint": o.check.hint_url,
                "fatal": o.check.fatal,
                "result": {OK: "success", WARNING: "warning", ERROR: "error"}[o.result.status],
                "error": o.result.message if o.result.status != OK else "",
                "details": o.result.details})
        return {"success": not self.failed, "categories": categories}


class Printer:
    """An observer for run_checks: prints each outcome as it arrives, under its category."""

    def __init__(self, out):
        self.out = out
        self.category: str | None = None

    def __call__(self, outcome: Outcome) -> None:
        from rich.text import Text

        check, result = outcome.check, outcome.result
        if self.category != check.category:
            if self.category is not None:
                self.out.print()
            self.out.print(Text(check.category, style="bold"))
            self.out.print("-" * len(check.category), markup=False, highlight=False)
            self.category = check.category
        extra = f" ({result.message})" if result.status == OK and result.message else ""
        self.out.print(Text.assemble((SYMBOL[result.status], STYLE[result.status]), f" {check.description}{extra}"))
        if result.status != OK:
            self.out.print(f"    {result.message}", markup=False, highlight=False)
            for d in result.details[:MAX_DETAILS]:
                self.out.print(f"      * {d}", markup=False, highlight=False)
            if len(result.details) > MAX_DETAILS:
                self.out.print(f"      ... and {len(result.details) - MAX_DETAILS} more", markup=False)
            self.out.print(f"    see {check.hint_url} for hints", markup=False, highlight=False)


def summary(result: PrecheckResult, out) -> None:
    """`Status check results are ✔`, or ‼/✖ with the counts."""
    from rich.text import Text

    errors, warnings = result.count(ERROR), result.count(WARNING)
    counts = ", ".join(f"{n} {word}{'s' if n != 1 else ''}"
                       for n, word in ((errors, "failure"), (warnings, "warning")) if n)
    status = ERROR if errors else WARNING if warnings else OK
    out.print()
    out.print(Text.assemble("Status check results are ", (SYMBOL[status], STYLE[status]),
                            f" ({counts})" if counts else ""))


def write(result: PrecheckResult, fmt: str, out, err: Any = None, streamed: bool = False) -> None:
    """The result in `fmt`; with streamed=True the text lines were printed already (by Printer)
    and only the summary follows."""
    if fmt == "text":
        if not streamed:
            printer = Printer(out)
            for o in result.outcomes:
                printer(o)
        summary(result, out)
        return
    from meshctl.output import emit_to

    emit_to(out, result.to_dict(), fmt)
