"""Masking throughput and provenance signing/verification time (issue 7, "Performance").

Masking: 100 MB of step output (80-character lines of log-like text, fed in 64 KiB
chunks, as an executor delivers them) through the runner's `OutputProcessor` with 20
registered secrets, against the same output with none. Target: >= 50 MB/s with secrets,
and within 1.5x of the time without.

Provenance: build, sign (Ed25519, DSSE) and verify the statement of a one-file artifact,
median per artifact over many.

    .venv/bin/python benchmarks/security.py [--megabytes 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shipline.runner.commands import OutputProcessor
from shipline.security.masking import Masker
from shipline.security.provenance import (
    BUILDER_EMBEDDED_SHELL,
    BuildFacts,
    Expectations,
    Subject,
    sign_statement,
    statement,
    verify,
)

CHUNK = 64 * 1024


def output(megabytes: int) -> list[bytes]:
    rng = random.Random(7)
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(500)]
    lines = []
    for i in range(2000):
        line = f"[{i:05d}] " + " ".join(rng.choices(words, k=12))
        lines.append(line[:79] + "\n")
    block = "".join(lines).encode()
    data = block * (megabytes * 1024 * 1024 // len(block) + 1)
    data = data[: megabytes * 1024 * 1024]
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


def mask_seconds(chunks: list[bytes], secrets: list[str]) -> float:
    emitted = [0]

    def emit(lines: list[str]) -> None:
        emitted[0] += len(lines)

    processor = OutputProcessor(Masker(secrets), emit)
    start = time.perf_counter()
    for chunk in chunks:
        processor.feed(chunk)
    processor.close()
    return time.perf_counter() - start


def provenance_times(count: int) -> tuple[float, float]:
    key = Ed25519PrivateKey.generate()
    facts = BuildFacts(
        repository="https://git.example/team/app",
        ref="refs/heads/main",
        commit="a" * 40,
        pipeline_path=".shipline/workflows/ci.yml",
        job="build",
        inputs={},
        builder_id=BUILDER_EMBEDDED_SHELL,
        invocation_id="urn:shipline:run:1:attempt:1:job:build",
        started_on="2026-01-01T12:00:00Z",
        finished_on="2026-01-01T12:00:10Z",
    )
    signs, verifies = [], []
    for i in range(count):
        digest = hashlib.sha256(str(i).encode()).hexdigest()
        t0 = time.perf_counter()
        env = sign_statement(statement([Subject("dist/app", digest)], facts), key)
        t1 = time.perf_counter()
        verify(digest, env, [key.public_key()], Expectations())
        t2 = time.perf_counter()
        signs.append(t1 - t0)
        verifies.append(t2 - t1)
    return statistics.median(signs), statistics.median(verifies)


def end_to_end(megabytes: int, repeat: int) -> tuple[float, float]:
    """`shipline run` of one step printing `megabytes` MB, without and with 20 secrets
    the job references (medians of `repeat`, interleaved)."""
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        (repo / ".shipline" / "workflows").mkdir(parents=True)
        env = "\n".join(f"      S{i}: ${{{{ secrets.S{i} }}}}" for i in range(20))
        size = megabytes * 1024 * 1024 // 80
        (repo / ".shipline" / "workflows" / "p.yml").write_text(
            "on: push\njobs:\n  print:\n    runs-on: x\n    env:\n"
            + env
            + '\n    steps:\n      - run: python3 -c "import sys; '
            + f"sys.stdout.write((('log line ' * 9)[:79] + chr(10)) * {size})\"\n"
        )
        secrets = Path(tmp) / "secrets.env"
        secrets.write_text("".join(f"S{i}={os.urandom(12).hex()}/{i}+x\n" for i in range(20)))
        for args in (["init", "-q", "-b", "main"], ["add", "-A"]):
            subprocess.run(["git", *args], cwd=repo, check=True)
        subprocess.run(
            ["git", "-c", "user.email=b@e", "-c", "user.name=b", "commit", "-qm", "x"],
            cwd=repo,
            check=True,
        )
        shipline = str(Path(sys.executable).with_name("shipline"))
        plain, masked = [], []
        for _ in range(repeat):
            for extra, times in (([], plain), (["--secrets-file", str(secrets)], masked)):
                with open(Path(tmp) / "out", "wb") as out:
                    start = time.perf_counter()
                    subprocess.run([shipline, "run", *extra], cwd=repo, stdout=out, check=True)
                    times.append(time.perf_counter() - start)
        return statistics.median(plain), statistics.median(masked)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    chunks = output(args.megabytes)
    secrets = [os.urandom(12).hex() + f"/{i}+x" for i in range(20)]
    plain = statistics.median(mask_seconds(chunks, []) for _ in range(args.repeat))
    masked = statistics.median(mask_seconds(chunks, secrets) for _ in range(args.repeat))
    rate = args.megabytes / masked
    ratio = masked / plain
    print(f"output {args.megabytes} MB, 20 secrets: {masked:.2f} s = {rate:.1f} MB/s")
    print(
        f"output {args.megabytes} MB, no secrets: {plain:.2f} s = {args.megabytes / plain:.1f} MB/s"
    )
    print(
        f"ratio with/without secrets: {ratio:.2f}x (target <= 1.5x, >= 50 MB/s): "
        + ("target met" if rate >= 50 and ratio <= 1.5 else "MISSED")
    )
    plain_run, masked_run = end_to_end(args.megabytes, args.repeat)
    print(
        f"shipline run, one step printing {args.megabytes} MB: {plain_run:.2f} s without "
        f"secrets, {masked_run:.2f} s with 20 ({args.megabytes / masked_run:.1f} MB/s, "
        f"{masked_run / plain_run:.2f}x)"
    )
    sign, check = provenance_times(500)
    print(
        f"provenance per artifact: sign {sign * 1e3:.3f} ms, "
        f"verify {check * 1e3:.3f} ms (median of 500)"
    )


if __name__ == "__main__":
    main()
