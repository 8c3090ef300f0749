"""The course's commands: ``python -m lmcourse COMMAND ...``.

    python -m lmcourse grade SUBMISSIONS... --gradebook gradebook.csv
    python -m lmcourse exercises solutions exercises [--check]
    python -m lmcourse drill [--lesson 06] [--mock] [--lang zh] ...
    python -m lmcourse drill-class make|grade ...

``grade`` runs a class's notebooks in a sandbox and writes the grade book
(``lmcourse.grading.grade``); ``exercises`` makes the learners' notebooks
from the solutions (``lmcourse.grading.make_exercises``); ``drill`` asks
interview questions in the terminal (``lmcourse.drills.terminal``).
"""
from __future__ import annotations

import sys

COMMANDS = {
    "grade": "grade a class's exercise notebooks into a CSV grade book",
    "exercises": "make exercises/ from solutions/",
    "drill": "practise interview questions in the terminal (spaced repetition, mock interviews)",
    "drill-class": "class mode for the drills: make a question set, grade results files",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        lines = [f"  {name:10s} {what}" for name, what in COMMANDS.items()]
        print("usage: python -m lmcourse COMMAND [options]\n\ncommands:\n" + "\n".join(lines)
              + "\n\n'python -m lmcourse COMMAND --help' explains each.")
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nerror: unknown command {argv[0]!r}", file=sys.stderr)
            return 2
        return 0
    command, rest = argv[0], argv[1:]
    if command == "drill-class":
        from lmcourse.drills.classroom import main as classroom_main

        return classroom_main(rest)
    if command == "grade":
        from lmcourse.grading.grade import main as grade_main

        return grade_main(rest)
    if command == "drill":
        from lmcourse.drills.terminal import main as drill_main

        return drill_main(rest)
    from lmcourse.grading.make_exercises import main as exercises_main

    return exercises_main(rest)


if __name__ == "__main__":
    sys.exit(main())
