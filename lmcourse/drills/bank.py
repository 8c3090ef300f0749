"""The question bank: YAML files of bilingual interview questions, checked when they load.

Every file in ``lmcourse/drills/bank/`` holds ``questions:``, a list of
questions. Each question is a mapping with these fields (``{en, zh}`` is a
mapping with an English and a Chinese text, both non-empty):

``id``           unique, lower case letters, digits and ``-``
``lesson``       the lesson it drills: one of ``LESSONS`` ("00" ... "12", "07b", "07c")
``tags``         a list of lower-case tags; ``seed`` marks the seed articles' questions
``difficulty``   ``easy``, ``medium`` or ``hard``
``kind``         ``choice``, ``numeric``, ``short`` or ``code``
``question``     ``{en, zh}``
``answer``       ``{en, zh}``: the full, correct answer
``explanation``  ``{en, zh}``: why, and (for ``choice``) why the other options are wrong
``reference``    a paper or a lesson section, e.g. "Lesson 06, the KV cache; Pope et al. 2022"
``short``        ``{en, zh}``: the "30-second" version; required for ``seed`` questions

and by kind:

``choice``   ``choices``: 2-6 ``{en, zh}`` options; ``correct``: the index (from 0) of the right one
``numeric``  ``numeric``: ``formula`` (arithmetic over ``values``: + - * / ** // %, parentheses,
             numbers, the names in ``values`` and log, log2, exp, sqrt of one argument),
             ``values`` (name -> number), ``unit`` (``{en, zh}``), optional ``rel_tol``
             (default 0.02), and ``package``: a Python expression over the same names that
             computes the answer with the course's package (the test suite checks that it
             equals ``formula``). Texts may use ``{name}`` and ``{result}`` with a format spec
             (``{n_params:,}``); every value must appear in both question texts.
``code``     ``code``: ``exercise`` (a registered check's id), ``function`` (the name the snippet
             defines), ``broken`` (a snippet with one bug) and ``fixed`` (the same snippet,
             mended). The learner's fix is graded by the exercise's check; the test suite checks
             that ``broken`` fails it and ``fixed`` passes.

``load_questions()`` reads the shipped bank; a broken file raises ``BankError``
naming the file, the question and the field.
"""
from __future__ import annotations

import ast
import math
import operator
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

BANK_DIR = Path(__file__).parent / "bank"

LANGUAGES = ("en", "zh")
KINDS = ("choice", "numeric", "short", "code")
DIFFICULTIES = ("easy", "medium", "hard")
# The lessons, as their notebooks are numbered (notebooks/NN_topic.ipynb).
LESSONS = {
    "00": "welcome and setup", "01": "language modelling basics",
    "02": "data and tokenization", "03": "recurrent networks", "04": "LSTM and GRU",
    "05": "training language models", "06": "attention and Transformers",
    "07": "training larger models", "07b": "augmentation and compression",
    "07c": "transfer learning and privacy", "08": "scaling laws", "09": "evaluation",
    "10": "multimodal: LiT", "11": "frontiers", "12": "interview drills",
}
REQUIRED = ("id", "lesson", "tags", "difficulty", "kind", "question", "answer", "explanation",
            "reference")
OPTIONAL = ("short", "choices", "correct", "numeric", "code")
_KIND_FIELDS = {"choice": ("choices", "correct"), "numeric": ("numeric",), "code": ("code",),
                "short": ()}
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_TAG = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class BankError(ValueError):
    """A question file that does not follow the schema: the message names where."""


@dataclass(frozen=True)
class Numeric:
    formula: str
    values: dict[str, float]
    unit: dict[str, str]
    package: str
    rel_tol: float = 0.02

    @property
    def result(self) -> float:
        return evaluate_formula(self.formula, self.values)


@dataclass(frozen=True)
class Code:
    exercise: str
    function: str
    broken: str
    fixed: str


@dataclass(frozen=True)
class Question:
    id: str
    lesson: str
    tags: tuple[str, ...]
    difficulty: str
    kind: str
    question: dict[str, str]
    answer: dict[str, str]
    explanation: dict[str, str]
    reference: str
    short: dict[str, str] | None = None
    choices: tuple[dict[str, str], ...] = ()
    correct: int | None = None
    numeric: Numeric | None = None
    code: Code | None = None
    source: str = field(default="", compare=False)  # the file it came from

    def text(self, name: str, language: str = "en") -> str:
        """The field ``name`` ("question", "answer", "short", "explanation") in ``language``;
        numeric items have their values (and ``{result}``) filled in."""
        language = check_language(language)
        texts = getattr(self, name)
        if texts is None:
            return ""
        text = texts[language]
        if self.numeric is not None:
            text = text.format(**self.numeric.values, result=self.numeric.result)
        return text

    def choice_texts(self, language: str = "en") -> list[str]:
        language = check_language(language)
        return [c[language] for c in self.choices]

    @property
    def auto_graded(self) -> bool:
        """Whether a program can mark the answer (everything but short answers)."""
        return self.kind != "short"


