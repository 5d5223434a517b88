"""Regenerate the summary table at the top of docs/results.md from the run files that
docs/results/index.yml lists (JSON written by tools/compare_int8.py and tools/ptq_study.py
with --result_json), each under the label the index gives it:
python tools/results_summary.py [--page docs/results.md] [--index docs/results/index.yml]
    [--check]  (exit 1 if the page's table is not what the run files give)"""
from segq.cli import build_parser, run_cli, set_default_threads

set_default_threads()


def main(argv=None):
    p = build_parser(__doc__, (), config=False)
    p.add_argument("--page", default="docs/results.md")
    p.add_argument("--index", default=None,
                   help="default: results/index.yml beside the page")
    p.add_argument("--check", action="store_true", help="compare only; write nothing")
    args = p.parse_args(argv)
    from pathlib import Path

    from segq.bench.results_summary import (read_index, replace_summary, summary_markdown,
                                            summary_rows)

    page = Path(args.page)
    runs = read_index(args.index or page.parent / "results" / "index.yml")
    text = replace_summary(page.read_text(), summary_markdown(summary_rows(runs)))
    if args.check:
        if text != page.read_text():
            raise SystemExit(f"{page}: the summary table is stale: run "
                             f"python tools/results_summary.py")
        return
    page.write_text(text)
    print(f"wrote the summary of {len(runs)} run(s) into {page}")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
