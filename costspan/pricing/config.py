"""The ``pricing:`` section of the settings.

```yaml
pricing:
  files: [./my-prices.yaml]        # costspan price files; they override every catalog
  aliases:                         # model names as spans carry them -> the model to price
    prod-chat: gpt-4o-mini         # e.g. an Azure deployment name
  import_dir: /var/lib/costspan/prices   # where `costspan prices import` stores maps
  snapshot: true                   # the bundled LiteLLM-derived fallback (default true)
```
Relative paths are relative to the settings file. Imported maps live in ``import_dir``, by
default ``$XDG_STATE_HOME/costspan/prices`` (``~/.local/state/costspan/prices``): the command line
writes there and every process that prices calls reads it at start, so an import needs no
configuration change.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from costspan.errors import ConfigError, check_keys
from costspan.settings import ENV_SOURCE, Settings, default_state_dir

_KEYS = {"files", "aliases", "import_dir", "snapshot"}


@dataclass(frozen=True)
class PricingConfig:
    files: tuple[Path, ...] = ()
    aliases: Mapping[str, str] = field(default_factory=dict)
    import_dir: Path = field(default_factory=lambda: default_state_dir(os.environ) / "prices")
    snapshot: bool = True


def pricing_config(settings: Settings) -> PricingConfig:
    source = settings.source
    section = settings.section("pricing") or {}
    if not isinstance(section, Mapping):
        raise ConfigError(source, "pricing", "expected a mapping")
    check_keys(source, "pricing", section, _KEYS)
    base = Path(source).parent if source != ENV_SOURCE else Path.cwd()

    files_raw = section.get("files") or []
    if isinstance(files_raw, str):
        files_raw = [files_raw]
    if not isinstance(files_raw, list) or not all(isinstance(f, str) and f for f in files_raw):
        raise ConfigError(source, "pricing.files", f"expected a list of file paths, got {files_raw!r}")
    files = tuple(base / Path(f).expanduser() for f in files_raw)

    aliases_raw = section.get("aliases") or {}
    if not isinstance(aliases_raw, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in aliases_raw.items()
    ):
        raise ConfigError(source, "pricing.aliases", "expected a mapping of model name to model name")
    aliases = {k.strip().lower(): v.strip() for k, v in aliases_raw.items()}

    import_dir = PricingConfig().import_dir
    if section.get("import_dir") is not None:
        if not isinstance(section["import_dir"], str) or not section["import_dir"]:
            raise ConfigError(source, "pricing.import_dir", f"expected a directory path, got {section['import_dir']!r}")
        import_dir = base / Path(section["import_dir"]).expanduser()

    snapshot = section.get("snapshot", True)
    if not isinstance(snapshot, bool):
        raise ConfigError(source, "pricing.snapshot", f"expected true or false, got {snapshot!r}")
    return PricingConfig(files, aliases, import_dir, snapshot)
