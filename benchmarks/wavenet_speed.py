"""WaveNet sampling speed: the incremental generator (per-layer activation queues) against naive
full re-convolution, on the same model, conditioning, uniforms and number of samples.

    python benchmarks/wavenet_speed.py [--config piano|tiny|FILE] [--samples 100] [--batches 1,16]
                                       [--devices cpu,cuda] [--threads 1] [--accelerate none,cuda_graph]

Each generator starts from a silent prefix of one receptive field (as in rendering) and draws
``--samples`` samples for every row of a batch (segments are rows). Prints samples per second
(rows x samples / seconds, priming included) for each and the ratio incremental / naive; the
naive cost per sample grows with the receptive field, so the ratio does too. "After priming" is
the incremental rate without the one teacher-forced pass over the prefix that fills the queues:
the rate of a long segment (rendering generates 1 s segments, so priming is a small part there). The two must give
the same samples (they do exactly in float64: tests/test_render_wavenet.py); here the script
also reports whether they agree in float32. Weights are random (speed does not depend on them).
CUDA is measured when available (``--devices`` lists it), with each ``--accelerate`` mode for
the incremental generator.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="piano", help="wavenet config preset or JSON file (default piano)")
    parser.add_argument("--samples", type=int, default=100, help="samples drawn per row (default 100)")
    parser.add_argument("--batches", default="1,16", help="comma-separated batch sizes (segments in parallel)")
    parser.add_argument("--devices", default="cpu,cuda", help="devices to measure (cuda only when available)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--accelerate", default="none,cuda_graph",
                        help="incremental modes to time on CUDA (none, compile, cuda_graph)")
    parser.add_argument("--naive-max-batch", type=int, default=16, help="skip naive timing above this batch")
    args = parser.parse_args()

    import torch

    from ostinato.render.wavenet.config import model_config
    from ostinato.render.wavenet.generate import IncrementalGenerator, generate_naive, segment_uniforms
    from ostinato.render.wavenet.model import WaveNet, count_parameters

    torch.set_num_threads(args.threads)
    config = model_config(args.config)
    torch.manual_seed(0)
    prefix, n = config.receptive_field, args.samples
    print(f"config {args.config}: {count_parameters(WaveNet(config)):,} parameters, {config.n_layers} layers, "
          f"receptive field {prefix} samples, output {config.output}, {config.sample_rate_hz} Hz; "
          f"{n} samples per row after a {prefix}-sample silent prefix; torch {torch.__version__}, "
          f"{args.threads} CPU thread(s)")
    devices = [d for d in args.devices.split(",") if d == "cpu" or (d == "cuda" and torch.cuda.is_available())]
    summary = []
    print("| device | batch | mode | incremental samples/s | (after priming) | naive samples/s | ratio | "
          "same samples (fp32) |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | --- |")
    for device in devices:
        model = WaveNet(config).to(device).eval()
        name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
        modes = ["none"] if device == "cpu" else args.accelerate.split(",")
        for batch in (int(b) for b in args.batches.split(",")):
            condition = torch.randn(batch, config.condition_channels, prefix + n, device=device) * 0.5
            uniforms = torch.stack([segment_uniforms(0, j, n) for j in range(batch)], 1).float()

            def sync(device=device) -> None:
                if device == "cuda":
                    torch.cuda.synchronize()

            naive_rate, naive = None, None
            if batch <= args.naive_max_batch:
                sync()
                started = time.perf_counter()
                naive = generate_naive(model, condition, uniforms, prefix=prefix)
                sync()
                naive_rate = batch * n / (time.perf_counter() - started)
            for mode in modes:
                if mode == "compile":  # compile once, outside the timing
                    IncrementalGenerator(model, condition, uniforms, prefix=prefix, accelerate=mode).run()
                sync()
                started = time.perf_counter()
                generator = IncrementalGenerator(model, condition, uniforms, prefix=prefix, accelerate=mode)
                sync()
                primed = time.perf_counter()
                fast = generator.run(cpu_threads=args.threads)
                sync()
                finished = time.perf_counter()
                rate = batch * n / (finished - started)
                steady = batch * n / (finished - primed)
                ratio = f"{rate / naive_rate:.1f}" if naive_rate else "-"
                same = "-" if naive is None else ("yes" if torch.equal(naive, fast) else
                                                  f"first {int((naive != fast).any(0).float().argmax())} samples")
                naive_text = f"{naive_rate:,.0f}" if naive_rate else "-"
                print(f"| {name} | {batch} | {mode} | {rate:,.0f} | {steady:,.0f} | {naive_text} | {ratio} | {same} |",
                      flush=True)
                if naive_rate:
                    summary.append(f"incremental / naive samples per second, {name}, batch {batch}, {mode}: "
                                   f"{rate / naive_rate:.1f}x")
    print()
    for line in summary:
        print(line)


if __name__ == "__main__":
    main()
