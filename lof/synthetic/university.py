"""A synthetic university: a LEB2 database and Amplitude exports that behave like the real ones.

It serves the demo, the tests and the benchmarks. Students carry a hidden ability and
engagement that drive their page views, sessions, submission timing, spent time and levels,
so a model can learn the final level from the 13 features, though not perfectly. Like real
courses (OULAD-like: many fail or withdraw) it is messy: early withdrawers (page views for a
while, then nothing, and no submission at all), students who start well and stop, engagement
that drifts up or down during the course, page views only loosely tied to the level (quiet
students who do well, busy ones who do not), and, in the ongoing semester, grades entered days
after the submission (so a recent submission may have no assessed level yet). ``classes=1``
gives one class per semester. ``early_cases=True`` adds what makes the first weeks hard to
read (``_early_cases``): late starters, students whose activity stops in week 3, courses whose
early assessments are graded leniently and so say little, and a few extreme-activity students
per class whose page views dwarf everyone else's. Everything is deterministic from ``seed`` and
``today``. Rows are written in batches and Amplitude files hour by hour, so the size knobs can
make a large university without holding it in memory.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine, create_engine, func, inspect, select
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from lof.core.errors import DataError, SourceError
from lof.sources.leb2 import METADATA, TABLE_NAMES, TABLES

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``; stage is ``"leb2"`` (classes) or ``"amplitude"`` (days)."""

BASE_URL = "https://leb2.example.ac.th"
FIRST_USER_ID = 600000
SEMESTER_SPACING_DAYS = 240  # ~8 months: the previous semester is never ongoing meanwhile
SEMESTER_SPAN_DAYS = 95  # activity starts spread over ~14 weeks
_BATCH = 5000
_MAX_EVENTS_PER_FILE = 200_000
_CODES = ("CPE", "MTH", "PHY", "CHE", "ENG", "BIO", "STA", "ECO", "ART", "GEN")
# Local hour of day weights for session starts (students sleep, mostly).
_HOUR_WEIGHTS = np.array(
    [1, 0.5, 0.3, 0.2, 0.2, 0.3, 1, 2, 4, 6, 7, 7, 6, 6, 7, 7, 7, 6, 6, 7, 8, 8, 6, 3], dtype=float
)
_HOUR_WEIGHTS /= _HOUR_WEIGHTS.sum()
_URL_SUFFIXES = ("?tab=overview", "?ref=notification&lang=th", "#comments", "?page=2#top")
_OTHER_PATHS = ("/home", "/profile", "/notifications", "/calendar")
# Class-page kinds: home, activity list, material, activity/<id>, quiz/<id>
_KIND_P = np.array([0.28, 0.20, 0.22, 0.18, 0.12])


@dataclass(frozen=True)
class SemesterRange:
    """A semester's slug and the local days its data covers."""

    semester_id: int
    slug: str
    first_day: date
    last_day: date
    ongoing: bool


@dataclass
class SynthSummary:
    """What ``synthesize`` wrote (row counts include the soft-deleted rows)."""

    semesters: int = 0
    classes_obem: int = 0
    classes_other: int = 0
    classes_deleted: int = 0
    students: int = 0
    enrolments: int = 0
    activities: int = 0
    submissions: int = 0
    records: int = 0
    events: int = 0
    amplitude_files: int = 0
    semester_ranges: list[SemesterRange] = field(default_factory=list)
    deleted_rows: dict[str, int] = field(default_factory=dict)
    traits: list[HiddenTraits] | None = None
    """Each live class's enrolments' hidden traits (``synthesize(keep_traits=True)``)."""

    @property
    def classes(self) -> int:
        return self.classes_obem + self.classes_other + self.classes_deleted

    @property
    def ongoing(self) -> SemesterRange:
        return next(s for s in self.semester_ranges if s.ongoing)

    @property
    def finished(self) -> list[SemesterRange]:
        return [s for s in self.semester_ranges if not s.ongoing]


@dataclass
class HiddenTraits:
    """What the generator knows of one class's students and no data shows directly: their
    ability and engagement in the class, the day they stop (mostly) and the day they begin
    (ordinals). Benchmarks fit on them to measure what the data allows at a point."""

    class_id: int
    users: np.ndarray
    ability: np.ndarray
    engagement: np.ndarray
    stop_day: np.ndarray
    begin_day: np.ndarray


@dataclass
class _ClassPlan:
    """What the event generator needs to know about one class."""

    class_id: int
    first_day: date
    last_day: date
    users: np.ndarray  # int64 user ids
    rate: np.ndarray  # base page events per day per enrolment
    stop_day: np.ndarray  # ordinal day after which a student mostly stops
    act_ids: np.ndarray
    act_is_quiz: np.ndarray
    act_start_day: np.ndarray  # ordinals
    act_due_day: np.ndarray  # ordinals, -1 when NULL
    after_stop: np.ndarray | None = None  # event rate factor once stopped (0: withdrawn)
    drift: np.ndarray | None = None  # engagement change over the course, per student
    quiet_day: np.ndarray | None = None  # ordinal day after which page views fall (or None)
    begin_day: np.ndarray | None = None  # ordinal day a late starter begins working (or None)
    active_from: np.ndarray | None = None  # ordinal day before which a student is not there
    sub_user: list[int] = field(default_factory=list)
    sub_activity: list[int] = field(default_factory=list)
    sub_at: list[datetime] = field(default_factory=list)  # naive local

    def submissions_by_day(self) -> dict[int, list[int]]:
        days: dict[int, list[int]] = {}
        for i, at in enumerate(self.sub_at):
            days.setdefault(at.toordinal(), []).append(i)
        return days


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _slug(start: date) -> str:
    """Academic-year style slug: term 1 from June, term 2 from November, summer (3) from April."""
    if 6 <= start.month <= 10:
        return f"1/{start.year}"
    if start.month >= 11:
        return f"2/{start.year}"
    if start.month <= 3:
        return f"2/{start.year - 1}"
    return f"3/{start.year - 1}"


