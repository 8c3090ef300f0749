"""Make the learner's exercise notebooks from the solution notebooks.

    python -m lmcourse.grading.make_exercises solutions exercises
    python -m lmcourse.grading.make_exercises solutions exercises --check

The first form (``make exercises``) writes ``exercises/NAME.ipynb`` for every
``solutions/NAME.ipynb``. With ``--check`` nothing is written: the command
exits with status 1 and lists the differences if the committed exercises are
not exactly what a fresh generation would give (edited by hand, or stale).
"""
from __future__ import annotations

import argparse
import sys

from lmcourse.grading.notebooks import MarkerError, exercise_differences, make_exercises


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lmcourse.grading.make_exercises",
        description="Make exercise notebooks from solution notebooks.")
    parser.add_argument("solutions", help="folder of solution notebooks")
    parser.add_argument("exercises", help="folder to write the exercise notebooks to")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; fail if the exercises are out of date")
    args = parser.parse_args(argv)
    try:
        if args.check:
            problems = exercise_differences(args.solutions, args.exercises)
            for problem in problems:
                print(problem)
            if problems:
                print(f"run: python -m lmcourse.grading.make_exercises "
                      f"{args.solutions} {args.exercises}")
                return 1
            print(f"{args.exercises} is up to date with {args.solutions}")
            return 0
        for path in make_exercises(args.solutions, args.exercises):
            print(f"wrote {path}")
        return 0
    except (MarkerError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
