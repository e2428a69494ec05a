"""Run every side-by-side benchmark and write one markdown table: ours vs peer, with the ratio.

    python benchmarks/compare_all.py -o comparisons.md            # the full runs (long)
    python benchmarks/compare_all.py --quick -o comparisons.md    # small inputs, a few minutes
    python benchmarks/compare_all.py --only read_midi sample_speed

Each script runs in its own process (``sys.executable``) from the repository root; its lines
that state a ratio (they say "ratio", or end with ``<number>x``) are collected: the table gives the
ratio of each such line, the full lines follow in a details section, and a script that fails or times out
is listed with its last error line, so a release shows every comparison or says why it is missing.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


@dataclass(frozen=True)
class Comparison:
    script: str
    what: str
    peer: str
    quick_args: tuple[str, ...] = ()
    full_args: tuple[str, ...] = ()


COMPARISONS = (
    Comparison("read_midi", "MIDI files -> note tables, files/s", "pretty_midi, mido"),
    Comparison("abc_acceptance", "ABC tokenizer over music21's ABC corpus, tunes/s", "music21 ABCHandler",
               ("--peer-tunes", "50", "--top", "5")),
    Comparison("convert_abc", "ABC -> MIDI conversion, tunes/s", "music21 converter", ("--tunes", "30")),
    Comparison("startup", "whole process `ostinato compose -o t.abc`, seconds", 'python -c "import torch"',
               ("--runs", "1")),
    Comparison("convert_tokens", "convert --to tokens, files/s", "miditok tokenize_dataset", ("--rounds", "1")),
    Comparison("sample_speed", "KV-cached constrained sampling, tokens/s", "transformers generate()",
               ("-n", "4", "--tokens", "64", "--repeats", "1")),
    Comparison("abc_grammar_speed", "ABC grammar allowed()+advance(), us per token", "torch softmax + multinomial",
               ("--tunes", "50", "--walks", "4")),
    Comparison("midi_grammar_speed", "MIDI grammar allowed()+advance(), us per token", "a masked torch draw",
               ("--walks", "2", "--bars", "8", "--chorales", "4")),
    Comparison("render_speed", "rendering, real-time factor", "FluidSynth", ("--pieces", "2")),
    Comparison("render_quality", "STFT distance to FluidSynth", "pretty_midi sines", ("--pieces", "2")),
    Comparison("train_speed", "training step, bfloat16 autocast, tokens/s", "the same step in float32",
               ("--steps", "2", "--model", "folk-abc")),
    Comparison("abc_window", "held-out ABC tokens past the context as the sampler feeds them, bits per token",
               "windows sliding half a context without the header"),
    Comparison("memory_recall", "folk-abc with its memory of the training tunes: held-out bits/char, composing time",
               "its network alone", ("--tunes", "20", "--pieces", "50"), ("--originality",)),
    Comparison("train_symbolic", "held-out bits per character", "xz -9e",
               ("--steps", "30", "--config", "tiny", "--data", "music21:essenFolksong/han1.abc"),
               ("--data", "music21:abc-folk", "--model", "folk-abc")),
    Comparison("wavenet_speed", "WaveNet sampling, samples/s", "naive full re-convolution",
               ("--config", "tiny", "--samples", "200"),
               ("--config", "piano", "--samples", "100", "--naive-max-batch", "1")),
)

_NUMBER = re.compile(r"(\d+(?:\.\d+)?)\s*x?")
_TIMES = re.compile(r"(\d+(?:\.\d+)?)x\b")


def is_ratio_line(line: str) -> bool:
    """A line that states a ratio: it says "ratio", or ends a table row with a number and "x"."""
    return "ratio" in line.lower() or bool(re.search(r"\d(?:\.\d+)?x\s*$", line))


def ratio_of(line: str) -> str:
    """The ratio a line states: its last ``<number>x``, else the first number after "ratio"."""
    times = _TIMES.findall(line)
    if times:
        return times[-1]
    tail = line[line.lower().rfind("ratio"):]
    cut = re.search(r"[:=]", tail)
    found = _NUMBER.search(tail[cut.end():] if cut else tail)
    return found.group(1) if found else "-"


@dataclass
class Outcome:
    comparison: Comparison
    ok: bool
    seconds: float
    ratio_lines: list[str]
    problem: str = ""

    @property
    def ratio(self) -> str:
        """The ratio of each ratio line (as printed), or '-'."""
        return ", ".join(ratio_of(line) for line in self.ratio_lines) or "-"


def run(comparison: Comparison, *, quick: bool, timeout_s: float) -> Outcome:
    args = comparison.quick_args if quick else comparison.full_args
    command = [sys.executable, str(HERE / f"{comparison.script}.py"), *args]
    start = time.perf_counter()
    try:
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return Outcome(comparison, False, time.perf_counter() - start, [], f"timed out after {timeout_s:.0f} s")
    seconds = time.perf_counter() - start
    lines = [" ".join(line.split()) for line in result.stdout.splitlines() if is_ratio_line(line)]
    if result.returncode != 0:
        errors = [line for line in result.stderr.strip().splitlines() if line.strip()]
        return Outcome(comparison, False, seconds, lines,
                       f"exit {result.returncode}: {errors[-1] if errors else 'no message'}")
    return Outcome(comparison, True, seconds, lines, "" if lines else "printed no ratio")


def markdown(outcomes: list[Outcome], *, quick: bool) -> str:
    rows = ["| benchmark | what | peer | ratio (ours vs peer) | status | seconds |",
            "| --- | --- | --- | --- | --- | --- |"]
    for o in outcomes:
        status = "ok" if o.ok and not o.problem else (o.problem or "ok").replace("|", "\\|")
        rows.append(f"| `{o.comparison.script}.py` | {o.comparison.what} | {o.comparison.peer} | {o.ratio} | "
                    f"{status} | {o.seconds:.0f} |")
    details = ["", "## Ratio lines as printed", ""]
    for o in outcomes:
        details.append(f"- `{o.comparison.script}.py`: " + ("; ".join(f"`{line}`" for line in o.ratio_lines) or "none"))
    mode = "quick inputs (--quick)" if quick else "full inputs"
    header = [f"# Side-by-side comparisons ({mode})", "",
              "Each peer was measured in the same run on the same input (DESIGN.md, \"Measuring\"). "
              "The ratios are those of the script's ratio lines, in order; read each line below for its "
              "direction (most say ours/peer, higher is better for us).", ""]
    return "\n".join(header + rows + details) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default="comparisons.md", help="markdown file to write")
    parser.add_argument("--quick", action="store_true", help="small inputs (a few minutes in all)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these scripts (names without .py)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per script (default 3600)")
    args = parser.parse_args()
    chosen = [c for c in COMPARISONS if not args.only or c.script in args.only]
    unknown = sorted(set(args.only or ()) - {c.script for c in COMPARISONS})
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)} (known: {', '.join(c.script for c in COMPARISONS)})")
    outcomes = []
    for comparison in chosen:
        print(f"running {comparison.script}.py ...", file=sys.stderr, flush=True)
        outcome = run(comparison, quick=args.quick, timeout_s=args.timeout)
        print(f"  {outcome.ratio} ({outcome.problem or 'ok'}, {outcome.seconds:.0f} s)", file=sys.stderr)
        outcomes.append(outcome)
    text = markdown(outcomes, quick=args.quick)
    sys.path.insert(0, str(REPO))
    from ostinato.events.atomic import write_text_atomic

    write_text_atomic(args.output, text)
    print(text)
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