def _hms(seconds: float) -> str:
    total = int(seconds)
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


class _Writer:
    """Buffered executemany inserts into the LEB2 tables, counting rows."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.buffers: dict[str, list[dict[str, object]]] = {name: [] for name in TABLE_NAMES}
        self.counts: dict[str, int] = dict.fromkeys(TABLE_NAMES, 0)
        self.deleted: dict[str, int] = dict.fromkeys(TABLE_NAMES, 0)
        self.next_id: dict[str, int] = dict.fromkeys(TABLE_NAMES, 1)

    def add(self, table: str, **row: object) -> int:
        row_id = self.next_id[table]
        self.next_id[table] += 1
        row["id"] = row_id
        if "deleted_at" in TABLES[table].c:
            row.setdefault("deleted_at", None)
            if row["deleted_at"] is not None:
                self.deleted[table] += 1
        buffer = self.buffers[table]
        buffer.append(row)
        self.counts[table] += 1
        if len(buffer) >= _BATCH:
            self.flush(table)
        return row_id

    def flush(self, table: str | None = None) -> None:
        for name in [table] if table else list(TABLE_NAMES):
            if self.buffers[name]:
                self.conn.execute(TABLES[name].insert(), self.buffers[name])
                self.buffers[name] = []


def _prepare_database(leb2_url: str, *, replace: bool) -> Engine:
    try:
        url = make_url(leb2_url)
    except ArgumentError:
        raise SourceError(
            f"LOF_LEB2_URL={leb2_url!r} is not a database URL; "
            "expected e.g. sqlite:///path/leb2.db or mysql+pymysql://user:pw@host/db"
        ) from None
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(url, pool_pre_ping=True)
        existing = set(inspect(engine).get_table_names()) & set(TABLE_NAMES)
        if existing and not replace:
            with engine.connect() as conn:
                rows = sum(
                    conn.execute(select(func.count()).select_from(TABLES[name])).scalar_one()
                    for name in sorted(existing)
                )
            if rows:
                raise DataError(
                    f"LOF_LEB2_URL={shown} already holds LEB2 data ({rows} rows); "
                    "pass replace=True (lof synth --replace) to overwrite it"
                )
        if replace:
            METADATA.drop_all(engine)
        METADATA.create_all(engine)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or type(exc).__name__).splitlines()[0]
        if url.password:
            reason = reason.replace(str(url.password), "***")
        raise SourceError(
            f"cannot write the synthetic LEB2 database at LOF_LEB2_URL={shown}: {reason}; "
            "check the URL, the credentials and that the database exists"
        ) from None
    return engine


def _prepare_amplitude_dir(amplitude_dir: Path, project_id: int, *, replace: bool) -> Path:
    folder = Path(amplitude_dir) / str(project_id)
    folder.mkdir(parents=True, exist_ok=True)
    existing = sorted(folder.glob("*.json.gz"))
    if existing and not replace:
        raise DataError(
            f"{folder} already holds {len(existing)} Amplitude export files; "
            "pass replace=True (lof synth --replace) to overwrite them"
        )
    for path in existing:
        path.unlink()
    return folder


def synthesize(
    *,
    leb2_url: str,
    amplitude_dir: Path,
    seed: int = 7,
    today: date | None = None,
    students: int = 300,
    classes: int = 8,
    days: int = 28,
    events_per_student_day: float = 6.0,
    project_id: int = 100001,
    progress: Progress | None = None,
    replace: bool = False,
    amplitude_days: int | None = None,
    timezone_name: str = "Asia/Bangkok",
    late_starters: bool = False,
    early_cases: bool = False,
    keep_traits: bool = False,
) -> SynthSummary:
    """Write a synthetic LEB2 database at ``leb2_url`` and Amplitude exports in ``amplitude_dir``.

    Three semesters ~8 months apart: two finished, and an ongoing one whose first activity
    started ``days`` days before ``today`` (so it has data up to yesterday). ``amplitude_days``
    writes events for only the last N days (benchmarks); the LEB2 data is always complete.
    ``late_starters`` makes some students start each class late (see ``student_groups``: the
    second-round intake does so more often); without it the data is exactly as before.
    ``early_cases`` adds the early-warning cases of ``_early_cases`` (same seed, same rest).
    ``keep_traits`` returns the students' hidden traits in ``SynthSummary.traits``.
    """
    if students < 1 or classes < 1 or days < 1 or events_per_student_day < 0:
        raise DataError(
            "synthesize: students, classes and days must be at least 1 and "
            "events_per_student_day not negative"
        )
    tz = ZoneInfo(timezone_name)
    today = today or datetime.now(tz).date()
    engine = _prepare_database(leb2_url, replace=replace)
    folder = _prepare_amplitude_dir(Path(amplitude_dir), project_id, replace=replace)
    summary = SynthSummary(students=students, traits=[] if keep_traits else None)
    try:
        with engine.begin() as conn:
            writer = _Writer(conn)
            plans = _write_leb2(
                writer,
                summary=summary,
                seed=seed,
                today=today,
                students=students,
                classes=classes,
                days=days,
                events_per_student_day=events_per_student_day,
                progress=progress,
                late_start=group_traits(seed, students)[2] if late_starters else None,
                early_cases=early_cases,
            )
            writer.flush()
        summary.activities = writer.counts["activities"]
        summary.submissions = writer.counts["activity_submissions"]
        summary.records = writer.counts["act_sub_points"]
        summary.deleted_rows = {
            k: v for k, v in writer.deleted.items() if "deleted_at" in TABLES[k].c
        }
    finally:
        engine.dispose()
    first_event_day = None if amplitude_days is None else today - timedelta(days=amplitude_days)
    _write_amplitude(
        folder,
        plans=plans,
        summary=summary,
        seed=seed,
        project_id=project_id,
        tz=tz,
        first_day=first_event_day,
        progress=progress,
    )
    return summary


def _write_leb2(
    writer: _Writer,
    *,
    summary: SynthSummary,
    seed: int,
    today: date,
    students: int,
    classes: int,
    days: int,
    events_per_student_day: float,
    progress: Progress | None,
    late_start: np.ndarray | None = None,
    early_cases: bool = False,
) -> list[_ClassPlan]:
    rng = np.random.default_rng([seed, 0])
    user_ids = np.arange(FIRST_USER_ID, FIRST_USER_ID + students, dtype=np.int64)
    ability = rng.normal(0.0, 1.0, students)
    engagement = 0.6 * ability + 0.8 * rng.normal(0.0, 1.0, students)
    cutoff = datetime.combine(today, time.min)  # the LMS as it stands at the start of today
    ongoing_start = today - timedelta(days=days)
    starts = [ongoing_start - timedelta(days=SEMESTER_SPACING_DAYS * k) for k in (2, 1, 0)]
    n_obem = max(1, round(classes * 0.75))
    plans: list[_ClassPlan] = []
    total_classes = 3 * (classes + 1)
    done = 0
    for s_index, start in enumerate(starts):
        ongoing = s_index == 2
        semester_id = writer.add("semesters", slug=_slug(start))
        last_days: list[date] = []
        for k in range(classes + 1):
            deleted_class = k == classes  # one soft-deleted OBEM class per semester
            is_obem = k < n_obem or deleted_class
            first_day = start if k == 0 else start + timedelta(days=int(rng.integers(0, 5)))
            plan = _write_class(
                writer,
                rng,
                semester_id=semester_id,
                code=f"{_CODES[k % len(_CODES)]}{101 + k + 100 * (k // len(_CODES))}",
                is_obem=is_obem,
                deleted=deleted_class,
                with_non_obem_ulti=(not is_obem and k == classes - 1),
                first_day=first_day,
                cutoff=cutoff if ongoing else None,
                user_ids=user_ids,
                ability=ability,
                engagement=engagement,
                events_per_student_day=events_per_student_day,
                classes_per_semester=classes,
                summary=summary,
                late_start=late_start,
                early_cases=early_cases,
            )
            if deleted_class:
                summary.classes_deleted += 1
            elif is_obem:
                summary.classes_obem += 1
            else:
                summary.classes_other += 1
            if not deleted_class:
                if ongoing:
                    plan.last_day = today - timedelta(days=1)
                plans.append(plan)
                last_days.append(plan.last_day)
            done += 1
            if progress:
                progress("leb2", done, total_classes)
        last = today - timedelta(days=1) if ongoing else max(last_days)
        summary.semester_ranges.append(
            SemesterRange(semester_id, _slug(start), start, last, ongoing)
        )
    summary.semesters = 3
    return plans


def _write_class(
    writer: _Writer,
    rng: np.random.Generator,
    *,
    semester_id: int,
    code: str,
    is_obem: bool,
    deleted: bool,
    with_non_obem_ulti: bool,
    first_day: date,
    cutoff: datetime | None,
    user_ids: np.ndarray,
    ability: np.ndarray,
    engagement: np.ndarray,
    events_per_student_day: float,
    classes_per_semester: int,
    summary: SynthSummary,
    late_start: np.ndarray | None = None,
    early_cases: bool = False,
) -> _ClassPlan:
    first_start = datetime.combine(first_day, time(8, 0))
    deleted_at = first_start + timedelta(days=3) if deleted else None
    class_id = writer.add(
        "classes",
        code=code,
        type="obem" if is_obem else "normal",
        semester_id=semester_id,
        deleted_at=deleted_at,
    )
    course_id = 9000 + sum(ord(c) for c in code)

    # Outcomes and criteria: ulti criteria (1-2), other outcome types, and soft-deleted ones.
    required = 2 if (class_id % 4 == 2 or rng.random() < 0.1) else 3
    ulti_cris: list[tuple[int, dict[int, int]]] = []  # (cri_id, level -> cri_level_id)
    other_cris: list[tuple[int, dict[int, int]]] = []
    ghost_cris: list[tuple[int, dict[int, int]]] = []  # deleted criterion or outcome

    def outcome(kind: str, deleted_row: bool = False) -> int:
        return writer.add(
            "course_outcomes",
            class_id=class_id,
            course_id=course_id,
            clo_id=int(rng.integers(1, 60)),
            type=kind,
            deleted_at=first_start - timedelta(days=1) if deleted_row else None,
        )

    def criterion(clo_id: int, req: int, deleted_row: bool = False) -> tuple[int, dict[int, int]]:
        cri_id = writer.add(
            "criterias",
            clo_id=clo_id,
            deleted_at=first_start - timedelta(days=1) if deleted_row else None,
        )
        levels = {
            level: writer.add("cri_levels", cri_id=cri_id, level=level, flag=int(level == req))
            for level in range(1, 6)
        }
        if rng.random() < 0.25:  # an old required level, soft-deleted
            writer.add(
                "cri_levels",
                cri_id=cri_id,
                level=min(5, req + 1),
                flag=1,
                deleted_at=first_start - timedelta(days=2),
            )
        return cri_id, levels

    if is_obem or with_non_obem_ulti:
        ulti_id = outcome("ulti")
        for _ in range(1 + int(rng.random() < 0.5)):
            ulti_cris.append(criterion(ulti_id, required))
        if rng.random() < 0.4:
            ghost_cris.append(criterion(ulti_id, required, deleted_row=True))
        if is_obem and rng.random() < 0.35:
            ghost_cris.append(criterion(outcome("ulti", deleted_row=True), required))
    for kind in ("sub", "pre")[: 1 + int(rng.random() < 0.5)]:
        other_cris.append(criterion(outcome(kind), int(rng.integers(2, 5))))
    if not is_obem and not with_non_obem_ulti and rng.random() < 0.5:
        outcome("ulti", deleted_row=True)
    assessing = ulti_cris or other_cris

    # Activities over ~14 weeks; some NULL due dates; one soft-deleted sometimes.
    n_act = int(rng.integers(6, 11))
    act_rows: list[tuple[int, bool, datetime, datetime | None, bool]] = []
    for a in range(n_act + 1):
        ghost = a == n_act
        if ghost and rng.random() < 0.6:
            break
        step = SEMESTER_SPAN_DAYS * (a if not ghost else rng.integers(1, n_act)) / (n_act - 1)
        offset = 0 if a == 0 else int(step) + int(rng.integers(0, 3))
        start = first_start + timedelta(days=offset, hours=int(rng.integers(0, 3)))
        due = None
        if a == 0 or rng.random() > 0.15:
            due = datetime.combine(
                (start + timedelta(days=int(rng.integers(7, 15)))).date(), time(23, 59)
            )
        quiz = rng.random() < 0.4
        act_id = writer.add(
            "activities",
            class_id=class_id,
            type="QUZ" if quiz else "ASM",
            start_date=start,
            due_date=due,
            deleted_at=start + timedelta(days=1) if ghost else None,
        )
        act_rows.append((act_id, quiz, start, due, ghost))
    live = [row for row in act_rows if not row[4]]
    last_day = max(max(r[2], r[3] or r[2]) for r in live).date()

    # Enrolment: a deleted class gets a handful of students, the others ~2.5 classes each.
    n_students = len(user_ids)
    share = 0.08 if deleted else min(1.0, 2.5 / classes_per_semester)
    take = rng.random(n_students) < share
    if not take.any():
        take[int(rng.integers(0, n_students))] = True
    idx = np.flatnonzero(take)
    users = user_ids[idx]
    n = len(idx)
    a_cls = ability[idx] + 0.3 * rng.normal(0, 1, n)
    e_cls = engagement[idx] + 0.4 * rng.normal(0, 1, n)
    stopper = rng.random(n) < 0.1
    span = max(1, (last_day - first_day).days)
    stop_after = np.where(stopper, rng.uniform(0.2, 0.7, n), 2.0)
    # The mess of real courses, from a stream of its own (see the module docstring).
    mess = np.random.default_rng([int(rng.integers(0, 2**31)), 2])
    withdrawer = (mess.random(n) < 0.16) & ~stopper
    stop_after = np.where(withdrawer, mess.uniform(0.02, 0.3, n), stop_after)
    late_stopper = (mess.random(n) < 0.12) & ~stopper & ~withdrawer
    stop_after = np.where(late_stopper, mess.uniform(0.4, 0.85, n), stop_after)
    stop_day = first_day.toordinal() + (stop_after * span).astype(np.int64)
    drift = mess.normal(0.0, 1.4, n)
    view_noise = mess.normal(0.0, 0.6, n)
    grade_delay = np.where(mess.random(n) < 0.4, mess.integers(1, 9, n), 0)
    submit_stop_day, quiet_day = _early_warning_behaviours(
        class_id=class_id, n=n, first_day=first_day, span=span
    )
    begin_day = (
        None
        if late_start is None
        else first_day.toordinal() + (late_start[idx] * span).astype(np.int64)
    )
    cases = _early_cases(
        class_id=class_id, n=n, first_day=first_day, enabled=early_cases and not deleted
    )
    stop_day = np.minimum(stop_day, cases.stop_day)
    if not deleted:
        summary.enrolments += n
        if summary.traits is not None:
            begins = cases.active_from if begin_day is None else begin_day
            summary.traits.append(
                HiddenTraits(
                    class_id=class_id,
                    users=users,
                    ability=a_cls,
                    engagement=e_cls,
                    stop_day=np.minimum(stop_day, submit_stop_day),
                    begin_day=np.maximum(begins, cases.active_from),
                )
            )

    plan = _ClassPlan(
        class_id=class_id,
        first_day=first_day,
        last_day=last_day,
        users=users,
        rate=events_per_student_day
        / 2.5
        * np.exp(0.6 * e_cls - 0.45 + view_noise)
        * cases.rate_factor,
        stop_day=stop_day,
        after_stop=np.where(withdrawer, 0.0, np.where(cases.stop_day < NEVER, 0.03, 0.1)),
        drift=drift,
        quiet_day=quiet_day,
        begin_day=begin_day,
        act_ids=np.array([r[0] for r in live], dtype=np.int64),
        act_is_quiz=np.array([r[1] for r in live], dtype=bool),
        act_start_day=np.array([r[2].toordinal() for r in live], dtype=np.int64),
        act_due_day=np.array([r[3].toordinal() if r[3] else -1 for r in live], dtype=np.int64),
        active_from=cases.active_from if early_cases else None,
    )

    # Submissions and assessed levels.
    for a_pos, (act_id, quiz, start, due, _ghost) in enumerate(act_rows):
        if cutoff is not None and start >= cutoff:
            continue  # created ahead by the LMS, nobody submitted yet
        stopped = start.toordinal() > np.minimum(stop_day, submit_stop_day)
        frac = min(1.0, max(0.0, (start.date() - first_day).days / span))
        e_now = e_cls + drift * frac
        p_submit = np.where(stopped, 0.03, _sigmoid(1.9 + 1.4 * e_now))
        p_submit = np.where(start.toordinal() > quiet_day, 0.6 * p_submit, p_submit)
        p_submit = np.where(withdrawer, 0.0, p_submit)
        if begin_day is not None:  # a late starter hands in nothing before beginning
            p_submit = np.where(start.toordinal() < begin_day, 0.0, p_submit)
        p_submit = np.where(start.toordinal() < cases.active_from - 2, 0.0, p_submit)
        submits = rng.random(n) < p_submit
        window = (due - start) if due else timedelta(days=10)
        early_frac = _sigmoid(0.8 * e_cls + rng.normal(0, 1, n)) * 0.9
        late = rng.random(n) < 0.08
        spent = np.exp(np.log(1800) + 0.3 * a_cls + 0.3 * e_cls + rng.normal(0, 0.6, n))
        spent_null = rng.random(n) < 0.1
        a_now = a_cls + 0.6 * drift * frac
        z = 3.3 + 0.9 * a_now + 0.3 * e_now + rng.normal(0, 1.1, n) - (0.2 if quiz else 0)
        if cases.lenient_until is not None and start.toordinal() <= cases.lenient_until:
            z = cases.lenient_levels(z)
        levels = np.clip(np.rint(z), 1, 5).astype(int)
        resubmit = rng.random(n) < 0.12
        deleted_sub = rng.random(n)
        for i in np.flatnonzero(submits):
            if due is not None:
                if late[i]:
                    at = due + timedelta(seconds=int(rng.integers(60, 48 * 3600)))
                else:
                    at = due - timedelta(seconds=int(early_frac[i] * window.total_seconds()))
            else:
                at = start + timedelta(seconds=int((1 - early_frac[i]) * window.total_seconds()))
            at = max(at, start + timedelta(minutes=10))
            if cutoff is not None and at >= cutoff:
                continue
            user = int(users[i])
            if resubmit[i]:
                earlier = max(
                    start + timedelta(minutes=5),
                    at - timedelta(seconds=int(rng.integers(3600, 48 * 3600))),
                )
                writer.add(
                    "activity_submissions",
                    activity_id=act_id,
                    user_id=user,
                    submitted_at=earlier,
                    spent_time=_hms(spent[i] * 0.5),
                )
            only_deleted = deleted_sub[i] < 0.015
            writer.add(
                "activity_submissions",
                activity_id=act_id,
                user_id=user,
                submitted_at=at,
                spent_time=None if spent_null[i] else _hms(spent[i]),
                deleted_at=at + timedelta(hours=2) if only_deleted else None,
            )
            if 0.015 <= deleted_sub[i] < 0.03:  # a later resubmission, withdrawn
                writer.add(
                    "activity_submissions",
                    activity_id=act_id,
                    user_id=user,
                    submitted_at=at + timedelta(hours=1),
                    spent_time="0:05:00",
                    deleted_at=at + timedelta(hours=3),
                )
            if not _ghost:
                plan.sub_user.append(user)
                plan.sub_activity.append(act_id)
                plan.sub_at.append(at)
            if cutoff is not None and at + timedelta(days=int(grade_delay[i])) >= cutoff:
                continue  # submitted, not graded yet
            cri_id, cri_levels = assessing[a_pos % len(assessing)]
            writer.add(
                "act_sub_points",
                activity_id=act_id,
                user_id=user,
                cri_id=cri_id,
                cri_level_id=cri_levels[int(levels[i])],
            )
            if other_cris and assessing is ulti_cris and rng.random() < 0.5:
                o_id, o_levels = other_cris[a_pos % len(other_cris)]
                writer.add(
                    "act_sub_points",
                    activity_id=act_id,
                    user_id=user,
                    cri_id=o_id,
                    cri_level_id=o_levels[int(np.clip(levels[i] + rng.integers(-1, 2), 1, 5))],
                )
            if ghost_cris and rng.random() < 0.5:
                g_id, g_levels = ghost_cris[a_pos % len(ghost_cris)]
                writer.add(
                    "act_sub_points",
                    activity_id=act_id,
                    user_id=user,
                    cri_id=g_id,
                    cri_level_id=g_levels[int(rng.integers(4, 6))],
                )
    return plan


# --- early-warning behaviours ----------------------------------------------------------------

STOP_SUBMITTING_SHARE = 0.08
GO_QUIET_SHARE = 0.08
QUIET_RATE = 0.25
NEVER = date.max.toordinal()


def _early_warning_behaviours(
    *, class_id: int, n: int, first_day: date, span: int
) -> tuple[np.ndarray, np.ndarray]:
    """(submit_stop_day, quiet_day) per enrolment, as day ordinals (``NEVER`` = not that student).

    Besides the students who stop altogether, two kinds a warning exists for: ~8% stop handing
    work in from 25-65% of the course on while still reading the pages, ~8% go quiet from
    20-60% on (a quarter of their page views) and hand in less. Neither is certain to end
    below the required level: it depends on what they did before and how much is left.
    Drawn from the class's own generator, so the rest of the university is unchanged.
    """
    rng = np.random.default_rng((15, class_id, n))
    start = first_day.toordinal()
    stops = rng.random(n) < STOP_SUBMITTING_SHARE
    quiet = ~stops & (rng.random(n) < GO_QUIET_SHARE / (1 - STOP_SUBMITTING_SHARE))
    submit_stop = start + (rng.uniform(0.25, 0.65, n) * span).astype(np.int64)
    quiet_from = start + (rng.uniform(0.2, 0.6, n) * span).astype(np.int64)
    return np.where(stops, submit_stop, NEVER), np.where(quiet, quiet_from, NEVER)


# --- student groups (evaluation only) ---------------------------------------------------------

SECOND_ROUND_SHARE = 0.3
LATE_START_P = {"second-round": 0.9, "first-round": 0.02}
LATE_START_FROM = (0.3, 0.5)
LATE_START_RATE = 0.15
GROUP_COLUMNS = ("user_id", "intake", "campus")


def group_traits(seed: int, students: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(intake, campus, late_start) per student, from streams of their own.

    ``intake`` matters: "second-round" students (~30%) start a class late far more often
    (90% against 2%): they hand in nothing and only look in on the pages until 30-50% of the
    course. ``campus`` ("north-campus"/"south-campus", a coin toss) does not matter at all.
    ``late_start`` is the share of each class a student waits (0: starts on time); it acts
    only with ``synthesize(late_starters=True)``.
    """
    rng = np.random.default_rng([seed, 33])
    second = rng.random(students) < SECOND_ROUND_SHARE
    intake = np.where(second, "second-round", "first-round")
    late = rng.random(students) < np.where(
        second, LATE_START_P["second-round"], LATE_START_P["first-round"]
    )
    wait = rng.uniform(*LATE_START_FROM, students)
    campus = np.where(
        np.random.default_rng([seed, 34]).random(students) < 0.5, "north-campus", "south-campus"
    )
    return intake, campus, np.where(late, wait, 0.0)


