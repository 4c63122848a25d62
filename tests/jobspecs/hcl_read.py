"""Reading the jobspecs with python-hcl2 into plain Python data the tests can assert on.

python-hcl2 keeps string quotes and heredoc markers unless told otherwise; :func:`load` strips the quotes, gives
every block as a list of dicts (``job["x"]["group"][0]["g"]...``) and :func:`heredoc` turns a preserved heredoc
back into its text. Expressions stay as their source text (``"${var.archive_bucket}"``).
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions

ROOT = Path(__file__).resolve().parents[2]
JOBSPECS = ROOT / "jobspecs"
OPTIONS = SerializationOptions(with_comments=False, explicit_blocks=False, preserve_heredocs=True,
                               strip_string_quotes=True)
HEREDOC = re.compile(r"^<<(-?)([A-Z_]+)\n(.*)\n\s*\2$", re.S)


def loads(text: str) -> dict[str, Any]:
    """Parse HCL text."""
    return dict(hcl2.loads(text, serialization_options=OPTIONS))


def load(path: Path) -> dict[str, Any]:
    """Parse an HCL file."""
    return loads(path.read_text(encoding="utf-8"))


def heredoc(value: Any) -> str:
    """The text of a heredoc value (``<<-EOT`` strips the common indentation, as HCL does)."""
    text = str(value)
    match = HEREDOC.match(text)
    if not match:
        return text
    body = match.group(3)
    return textwrap.dedent(body) if match.group(1) else body


def one(blocks: list[dict[str, Any]] | None, label: str | None = None) -> dict[str, Any]:
    """The only block of a list (with ``label``: the body of the block with that label)."""
    assert blocks, "expected a block"
    if label is None:
        assert len(blocks) == 1, f"expected one block, got {len(blocks)}"
        return blocks[0]
    bodies = [b[label] for b in blocks if label in b]
    assert len(bodies) == 1, f"expected one block labelled {label!r}, got {len(bodies)}"
    return bodies[0]


def labelled(blocks: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Labelled blocks as {label: body}."""
    out: dict[str, dict[str, Any]] = {}
    for block in blocks or []:
        for label, body in block.items():
            assert label not in out, f"duplicate block {label!r}"
            out[label] = body
    return out


def job_of(doc: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The jobspec's only job: (ID, body)."""
    jobs = labelled(doc.get("job"))
    assert len(jobs) == 1, f"expected one job, got {list(jobs)}"
    return next(iter(jobs.items()))


def variables(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The jobspec's ``variable`` blocks."""
    return labelled(doc.get("variable"))


def tasks(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every task of every group, by name."""
    out: dict[str, dict[str, Any]] = {}
    for group in labelled(job.get("group")).values():
        out.update(labelled(group.get("task")))
    return out


def walk(value: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every (path, leaf value) of a parsed document."""
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in walk(item, f"{path}.{key}" if path else str(key))]
    if isinstance(value, list):
        return [leaf for i, item in enumerate(value) for leaf in walk(item, f"{path}[{i}]")]
    return [(path, value)]
