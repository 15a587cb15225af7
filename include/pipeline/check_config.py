"""`make check-config`: validate every pipeline config exactly as DAG parsing does, one line per file.

    python -m include.pipeline.check_config [FOLDER]   # default: include/config or $PERSONALIZE_PIPELINE_CONFIG_DIR

Exit status 1 when any file is invalid; each error names the file and the dotted key.
"""

from __future__ import annotations

import sys

from include.pipeline.config import config_dir, load_configs_isolated


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    folder = args[0] if args else config_dir()
    loaded = load_configs_isolated(folder)
    for path in sorted([*loaded.configs, *loaded.errors]):
        if path in loaded.errors:
            print(f"INVALID {loaded.errors[path]}")
        else:
            config = loaded.configs[path]
            print(f"ok      {path}: pipeline {config.name} -> {', '.join(config.dag_ids.values())}")
    if not loaded.configs and not loaded.errors:
        print(f"no *.yaml / *.yml config files in {folder}")
    return 1 if loaded.errors else 0


if __name__ == "__main__":
    sys.exit(main())