def write_student_groups(path: Path, *, seed: int = 7, students: int = 300) -> Path:
    """The synthetic university's groups file (LOF_STUDENT_GROUPS): user_id, intake, campus."""
    import csv

    intake, campus, _ = group_traits(seed, students)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(GROUP_COLUMNS)
        for k in range(students):
            writer.writerow([FIRST_USER_ID + k, intake[k], campus[k]])
    return path


LATE_START_SHARE = 0.1
WEEK3_STOP_SHARE = 0.07
EXTREME_PER_CLASS = (1, 3)
EXTREME_FACTOR = (12.0, 30.0)
LENIENT_SHARE = 0.5
LENIENT_SPAN = 0.35


@dataclass
class _EarlyCases:
    """Per-enrolment cases of ``_early_cases``: event rate factor, first day there, stop day,
    and the last day graded leniently (None: the class grades its early work as the rest)."""

    rate_factor: np.ndarray
    active_from: np.ndarray
    stop_day: np.ndarray
    lenient_until: int | None = None
    rng: np.random.Generator | None = None

    def lenient_levels(self, z: np.ndarray) -> np.ndarray:
        """Early work graded leniently: high levels for nearly everyone, ability barely shows."""
        assert self.rng is not None
        return 4.3 + 0.15 * (z - 3.3) + self.rng.normal(0.0, 0.5, len(z))


