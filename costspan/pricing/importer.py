"""``costspan prices import``: validate a price map and store it where every pricer looks.

A LiteLLM map is converted to costspan's format first; a costspan file is checked as is. Either
way the stored file is a costspan YAML file in ``pricing.import_dir`` (see
:mod:`costspan.pricing.config`), consulted after genai-prices: imported prices fill gaps, they
never override the maintained catalog (a user who wants that lists the file in ``pricing.files``).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from costspan.errors import ConfigError
from costspan.pricing.fileformat import FORMAT, parse_table, read_document
from costspan.pricing.litellm import convert, is_litellm_map


@dataclass(frozen=True)
class ImportResult:
    stored: Path
    kind: str
    """``litellm`` or ``costspan``."""
    models: int
    skipped: Counter[str]


def import_file(path: Path, import_dir: Path, name: str | None = None, today: date | None = None) -> ImportResult:
    """Validate ``path`` and store it as ``import_dir/<name>.yaml``; ConfigError names any problem."""
    data = read_document(path)
    stamp = (today or date.today()).isoformat()
    skipped: Counter[str] = Counter()
    if is_litellm_map(data):
        converted = convert(data, str(path))
        document: dict[str, Any] = {
            "format": FORMAT,
            "source": f"litellm-import {path.name} {stamp}",
            "attribution": f"converted from LiteLLM-format map {path} on {stamp}",
            "models": converted.entries,
        }
        kind, skipped = "litellm", converted.skipped
    elif isinstance(data, dict) and "models" in data:
        document = {**data, "source": data.get("source") or f"import:{path.name} {stamp}"}
        kind = "costspan"
    else:
        raise ConfigError(str(path), "(top level)", "neither a LiteLLM price map nor a costspan price file")
    table = parse_table(document, str(path), document["source"])
    if not table.entries:
        raise ConfigError(str(path), "(file)", "no usable price entries")
    stem = name or re.sub(r"[^A-Za-z0-9_.-]+", "-", path.stem)
    import_dir.mkdir(parents=True, exist_ok=True)
    stored = import_dir / f"{stem}.yaml"
    header = f"# Imported by `costspan prices import {path}` on {stamp}. Edit with care; re-import to refresh.\n"
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=None, width=120)
    temporary = stored.with_suffix(".yaml.tmp")
    temporary.write_text(header + text, encoding="utf-8")
    temporary.replace(stored)  # running processes never read a half-written file
    return ImportResult(stored, kind, len(table.entries), skipped)
