"""Training images/s at 1..N data-parallel CPU ranks (same batch per rank, the machine's
cores split between the ranks); prints a Markdown table, --out appends it with the command
and the machine.
python tools/dp_throughput.py --config C [--ranks 1 2] [--batch_size 4] [--iters 25]
    [--warmup 5] [--cores 2] [--out F --title T] [--opts ...]"""
from segq.cli import build_parser, run_cli, set_default_threads

set_default_threads()


def main(argv=None):
    p = build_parser(__doc__, ())
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batch_size", type=int, default=4, help="per rank")
    p.add_argument("--iters", type=int, default=25)
    p.add_argument("--warmup", type=int, default=5, help="iterations left out of the timing")
    p.add_argument("--cores", type=int, default=2, help="cores shared by the ranks")
    p.add_argument("--out", default=None, help="append the table here")
    p.add_argument("--title", default="Data-parallel training throughput")
    args = p.parse_args(argv)
    from segq.bench.data_parallel import markdown, measure
    from segq.bench.markdown import append_section, command_line
    from segq.cpu_runtime import run_environment

    rows = [measure(args.config, n, args.batch_size, args.iters, args.warmup, args.cores,
                    args.opts or []) for n in args.ranks]
    table = markdown(rows)
    print(table)
    if args.out:
        env = run_environment()
        append_section(args.out, f"### {args.title}\n\n`{command_line('tools/dp_throughput.py')}`"
                                 f"\n\nMachine: {env['cpu']}, {env['cores']} cores, paddle "
                                 f"{env['paddle']}.\n\n{table}")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