def _early_cases(*, class_id: int, n: int, first_day: date, enabled: bool) -> _EarlyCases:
    """What makes the first weeks hard to read, from the class's own generator.

    * late starters (~10%): not there for the first 10-25 days (no events, nothing handed in
      for work that started before);
    * week-3 stoppers (~7%): active, then almost nothing from day 14-21 on;
    * half the classes grade the work of their first 35% leniently (levels 4-5 for almost
      all), so early marks say little about the final attainment;
    * 1-3 extreme-activity students per class with 12-30x the page views of their peers
      (min-max scaling within the class then squeezes everyone else towards 0).
    """
    start = first_day.toordinal()
    if not enabled:
        return _EarlyCases(
            rate_factor=np.ones(n),
            active_from=np.full(n, start, dtype=np.int64),
            stop_day=np.full(n, NEVER, dtype=np.int64),
        )
    rng = np.random.default_rng((16, class_id, n))
    late = rng.random(n) < LATE_START_SHARE
    active_from = np.where(late, start + rng.integers(10, 26, n), start).astype(np.int64)
    stops = ~late & (rng.random(n) < WEEK3_STOP_SHARE)
    stop_day = np.where(stops, start + rng.integers(14, 22, n), NEVER).astype(np.int64)
    rate_factor = np.ones(n)
    n_extreme = min(n, int(rng.integers(EXTREME_PER_CLASS[0], EXTREME_PER_CLASS[1] + 1)))
    extreme = rng.choice(n, size=n_extreme, replace=False)
    rate_factor[extreme] = rng.uniform(*EXTREME_FACTOR, n_extreme)
    span = SEMESTER_SPAN_DAYS
    lenient = rng.random() < LENIENT_SHARE
    return _EarlyCases(
        rate_factor=rate_factor,
        active_from=active_from,
        stop_day=stop_day,
        lenient_until=start + int(LENIENT_SPAN * span) if lenient else None,
        rng=np.random.default_rng((17, class_id, n)),
    )