def check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, got {language!r}")
    return language


# ---- safe arithmetic for numeric items --------------------------------------------------------

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
           ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
# One-argument functions a formula may call: enough for perplexity, bits and brevity penalties.
_FUNCTIONS = {"log": math.log, "log2": math.log2, "exp": math.exp, "sqrt": math.sqrt}


def evaluate_formula(formula: str, values: dict[str, float]) -> float:
    """The value of an arithmetic ``formula`` over ``values``; nothing but arithmetic runs.

    ``+ - * / // % **``, numbers, the names in ``values`` and the calls ``log`` (natural),
    ``log2``, ``exp`` and ``sqrt`` of one argument.
    """
    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in values:
                raise ValueError(f"unknown name {node.id!r} (values has {sorted(values)})")
            return values[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](walk(node.operand))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in _FUNCTIONS and len(node.args) == 1 and not node.keywords):
            return _FUNCTIONS[node.func.id](walk(node.args[0]))
        raise ValueError(f"only arithmetic is allowed, found {ast.dump(node)[:60]}")

    try:
        tree = ast.parse(formula, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"not a formula: {exc.msg}") from None
    return float(walk(tree))


# ---- loading and validating ---------------------------------------------------------------------

class _Where:
    def __init__(self, source: str, qid: str):
        self.source, self.qid = source, qid

    def fail(self, fieldname: str, expected: str, got: Any = None, *, show: bool = True):
        shown = f", got {got!r}"[:120] if show else ""
        raise BankError(f"{self.source}: question {self.qid!r}, field {fieldname!r}: "
                        f"expected {expected}{shown}")


def _texts(where: _Where, name: str, value: Any, chinese: bool = True) -> dict[str, str]:
    """``{en, zh}``; ``chinese``: the zh text must contain Chinese (not for options like "V")."""
    if not isinstance(value, dict) or set(value) != set(LANGUAGES):
        where.fail(name, "a mapping with exactly the keys 'en' and 'zh'", value)
    for lang in LANGUAGES:
        if not isinstance(value[lang], str) or not value[lang].strip():
            where.fail(f"{name}.{lang}", "a non-empty string", value[lang])
    if chinese and not re.search(r"[\u4e00-\u9fff]", value["zh"]):
        where.fail(f"{name}.zh", "Chinese text (no Chinese characters found)", value["zh"])
    return {lang: value[lang].strip() for lang in LANGUAGES}


