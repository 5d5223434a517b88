"""Write the config reference (every top-level key and every registered component with its
arguments) generated from the schema and the registries:

    python tools/config_reference.py [--out docs/configs.md] [--missing]

``--missing`` prints, per component, the arguments no docstring explains (their meaning
cells are empty in the reference) instead of writing the file.
"""
from pathlib import Path

from segq.cli import build_parser, run_cli, set_default_threads

set_default_threads()


def main(argv=None):
    p = build_parser(__doc__, (), config=False)
    p.add_argument("--out", default="docs/configs.md", help="the Markdown file to write")
    p.add_argument("--missing", action="store_true",
                   help="list the arguments without a documented meaning; write nothing")
    args = p.parse_args(argv)
    from segq.config.reference import missing_meanings, render

    if args.missing:
        missing = missing_meanings()
        for component, names in missing.items():
            print(f"{component}: {', '.join(names)}")
        print(f"{sum(map(len, missing.values()))} argument(s) in {len(missing)} component(s) "
              f"have no documented meaning")
        return
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(), encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