# --- Amplitude -----------------------------------------------------------------------------


_LINE = (
    '{"uuid":"%s","user_id":"%d","device_id":"%s","amplitude_id":%d,"session_id":%d,'
    '"event_id":%d,"event_type":"%s","event_time":"%s","client_event_time":"%s",'
    '"server_upload_time":"%s","event_properties":{"CURRENT_URL":"%s"},"user_properties":{},'
    '"platform":"Web","os_name":"Chrome","country":"Thailand","language":"Thai"}\n'
)


@dataclass
class _DayEvents:
    """Column arrays of one day's events (times are UTC microseconds since the epoch)."""

    user: list[np.ndarray] = field(default_factory=list)
    session: list[np.ndarray] = field(default_factory=list)
    time_us: list[np.ndarray] = field(default_factory=list)
    kind: list[np.ndarray] = field(default_factory=list)  # index into event types
    url: list[list[str]] = field(default_factory=list)

    def add(
        self,
        user: npt.ArrayLike,
        session: npt.ArrayLike,
        time_us: npt.ArrayLike,
        kind: npt.ArrayLike,
        url: list[str],
    ) -> None:
        self.user.append(np.asarray(user, dtype=np.int64))
        self.session.append(np.asarray(session, dtype=np.int64))
        self.time_us.append(np.asarray(time_us, dtype=np.int64))
        self.kind.append(np.asarray(kind, dtype=np.int8))
        self.url.append(url)


