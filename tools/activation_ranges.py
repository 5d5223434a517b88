"""Which sublayers' outputs on full val frames exceed their range on train crops (what fake
quant, with scales observed on train crops, would clip), largest ratio first:
python tools/activation_ranges.py --config C --model_path P [--layers 'head.*'] \
    [--train_batches 2] [--val_images 4] [--top 20]"""
from segq.cli import build_parser, config_opts, run_cli, set_default_threads

set_default_threads()


def main(argv=None):
    p = build_parser(__doc__, ())
    p.add_argument("--layers", nargs="+", default=["*"], help="globs over sublayer names")
    p.add_argument("--train_batches", type=int, default=2, help="train batches (augmented crops)")
    p.add_argument("--val_images", type=int, default=4, help="full val frames")
    p.add_argument("--top", type=int, default=20, help="rows to print")
    args = p.parse_args(argv)
    import itertools

    import paddle

    from segq import builders
    from segq.builders import build_model_for
    from segq.config import load_config
    from segq.data.loader import build_eval_loader, build_train_loader
    from segq.quant.ranges import range_rows, ranges_markdown

    cfg = load_config(args.config, config_opts(args))
    model = build_model_for(cfg, args.model_path)
    train = build_train_loader(builders.build_dataset(cfg.train_dataset, "train_dataset"),
                               cfg.batch_size, args.num_workers, args.seed)
    val = build_eval_loader(builders.build_dataset(cfg.val_dataset, "val_dataset"))
    rows = range_rows(model, (img for img, _ in itertools.islice(train, args.train_batches)),
                      (paddle.to_tensor(s["img"][None])
                       for s in itertools.islice(val, args.val_images)), args.layers)
    print(ranges_markdown(rows, args.top))


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