def _numeric(where: _Where, raw: Any) -> Numeric:
    if not isinstance(raw, dict):
        where.fail("numeric", "a mapping with formula, values, unit and package", raw)
    allowed = {"formula", "values", "unit", "package", "rel_tol"}
    for key in raw:
        if key not in allowed:
            where.fail(f"numeric.{key}", f"one of the fields {sorted(allowed)}", key)
    for key in ("formula", "package"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            where.fail(f"numeric.{key}", "a non-empty string", raw.get(key))
    values = raw.get("values")
    if not isinstance(values, dict) or not values:
        where.fail("numeric.values", "a non-empty mapping of names to numbers", values)
    for name, v in values.items():
        if not (isinstance(name, str) and name.isidentifier()) or name == "result":
            where.fail("numeric.values", "Python identifiers other than 'result' as names", name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            where.fail(f"numeric.values.{name}", "a finite number", v)
    rel_tol = raw.get("rel_tol", 0.02)
    if isinstance(rel_tol, bool) or not isinstance(rel_tol, (int, float)) or not 0 < rel_tol < 1:
        where.fail("numeric.rel_tol", "a number between 0 and 1", rel_tol)
    numeric = Numeric(formula=raw["formula"], values=dict(values),
                      unit=_texts(where, "numeric.unit", raw.get("unit"), chinese=False),
                      package=raw["package"], rel_tol=float(rel_tol))
    try:
        result = numeric.result
    except (ValueError, ZeroDivisionError, OverflowError) as exc:
        where.fail("numeric.formula", f"arithmetic over the values ({exc})", raw["formula"])
    if not math.isfinite(result):
        where.fail("numeric.formula", "a finite result", result)
    return numeric


def _code(where: _Where, raw: Any) -> Code:
    if not isinstance(raw, dict) or set(raw) != {"exercise", "function", "broken", "fixed"}:
        where.fail("code", "a mapping with exactly exercise, function, broken and fixed",
                   sorted(raw) if isinstance(raw, dict) else raw)
    for key in raw:
        if not isinstance(raw[key], str) or not raw[key].strip():
            where.fail(f"code.{key}", "a non-empty string", raw[key])
    for key in ("broken", "fixed"):
        try:
            ast.parse(raw[key])
        except SyntaxError as exc:
            where.fail(f"code.{key}", f"valid Python ({exc.msg}, line {exc.lineno})", None,
                       show=False)
        if not re.search(rf"^def {re.escape(raw['function'])}\(", raw[key], re.M):
            where.fail(f"code.{key}", f"a snippet that defines {raw['function']}()", None,
                       show=False)
    if raw["broken"].strip() == raw["fixed"].strip():
        where.fail("code.fixed", "a snippet different from code.broken", None, show=False)
    return Code(**{k: raw[k].rstrip() + "\n" for k in ("broken", "fixed")},
                exercise=raw["exercise"], function=raw["function"])


def _fields_used(text: str) -> set[str]:
    return {name.split(".")[0].split("[")[0]
            for _, name, _, _ in string.Formatter().parse(text) if name}


def parse_question(raw: Any, source: str) -> Question:
    """One question from its mapping in a bank file; ``BankError`` says what is wrong."""
    qid = raw.get("id") if isinstance(raw, dict) else None
    where = _Where(source, qid if isinstance(qid, str) else "?")
    if not isinstance(raw, dict):
        where.fail("(question)", "a mapping of fields", raw)
    for key in raw:
        if key not in REQUIRED + OPTIONAL:
            where.fail(key, f"one of the fields {', '.join(REQUIRED + OPTIONAL)}", key)
    for key in REQUIRED:
        if key not in raw:
            where.fail(key, "this field (it is required)", None, show=False)
    if not isinstance(qid, str) or not _ID.match(qid):
        where.fail("id", "lower-case letters, digits and '-'", qid)
    if raw["lesson"] not in LESSONS:
        where.fail("lesson", f"one of {', '.join(LESSONS)} (as a quoted string)", raw["lesson"])
    tags = raw["tags"]
    if not isinstance(tags, list) or not tags or not all(
            isinstance(t, str) and _TAG.match(t) for t in tags):
        where.fail("tags", "a non-empty list of lower-case tags", tags)
    if len(set(tags)) != len(tags):
        where.fail("tags", "no tag twice", tags)
    if raw["difficulty"] not in DIFFICULTIES:
        where.fail("difficulty", f"one of {', '.join(DIFFICULTIES)}", raw["difficulty"])
    kind = raw["kind"]
    if kind not in KINDS:
        where.fail("kind", f"one of {', '.join(KINDS)}", kind)
    for other, needs in _KIND_FIELDS.items():
        for key in needs:
            if other != kind and key in raw:
                where.fail(key, f"no {key!r} on a {kind} question (only on {other})", None,
                           show=False)
            if other == kind and key not in raw:
                where.fail(key, f"this field (a {kind} question needs it)", None, show=False)
    if not isinstance(raw["reference"], str) or not raw["reference"].strip():
        where.fail("reference", "a non-empty string (a paper or a lesson section)",
                   raw["reference"])
    texts = {name: _texts(where, name, raw[name]) for name in ("question", "answer", "explanation")}
    short = _texts(where, "short", raw["short"]) if "short" in raw else None
    if "seed" in tags and short is None:
        where.fail("short", "a 30-second answer (every seed question has one)", None, show=False)
    choices: tuple[dict[str, str], ...] = ()
    correct = None
    if kind == "choice":
        if not isinstance(raw["choices"], list) or not 2 <= len(raw["choices"]) <= 6:
            where.fail("choices", "a list of 2 to 6 options", raw["choices"])
        choices = tuple(_texts(where, f"choices[{i}]", c, chinese=False) for i, c in enumerate(raw["choices"]))
        if len({c["en"] for c in choices}) != len(choices):
            where.fail("choices", "different options", [c["en"] for c in choices])
        correct = raw["correct"]
        if isinstance(correct, bool) or not isinstance(correct, int) or not (
                0 <= correct < len(choices)):
            where.fail("correct", f"an index from 0 to {len(choices) - 1}", correct)
    numeric = _numeric(where, raw["numeric"]) if kind == "numeric" else None
    code = _code(where, raw["code"]) if kind == "code" else None
    if numeric is not None:
        allowed = set(numeric.values) | {"result"}
        for name in ("question", "answer", "explanation") + (("short",) if short else ()):
            for lang in LANGUAGES:
                text = (short if name == "short" else texts[name])[lang]
                try:
                    used = _fields_used(text)
                    text.format(**numeric.values, result=numeric.result)
                except (ValueError, KeyError, IndexError) as exc:
                    where.fail(f"{name}.{lang}", "text whose {placeholders} are values or "
                               f"result (write {{{{ for a brace): {exc}", None, show=False)
                if used - allowed:
                    where.fail(f"{name}.{lang}", f"placeholders among {sorted(allowed)}",
                               sorted(used - allowed))
        for lang in LANGUAGES:
            missing = set(numeric.values) - _fields_used(texts["question"][lang])
            if missing:
                where.fail(f"question.{lang}", "every value as a {placeholder} in the question",
                           sorted(missing))
    return Question(id=qid, lesson=raw["lesson"], tags=tuple(tags),
                    difficulty=raw["difficulty"], kind=kind, reference=raw["reference"].strip(),
                    short=short, choices=choices, correct=correct, numeric=numeric, code=code,
                    source=source, **texts)


def load_file(path: str | Path) -> list[Question]:
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise BankError(f"{path.name}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or set(data) != {"questions"} or not isinstance(
            data["questions"], list):
        raise BankError(f"{path.name}: expected a mapping with one key, 'questions', holding a "
                        "list of questions")
    return [parse_question(raw, path.name) for raw in data["questions"]]


def load_questions(paths: Iterable[str | Path] | None = None) -> list[Question]:
    """Every question of the bank (the shipped files, or ``paths``), in file order.

    Raises ``BankError`` naming the file, question and field of the first problem,
    including an id used twice.
    """
    files = sorted(BANK_DIR.glob("*.yaml")) if paths is None else [Path(p) for p in paths]
    if not files:
        raise BankError(f"no question files found (looked for {BANK_DIR}/*.yaml)")
    questions: list[Question] = []
    seen: dict[str, str] = {}
    for path in files:
        for q in load_file(path):
            if q.id in seen:
                raise BankError(f"{q.source}: question {q.id!r}, field 'id': expected a unique "
                                f"id, but {seen[q.id]} uses it too")
            seen[q.id] = q.source
            questions.append(q)
    return questions


def select(questions: Iterable[Question], *, lessons: Iterable[str] | None = None,
           tags: Iterable[str] | None = None, difficulties: Iterable[str] | None = None,
           kinds: Iterable[str] | None = None) -> list[Question]:
    """The questions that match every filter given (a question matches ``tags`` if it has any)."""
    def chosen(values, allowed, name):
        if values is None:
            return None
        values = {values} if isinstance(values, str) else set(values)
        unknown = values - set(allowed) if allowed is not None else set()
        if unknown:
            raise ValueError(f"unknown {name} {sorted(unknown)}: expected some of "
                             f"{', '.join(allowed)}")
        return values

    questions = list(questions)
    lessons = chosen(lessons, LESSONS, "lesson")
    difficulties = chosen(difficulties, DIFFICULTIES, "difficulty")
    kinds = chosen(kinds, KINDS, "kind")
    tags = chosen(tags, sorted({t for q in questions for t in q.tags}), "tag")
    return [q for q in questions
            if (lessons is None or q.lesson in lessons)
            and (tags is None or tags & set(q.tags))
            and (difficulties is None or q.difficulty in difficulties)
            and (kinds is None or q.kind in kinds)]


def main(argv: list[str] | None = None) -> int:
    """``python -m lmcourse.drills [FILES]``: validate the bank and count it."""
    import collections
    import sys

    argv = sys.argv[1:] if argv is None else argv
    try:
        questions = load_questions(argv or None)
    except BankError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{len(questions)} questions, all valid")
    for name in ("lesson", "kind", "difficulty"):
        counts = collections.Counter(getattr(q, name) for q in questions)
        print(f"  by {name}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print(f"  seed: {sum('seed' in q.tags for q in questions)}")
    return 0



def package_value(question: Question) -> float:
    """What the course's package computes for a numeric item (its ``numeric.package``).

    The expression sees the item's values and ``math``, ``torch``, ``nn``, ``lmcourse``, the
    modules ``memory``, ``scaling``, ``metrics``, ``compress``, ``models``, ``speed``,
    ``privacy``, ``tokenizers``, ``cleaning``, ``statistics`` (``lmcourse.data.*``) and
    ``lora`` (``lmcourse.models.lora``), and ``GPT``, ``GPTConfig``. The bank is the course's
    own file, so this runs it as Python; the test suite checks it equals ``numeric.result``.
    """
    import importlib

    import torch

    if question.numeric is None:
        raise ValueError(f"question {question.id!r} is not numeric")
    names: dict[str, Any] = {"math": math, "torch": torch, "nn": torch.nn}
    for name in ("memory", "scaling", "metrics", "compress", "models", "speed", "privacy",
                 "data.tokenizers", "data.cleaning", "data.statistics", "models.lora"):
        names[name.rpartition(".")[2]] = importlib.import_module(f"lmcourse.{name}")
    from lmcourse.models.gpt import GPT, GPTConfig

    names.update(GPT=GPT, GPTConfig=GPTConfig, lmcourse=importlib.import_module("lmcourse"))
    names.update(question.numeric.values)
    return float(eval(question.numeric.package, names))  # noqa: S307 - the course's own data