_EVENT_TYPES = ("Page Load", "Click", "Start Session")


def _day_events(
    plans: list[_ClassPlan],
    subs_by_day: list[dict[int, list[int]]],
    day: date,
    rng: np.random.Generator,
    offset_us: int,
) -> _DayEvents:
    out = _DayEvents()
    ordinal = day.toordinal()
    midnight_us = int(datetime.combine(day, time.min, tzinfo=UTC).timestamp()) * 10**6
    midnight_us -= offset_us  # local midnight in UTC microseconds
    weekend = 0.6 if day.weekday() >= 5 else 1.0
    for plan, subs in zip(plans, subs_by_day, strict=True):
        if not plan.first_day <= day <= plan.last_day:
            continue
        started = plan.act_start_day <= ordinal
        due_soon = ((plan.act_due_day >= ordinal) & (plan.act_due_day <= ordinal + 3)).any()
        fresh = ((plan.act_start_day <= ordinal) & (plan.act_start_day >= ordinal - 2)).any()
        factor = weekend * (1.6 if due_soon else 1.0) * (1.3 if fresh else 1.0)
        after = 0.1 if plan.after_stop is None else plan.after_stop
        rate = plan.rate * factor * np.where(plan.stop_day < ordinal, after, 1.0)
        if plan.drift is not None:
            span = max(1, (plan.last_day - plan.first_day).days)
            frac = min(1.0, (ordinal - plan.first_day.toordinal()) / span)
            rate = rate * np.exp(0.5 * plan.drift * frac)
        if plan.quiet_day is not None:
            rate = rate * np.where(plan.quiet_day < ordinal, QUIET_RATE, 1.0)
        if plan.begin_day is not None:  # before beginning, a late starter only looks in
            rate = rate * np.where(plan.begin_day > ordinal, LATE_START_RATE, 1.0)
        if plan.active_from is not None:
            rate = rate * (plan.active_from <= ordinal)
        counts = rng.poisson(rate)
        active = np.flatnonzero(counts)
        cid = plan.class_id
        if active.size:
            counts = counts[active]
            n_sess = np.minimum(counts, 1 + rng.poisson(0.25 + counts / 15.0))
            sess_owner = np.repeat(active, n_sess)
            hours = rng.choice(24, size=sess_owner.size, p=_HOUR_WEIGHTS)
            sess_start = (
                (
                    midnight_us
                    + hours * 3_600_000_000
                    + rng.integers(0, 3_600_000_000, sess_owner.size)
                )
                // 1000
                * 1000
            )
            first_sess = np.concatenate([[0], np.cumsum(n_sess)[:-1]])
            ev_owner_pos = np.repeat(np.arange(active.size), counts)
            ev_sess = first_sess[ev_owner_pos] + (
                rng.random(ev_owner_pos.size) * n_sess[ev_owner_pos]
            ).astype(np.int64)
            ev_time = sess_start[ev_sess] + rng.integers(1_000_000, 2_700_000_000, ev_sess.size)
            ev_user = plan.users[active][ev_owner_pos]
            ev_session_id = sess_start[ev_sess] // 1000
            kinds = rng.choice(5, size=ev_sess.size, p=_KIND_P)
            act_pool = plan.act_ids[started]
            quiz_pool = plan.act_ids[started & plan.act_is_quiz]
            asm_pool = plan.act_ids[started & ~plan.act_is_quiz]
            picks = rng.integers(0, 1 << 30, ev_sess.size)
            suffix = rng.random(ev_sess.size)
            suffix_pick = rng.integers(0, len(_URL_SUFFIXES), ev_sess.size)
            material = rng.integers(1, 25, ev_sess.size)
            urls = []
            base = f"{BASE_URL}/class/{cid}"
            for j in range(ev_sess.size):
                kind = kinds[j]
                if kind == 0:
                    url = base
                elif kind == 1:
                    url = f"{base}/activity"
                elif kind == 2:
                    url = f"{base}/learning-activities/{material[j]}"
                else:
                    quiz = kind == 4 and quiz_pool.size > 0
                    pool = quiz_pool if quiz else (asm_pool if asm_pool.size else act_pool)
                    url = f"{base}/{'quiz' if quiz else 'activity'}/{pool[picks[j] % pool.size]}"
                if suffix[j] < 0.06:
                    url += _URL_SUFFIXES[suffix_pick[j]]
                urls.append(url)
            ev_kind = (rng.random(ev_sess.size) < 0.08).astype(np.int8)  # some clicks
            out.add(ev_user, ev_session_id, ev_time, ev_kind, urls)
            # "Start Session" for some sessions (the tracker misses others), a few other pages.
            s_user = plan.users[sess_owner]
            marked = np.flatnonzero(rng.random(sess_owner.size) < 0.4)
            out.add(
                s_user[marked],
                sess_start[marked] // 1000,
                sess_start[marked],
                np.full(marked.size, 2),
                [f"{BASE_URL}/home"] * marked.size,
            )
            extra = rng.random(sess_owner.size) < 0.25
            if extra.any():
                ex = np.flatnonzero(extra)
                paths = rng.integers(0, len(_OTHER_PATHS), ex.size)
                out.add(
                    s_user[ex],
                    sess_start[ex] // 1000,
                    sess_start[ex] + rng.integers(1_000_000, 600_000_000, ex.size),
                    np.zeros(ex.size),
                    [f"{BASE_URL}{_OTHER_PATHS[p]}" for p in paths],
                )
        todays = subs.get(ordinal, [])
        if todays:
            at_us = np.array(
                [
                    int(datetime.combine(plan.sub_at[i].date(), time.min, tzinfo=UTC).timestamp())
                    * 10**6
                    - offset_us
                    + (plan.sub_at[i] - datetime.combine(plan.sub_at[i].date(), time.min))
                    // timedelta(microseconds=1)
                    for i in todays
                ],
                dtype=np.int64,
            )
            users = np.array([plan.sub_user[i] for i in todays], dtype=np.int64)
            session = (at_us - 300_000_000) // 1000
            view = [f"{BASE_URL}/class/{cid}/activity/{plan.sub_activity[i]}" for i in todays]
            out.add(users, session, at_us - 240_000_000, np.zeros(len(todays)), view)
            out.add(users, session, at_us, np.zeros(len(todays)), [f"{v}/submission" for v in view])
    return out


def _uuid_strings(rng: np.random.Generator, n: int) -> list[str]:
    raw = rng.bytes(16 * n).hex()
    out = []
    for i in range(n):
        h = raw[32 * i : 32 * i + 32]
        out.append(f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:32]}")
    return out


def _times(us: np.ndarray) -> np.ndarray:
    text = np.datetime_as_string(us.astype("datetime64[us]"), unit="us")
    return np.char.replace(text, "T", " ")


def _write_amplitude(
    folder: Path,
    *,
    plans: list[_ClassPlan],
    summary: SynthSummary,
    seed: int,
    project_id: int,
    tz: ZoneInfo,
    first_day: date | None,
    progress: Progress | None,
) -> None:
    days: list[date] = []
    for sem in summary.semester_ranges:
        day = sem.first_day
        while day <= sem.last_day:
            if first_day is None or day >= first_day:
                days.append(day)
            day += timedelta(days=1)
    subs_by_day = [plan.submissions_by_day() for plan in plans]
    pending: dict[int, list[str]] = {}  # UTC hour (epoch hours) -> rendered lines
    parts: dict[int, int] = {}  # UTC hour -> files written (a late event adds a file)
    for n_day, day in enumerate(days):
        offset = tz.utcoffset(datetime.combine(day, time(12)))
        offset_us = int(offset.total_seconds()) * 10**6 if offset else 0
        window_start_h = (
            int(datetime.combine(day, time.min, tzinfo=UTC).timestamp()) * 10**6 - offset_us
        ) // 3_600_000_000
        for hour in sorted(h for h in pending if h < window_start_h):
            _flush_hour(folder, project_id, hour, pending.pop(hour), seed, summary, parts)
        rng = np.random.default_rng([seed, 1, day.toordinal()])
        events = _day_events(plans, subs_by_day, day, rng, offset_us)
        _render_day(events, rng, pending)
        window_end_h = window_start_h + 24
        for hour in sorted(h for h in pending if h < window_end_h):
            _flush_hour(folder, project_id, hour, pending.pop(hour), seed, summary, parts)
        if progress:
            progress("amplitude", n_day + 1, len(days))
    for hour in sorted(pending):
        _flush_hour(folder, project_id, hour, pending.pop(hour), seed, summary, parts)


def _render_day(
    events: _DayEvents, rng: np.random.Generator, pending: dict[int, list[str]]
) -> None:
    if not events.user:
        return
    user = np.concatenate(events.user)
    session = np.concatenate(events.session)
    t_us = np.concatenate(events.time_us)
    kind = np.concatenate(events.kind)
    urls = [u for chunk in events.url for u in chunk]
    n = user.size
    delay = np.where(
        rng.random(n) < 0.97,
        (rng.exponential(30.0, n) * 10**6).astype(np.int64),
        rng.integers(300_000_000, 3 * 3_600_000_000, n),
    )
    upload = t_us + delay + rng.integers(0, 1000, n)
    client = t_us - rng.integers(0, 2_000_000, n)
    uuids = _uuid_strings(rng, n)
    event_ids = rng.integers(1, 10**6, n)
    # Re-sent events: same uuid and body, uploaded again up to two hours later.
    dup = np.flatnonzero(rng.random(n) < 0.004)
    order = np.concatenate([np.arange(n), dup])
    upload = np.concatenate(
        [upload, upload[dup] + rng.integers(1_000_000, 7_200_000_000, dup.size)]
    )
    sort = np.argsort(upload[: n + dup.size], kind="stable")
    order, upload = order[sort], upload[sort]
    t_text = _times(t_us)
    c_text = _times(client)
    u_text = _times(upload)
    hours = upload // 3_600_000_000
    for pos in range(order.size):
        i = order[pos]
        uid = int(user[i])
        line = _LINE % (
            uuids[i],
            uid,
            f"{(uid * 2654435761) % 2**32:08x}-web",
            uid * 7 + 3,
            int(session[i]),
            int(event_ids[i]),
            _EVENT_TYPES[kind[i]],
            t_text[i],
            c_text[i],
            u_text[pos],
            urls[i],
        )
        pending.setdefault(int(hours[pos]), []).append(line)


def _flush_hour(
    folder: Path,
    project_id: int,
    hour: int,
    lines: list[str],
    seed: int,
    summary: SynthSummary,
    written: dict[int, int],
) -> None:
    stamp = datetime.fromtimestamp(hour * 3600, tz=UTC)
    parts = max(1, -(-len(lines) // _MAX_EVENTS_PER_FILE))
    if parts == 1 and len(lines) > 1 and (hour * 2654435761 + seed) % 97 < 10:
        parts = 2  # exports sometimes split an hour in several files
    size = -(-len(lines) // parts)
    first = written.get(hour, 0)
    written[hour] = first + parts
    for n in range(parts):
        chunk = lines[n * size : (n + 1) * size]
        path = folder / f"{project_id}_{stamp:%Y-%m-%d}_{stamp.hour}#{first + n}.json.gz"
        # wbits=31 writes a gzip member with mtime 0: the bytes depend on the content only
        path.write_bytes(zlib.compress("".join(chunk).encode(), level=1, wbits=31))
        summary.amplitude_files += 1
        summary.events += len(chunk)
