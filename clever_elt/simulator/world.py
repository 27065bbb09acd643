"""The simulated district's content: ids, timestamps, record factories and realistic edits.

Records are shaped like the spec and the real payloads (omitted keys, `""` beside `null`, `ext`
objects, unicode names, fields the spec does not list). Edits are copy-on-write: a record is never
mutated once built, so versions can share unchanged sub-objects.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

Record = dict[str, Any]
MISSING: Any = object()

GRADES = ("Kindergarten", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12")
SUBJECTS = (
    "english/language arts",
    "math",
    "science",
    "social studies",
    "language",
    "arts and music",
    "PE and health",
    "technology and engineering",
    "homeroom/advisory",
    "other",
    "",
)
FIRST_NAMES = (
    "Emma", "Liam", "Olivia", "Noah", "Ava", "Mateo", "Sofía", "José", "Zoë", "Chloé", "Renée",
    "Björn", "Søren", "Łukasz", "Małgorzata", "Thảo", "Ngọc", "Дмитрий", "Анна", "李娜", "王芳",
    "Yūki", "Jürgen", "François", "Aoife", "Siobhán", "Amara", "Kwame", "Oluwaseun", "Mohammed",
    "فاطمة", "Ana-María", "D'Andre", "Jean-Luc", "Mia", "Elijah", "Harper", "Lucas", "Isabella",
    "Ethan", "Amelia", "Aiden", "Priya", "Arjun", "Saanvi", "Hiroshi", "Min-jun", "Seo-yeon",
    "Richard", "Carole", "Robin", "Davin", "Douglas", "Sandra", "Julia", "Nancy", "Lance",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "García", "Nguyễn", "O'Brien", "Müller", "Kowalski", "Øvergaard", "Петров", "张",
    "Kim", "Hernández", "Johnson", "Williams", "Brown", "Jones", "Davis", "Martínez", "Lopez",
    "Wilson", "Anderson", "Taylor", "Thomas", "Moore", "Jackson", "Martin", "Lee", "Pérez",
    "Thompson", "White", "Harris", "Sánchez", "Clark", "Ramírez", "Lewis", "Robinson", "Walker",
    "Ahmed", "Van der Berg", "St. John", "de la Cruz", "Ó Súilleabháin", "Nakamura", "Okafor",
    "Mensah", "Collins", "Roberts", "Plant", "Runte", "Wisoky", "Ritchie", "Heller", "Gerlach",
)  # fmt: skip
MIDDLE_INITIALS = "ABCDEFGHJKLMNPRSTVWZ"
RACES = ("Caucasian", "Asian", "Black or African American", "American Indian",
         "Hawaiian or Other Pacific Islander", "Two or More Races", "Unknown", "")  # fmt: skip
LANGUAGES = (
    ("English", "eng"), ("Spanish", "spa"), ("Vietnamese", "vie"), ("Mandarin", "cmn"),
    ("Arabic", "ara"), ("Somali", "som"), ("Polish", "pol"), ("Haitian Creole", "hat"),
)  # fmt: skip
TEACHER_TITLES = (
    "High School Arts Teacher", "High School Mathematics Teacher", "Science Teacher",
    "Grade 3 Teacher", "Special Education Teacher", "ELL Specialist", "Librarian",
)  # fmt: skip
STAFF_ROLES = ("Technology Coordinator", "Counselor", "Nurse", "Office Manager", "Coach", "Aide")
DEPARTMENTS = ("Technology", "Student Services", "Health", "Administration", "Athletics")
ADMIN_TITLES = ("Superintendent", "Assistant Superintendent", "Data Manager", "IT Director")
PHONE_TYPES = ("Cell", "Home", "Work", "Other", "")
RELATIONSHIPS = ("Parent", "Grandparent", "Aunt/Uncle", "Sibling", "Other", "")
CONTACT_TYPES = ("Parent/Guardian", "Emergency", "Primary", "Secondary", "Family", "Other")
COURSE_NAMES = ("Algebra I", "Geometry", "Biology", "Chemistry", "World History", "English 9",
                "Spanish I", "Art Studio", "Physical Education", "Computer Science", "Grade 3 Math",
                "Grade 3 Reading", "Music", "Civics", "Français débutant")  # fmt: skip
RESOURCE_TITLES = ("Khan Academy", "Newsela", "Quizlet", "Desmos", "BrainPOP", "Lexia Core5",
                   "Duolingo for Schools", "Nearpod", "Épicerie des mots")  # fmt: skip
SCHOOL_LEVELS = (
    ("Kindergarten", "5", "Elementary"),
    ("TransitionalKindergarten", "5", "Elementary"),
    ("6", "8", "Middle"),
    ("9", "12", "High"),
)
CITIES = (("Brooklyn", "NY", "112"), ("Rockaway Beach", "NY", "116"), ("Queens", "NY", "113"))
STREETS = ("Pineapple Street", "Old Beach 88th Street", "Main Street", "Avenue J", "Ocean Parkway")


def choose(rng: random.Random, seq: Sequence[Any]) -> Any:
    """`rng.choice`, without its per-call overhead (millions of draws per large world)."""
    return seq[int(rng.random() * len(seq))]


def randint(rng: random.Random, low: int, high: int) -> int:
    """`rng.randint` (both ends included), without its per-call overhead."""
    return low + int(rng.random() * (high - low + 1))


_SECONDS: dict[int, str] = {}


def iso_ms(t: float) -> str:
    """Clever's datetime format: UTC, millisecond precision, `Z` suffix."""
    sec, ms = divmod(round(t * 1000), 1000)
    text = _SECONDS.get(sec)
    if text is None:
        if len(_SECONDS) > 200_000:
            _SECONDS.clear()
        text = _SECONDS[sec] = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{ms:03d}Z"


def iso_date(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")


def ascii_slug(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in plain.lower() if c.isalnum())


# Copy-on-write helpers: every edit returns a new record sharing the untouched sub-objects.


def get_in(rec: Record, path: tuple[str, ...], default: Any = MISSING) -> Any:
    node: Any = rec
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


def set_in(rec: Record, path: tuple[str, ...], value: Any) -> Record:
    head, rest = path[0], path[1:]
    out = dict(rec)
    out[head] = set_in(rec.get(head) or {}, rest, value) if rest else value
    return out


def drop_in(rec: Record, path: tuple[str, ...]) -> Record:
    head, rest = path[0], path[1:]
    if head not in rec:
        return rec
    out = dict(rec)
    if rest:
        out[head] = drop_in(rec[head], rest)
    else:
        del out[head]
    return out


class IdMint:
    """Deterministic 24-hex ObjectIds: 4 bytes Unix second, 5 seeded bytes, 3 counter bytes."""

    def __init__(self, seed: int, salt: int):
        self._machine = f"{random.Random(seed * 7919 + salt).getrandbits(40):010x}"
        self._counter = random.Random(seed * 31 + salt).getrandbits(18)

    def __call__(self, second: int) -> str:
        self._counter = (self._counter + 1) & 0xFFFFFF
        return f"{second:08x}{self._machine}{self._counter:06x}"


class LiveSet:
    """Ids with O(1) add, remove and uniform random choice."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self._index: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.items)

    def add(self, item: str) -> None:
        if item not in self._index:
            self._index[item] = len(self.items)
            self.items.append(item)

    def remove(self, item: str) -> None:
        pos = self._index.pop(item)
        last = self.items.pop()
        if pos < len(self.items):
            self.items[pos] = last
            self._index[last] = pos

    def pick(self, rng: random.Random, avoid: set[str], tries: int = 8) -> str | None:
        """A random member not in `avoid` (None if a few draws all hit `avoid`)."""
        for _ in range(tries if self.items else 0):
            item = self.items[int(rng.random() * len(self.items))]
            if item not in avoid:
                return item
        return None


class Roster:
    """Builds and edits the records of one district; all randomness comes from `rng`.

    `pools` holds the live ids per pool (a record type, or a user role), kept by the timeline.
    """

    def __init__(self, rng: random.Random, seed: int, district_id: str | None = None):
        self.rng = rng
        self.mint = IdMint(seed, 1)
        self.district_id = district_id or self.mint(1490745600 + seed % 86400)
        self._serial = 100000
        self.pools: dict[str, LiveSet] = {}
        self.school_ids = self.pool("schools").items
        self.term_ids = self.pool("terms").items
        self.course_ids = self.pool("courses").items

    def pool(self, name: str) -> LiveSet:
        found = self.pools.get(name)
        if found is None:
            found = self.pools[name] = LiveSet()
        return found

    def pick_student(self) -> str:
        students = self.pools["student"].items
        return students[int(self.rng.random() * len(students))]

    def pick_teacher(self) -> str:
        teachers = self.pools["teacher"].items
        return teachers[int(self.rng.random() * len(teachers))]

    def _next_serial(self) -> str:
        self._serial += randint(self.rng, 1, 97)
        return str(self._serial)

    def _new_id(self, created: float) -> str:
        return self.mint(int(created))

    def _person_name(self, with_middle: float = 0.7) -> dict[str, str]:
        r = self.rng
        name = {"first": choose(r, FIRST_NAMES), "last": choose(r, LAST_NAMES)}
        if r.random() < with_middle:
            name["middle"] = choose(r, MIDDLE_INITIALS)
        return name

    def _email(self, name: dict[str, str], domain: str) -> str:
        first = ascii_slug(name.get("first", "")) or "user"
        last = ascii_slug(name.get("last", "")) or self._next_serial()
        return f"{first}.{last}{randint(self.rng, 1, 999)}@{domain}"

    def _location(self, blank_street: bool) -> dict[str, str]:
        city, state, zip_prefix = choose(self.rng, CITIES)
        zip_code = f"{zip_prefix}{randint(self.rng, 0, 99):02d}"
        if blank_street:
            return {"address": "", "city": "", "state": "", "zip": zip_code}
        number = randint(self.rng, 1, 999)
        street = choose(self.rng, STREETS)
        return {"address": f"{number} {street}", "city": city, "state": state, "zip": zip_code}

    def _schools_for_person(self) -> list[str]:
        first = choose(self.rng, self.school_ids)
        if self.rng.random() < 0.12 and len(self.school_ids) > 1:
            other = choose(self.rng, self.school_ids)
            if other != first:
                return sorted([first, other])
        return [first]

    # ---- factories -------------------------------------------------------------------------

    def district(self, now: float) -> Record:
        return {
            "district_contact": {
                "district": self.district_id,
                "email": "amelie.zeng@sunnyvale-usd.example.org",
                "id": self.mint(1490745600),
                "name": {"first": "Amelie", "last": "Zeng"},
                "title": "",
            },
            "error": "",
            "id": self.district_id,
            "last_attendance_sync": None,
            "last_sync": iso_ms(now - 86400),
            "launch_date": "2017-07-31",
            "login_methods": ["Clever Passwords"],
            "name": "#SIM Sunnyvale Unified School District",
            "nces_id": None,
            "pause_end": None,
            "pause_start": None,
            "portal_url": f"https://clever.com/in/sim-{self.district_id[-8:]}",
            "sis_type": "sftp",
            "state": "running",
        }

    def school(self, created: float) -> Record:
        r = self.rng
        low, high, level = choose(r, SCHOOL_LEVELS)
        name = f"{choose(r, LAST_NAMES)} {level} School"
        number = f"{randint(r, 10, 99)}{choose(r, 'KQXMR')}{randint(r, 100, 999)}"
        rec: Record = {
            "created": iso_ms(created),
            "district": self.district_id,
            "ext": {"charter_school": choose(r, ("Y", "N", ""))},
            "high_grade": high,
            "id": self._new_id(created),
            "last_modified": iso_ms(created + randint(r, 60, 10**7)),
            "location": self._location(blank_street=False),
            "low_grade": low,
            "name": name,
            "phone": f"(718) 555-{randint(r, 1000, 9999)}",
            "principal": {
                "email": f"principal{randint(r, 1, 999)}@mailinator.com",
                "name": f"{choose(r, FIRST_NAMES)} {choose(r, LAST_NAMES)}",
            },
            "school_number": number,
            "sis_id": number,
            "state_id": str(randint(r, 100, 99999)),
        }
        if r.random() < 0.5:
            rec["nces_id"] = None
        return rec

    def term(self, year: int, created: float) -> Record:
        # The spec types term dates as datetimes: midnight UTC of the day.
        return {
            "district": self.district_id,
            "end_date": f"{year + 1}-06-{randint(self.rng, 10, 20)}T00:00:00.000Z",
            "id": self._new_id(created),
            "name": f"{year}-{year + 1} School Year",
            "start_date": f"{year}-08-{randint(self.rng, 15, 28)}T00:00:00.000Z",
        }

    def course(self, created: float) -> Record:
        r = self.rng
        rec: Record = {
            "district": self.district_id,
            "id": self._new_id(created),
            "name": choose(r, COURSE_NAMES),
        }
        number = r.random()
        if number < 0.8:
            rec["number"] = f"{choose(r, 'MSEHA')}{randint(r, 100, 499)}"
        elif number < 0.9:
            rec["number"] = ""
        else:
            rec["number"] = None
        return rec

    def resource(self, created: float) -> Record:
        r = self.rng
        return {
            "created": iso_ms(created),
            "district": self.district_id,
            "id": self._new_id(created),
            "resource_id": f"res-{randint(r, 10000, 99999)}",
            "roles": choose(r, (["student", "teacher"], ["teacher"], ["student"])),
            "title": choose(r, RESOURCE_TITLES),
            "updated": iso_ms(created + randint(r, 0, 10**6)),
        }

    def _user(self, created: float, role: str, body: Record, name: dict[str, str]) -> Record:
        rec: Record = {
            "created": iso_ms(created),
            "district": self.district_id,
            "id": self._new_id(created),
            "last_modified": iso_ms(created + randint(self.rng, 0, 10**7)),
            "name": name,
            "roles": {role: body},
        }
        # Contacts often have no email; then the key is omitted, not null.
        if (role != "contact" or self.rng.random() < 0.6) and self.rng.random() < 0.9:
            rec["email"] = self._email(name, "example.org")
        return rec

    def student(self, created: float) -> Record:
        r = self.rng
        name = self._person_name()
        schools = self._schools_for_person()
        sis = str(randint(r, 100000000, 999999999))
        year = randint(r, 2008, 2020)
        body: Record = {
            "credentials": {"district_username": f"{ascii_slug(name['first'])}{randint(r, 1, 99)}"},
            "dob": f"{randint(r, 1, 12)}/{randint(r, 1, 28)}/{year}",
            "enrollments": [],
            "ext": {"gifted_status": choose(r, ("Y", "N", ""))},
            "gender": choose(r, ("M", "F", "X")),
            "grade": choose(r, GRADES),
            "graduation_year": choose(r, ("", str(year + 18))),
            "hispanic_ethnicity": choose(r, ("Y", "N", "")),
            "location": self._location(blank_street=r.random() < 0.7),
            "race": choose(r, RACES),
            "school": schools[0],
            "schools": schools,
            "sis_id": sis,
            "state_id": str(randint(r, 100000000, 999999999)) if r.random() < 0.85 else None,
            "student_number": sis,
        }
        if r.random() < 0.6:
            body["ell_status"] = choose(r, ("Y", "N", ""))
        if r.random() < 0.5:
            body["frl_status"] = choose(r, ("Free", "Reduced", "Paid", ""))
        if r.random() < 0.3:
            body["iep_status"] = ""
        if r.random() < 0.15:
            lang, code = choose(r, LANGUAGES)
            body["home_language"], body["home_language_code"] = lang, code
        if r.random() < 0.1:
            body["enrollments"] = [
                {
                    "end_date": iso_ms(created + 3e7),
                    "school": schools[0],
                    "start_date": iso_ms(created),
                }
            ]
        return self._user(created, "student", body, name)

    def teacher(self, created: float) -> Record:
        r = self.rng
        name = self._person_name()
        schools = self._schools_for_person()
        body: Record = {
            "credentials": {"district_username": f"{ascii_slug(name['last'])}_{randint(r, 1, 99)}"},
            "ext": {"admin_permissions": choose(r, ("Y", "N"))},
            "legacy_id": self.mint(int(created) - 10**7),
            "school": schools[0],
            "schools": schools,
            "sis_id": str(randint(r, 1, 9999)),
            "state_id": str(randint(r, 100000000, 999999999)),
            "teacher_number": str(randint(r, 100000, 999999)),
            "title": choose(r, TEACHER_TITLES) if r.random() < 0.85 else None,
        }
        rec = self._user(created, "teacher", body, name)
        if r.random() < 0.1:
            rec = set_in(rec, ("roles", "staff"), self._staff_body(name, schools))
        return rec

    def _staff_body(self, name: dict[str, str], schools: list[str]) -> Record:
        r = self.rng
        body: Record = {
            "credentials": {"district_username": f"{ascii_slug(name['first'])}.staff"},
            "department": choose(r, DEPARTMENTS) if r.random() < 0.8 else None,
            "ext": {},
            "legacy_id": self.mint(1400000000 + randint(r, 0, 10**7)),
            "roles": [choose(r, STAFF_ROLES)],
            "schools": schools,
            "staff_id": str(randint(r, 1000, 9999)),
        }
        if r.random() < 0.7:
            body["title"] = choose(r, STAFF_ROLES)
        return body

    def staff(self, created: float) -> Record:
        name = self._person_name()
        return self._user(
            created, "staff", self._staff_body(name, self._schools_for_person()), name
        )

    def district_admin(self, created: float) -> Record:
        body = {
            "legacy_id": self.mint(int(created) - 10**7),
            "title": choose(self.rng, ADMIN_TITLES),
        }
        return self._user(created, "district_admin", body, self._person_name(with_middle=0.2))

    def contact(self, created: float, students: list[str]) -> Record:
        r = self.rng
        kind = choose(r, CONTACT_TYPES)
        relationship = choose(r, RELATIONSHIPS)
        name = {"last": f"{choose(r, FIRST_NAMES)} {choose(r, LAST_NAMES)}"}
        body: Record = {
            "legacy_id": self.mint(int(created) - 10**7),
            "phone": f"({randint(r, 200, 999)}) {randint(r, 200, 999)}-{randint(r, 1000, 9999)}"
            if r.random() < 0.8
            else "",
            "phone_type": choose(r, PHONE_TYPES),
            "relationship": relationship,
            "sis_id": "",
            "student_relationships": [
                {"relationship": relationship, "student": s, "type": kind} for s in students
            ],
            "students": list(students),
            "type": kind,
        }
        return self._user(created, "contact", body, name)

    def section(
        self, created: float, school: str, teacher: str | None, students: list[str]
    ) -> Record:
        r = self.rng
        grade = choose(r, GRADES)
        course_name = choose(r, COURSE_NAMES)
        number = str(randint(r, 100, 999))
        rec: Record = {
            "course": choose(r, self.course_ids) if self.course_ids else None,
            "created": iso_ms(created),
            "district": self.district_id,
            "grade": grade,
            "id": self._new_id(created),
            "last_modified": iso_ms(created + randint(r, 0, 10**7)),
            "name": f"{course_name}, Class {number} - {number} - {choose(r, 'ABCDS')}. Block",
            "period": str(randint(r, 1, 8)),
            "school": school,
            "section_number": number,
            "sis_id": str(randint(r, 100, 99999)),
            "students": sorted(students),
            "subject": choose(r, SUBJECTS),
            "teacher": teacher,
            "teachers": [teacher] if teacher else [],
            "term_id": choose(r, self.term_ids) if self.term_ids else None,
        }
        if r.random() < 0.3:
            rec["ext"] = {"sis_section_code": f"{number}-{randint(r, 1, 9)}"}
        return rec


# ---- edits -----------------------------------------------------------------------------------
# An edit takes (roster, record) and returns a changed record, or None when it does not apply.

Edit = Callable[[Roster, Record], Record | None]


def _other(rng: random.Random, choices: tuple[Any, ...], current: Any) -> Any:
    options = [c for c in choices if c != current]
    return options[int(rng.random() * len(options))]


def _role_of(rec: Record) -> str:
    return next(iter(rec["roles"]))


def edit_name(ro: Roster, rec: Record) -> Record:
    name = dict(rec["name"])
    pick = ro.rng.random()
    if pick < 0.6 or "first" not in name:
        name["first" if "first" in name else "last"] = _other(
            ro.rng, FIRST_NAMES, name.get("first")
        )
    elif pick < 0.8:
        name["last"] = _other(ro.rng, LAST_NAMES, name.get("last"))
    elif "middle" in name:
        del name["middle"]
    else:
        name["middle"] = choose(ro.rng, MIDDLE_INITIALS)
    return set_in(rec, ("name",), name)


def edit_email(ro: Roster, rec: Record) -> Record:
    pick = ro.rng.random()
    if "email" in rec and pick < 0.15:
        return drop_in(rec, ("email",))
    return set_in(
        rec, ("email",), ro._email(rec["name"], choose(ro.rng, ("example.com", "k12.org")))
    )


def _edit_role_field(field: str, values: tuple[Any, ...]) -> Edit:
    def edit(ro: Roster, rec: Record) -> Record:
        role = _role_of(rec)
        current = get_in(rec, ("roles", role, field), None)
        return set_in(rec, ("roles", role, field), _other(ro.rng, values, current))

    return edit


def _edit_role_ext(key: str, values: tuple[str, ...]) -> Edit:
    def edit(ro: Roster, rec: Record) -> Record:
        role = _role_of(rec)
        current = get_in(rec, ("roles", role, "ext", key), None)
        return set_in(rec, ("roles", role, "ext", key), _other(ro.rng, values, current))

    return edit


def edit_schools(ro: Roster, rec: Record) -> Record | None:
    role = _role_of(rec)
    schools = list(get_in(rec, ("roles", role, "schools"), []))
    candidates = [s for s in ro.school_ids if s not in schools]
    if len(schools) > 1 and (ro.rng.random() < 0.5 or not candidates):
        schools.remove(choose(ro.rng, schools))
    elif candidates:
        schools = sorted([*schools, choose(ro.rng, candidates)])
    else:
        return None
    out = set_in(rec, ("roles", role, "schools"), schools)
    if role in ("student", "teacher") and (
        out["roles"][role].get("school") not in schools or ro.rng.random() < 0.3
    ):
        out = set_in(out, ("roles", role, "school"), choose(ro.rng, schools))
    return out


def edit_state_id(ro: Roster, rec: Record) -> Record:
    role = _role_of(rec)
    current = get_in(rec, ("roles", role, "state_id"), None)
    value = None if current is not None else str(randint(ro.rng, 100000000, 999999999))
    return set_in(rec, ("roles", role, "state_id"), value)


def edit_zip(ro: Roster, rec: Record) -> Record:
    zip_code = f"11{randint(ro.rng, 200, 699)}"
    return set_in(rec, ("roles", "student", "location", "zip"), zip_code)


def edit_username(ro: Roster, rec: Record) -> Record:
    role = _role_of(rec)
    first = ascii_slug(rec["name"].get("first", "")) or "user"
    value = f"{first}{randint(ro.rng, 100, 999)}"
    return set_in(rec, ("roles", role, "credentials", "district_username"), value)


def edit_graduation_year(ro: Roster, rec: Record) -> Record:
    current = get_in(rec, ("roles", "student", "graduation_year"), "")
    value = "" if current else str(randint(ro.rng, 2027, 2038))
    return set_in(rec, ("roles", "student", "graduation_year"), value)


def edit_title(ro: Roster, rec: Record) -> Record:
    role = _role_of(rec)
    titles = {"teacher": TEACHER_TITLES, "staff": STAFF_ROLES, "district_admin": ADMIN_TITLES}
    current = get_in(rec, ("roles", role, "title"), None)
    if current is not None and ro.rng.random() < 0.2:
        return set_in(rec, ("roles", role, "title"), None)
    return set_in(rec, ("roles", role, "title"), _other(ro.rng, titles[role], current))


def edit_staff_roles(ro: Roster, rec: Record) -> Record:
    roles = list(get_in(rec, ("roles", "staff", "roles"), []))
    extra = _other(ro.rng, STAFF_ROLES, None)
    roles = roles[:-1] if len(roles) > 1 else sorted({*roles, extra})
    return set_in(rec, ("roles", "staff", "roles"), roles)


def edit_contact_students(ro: Roster, rec: Record) -> Record | None:
    body = rec["roles"]["contact"]
    relationships = list(body["student_relationships"])
    if len(relationships) > 1 and ro.rng.random() < 0.5:
        relationships.pop(ro.rng.randrange(len(relationships)))
    else:
        relationships.append(
            {
                "relationship": choose(ro.rng, RELATIONSHIPS),
                "student": ro.pick_student(),
                "type": choose(ro.rng, CONTACT_TYPES),
            }
        )
    out = set_in(rec, ("roles", "contact", "student_relationships"), relationships)
    return set_in(out, ("roles", "contact", "students"), [x["student"] for x in relationships])


def edit_phone(ro: Roster, rec: Record) -> Record:
    current = get_in(rec, ("roles", "contact", "phone"), "")
    value = "" if current and ro.rng.random() < 0.3 else f"(347) 555-{randint(ro.rng, 1000, 9999)}"
    return set_in(rec, ("roles", "contact", "phone"), value)


# Applied on top of a primary edit: keys that did not exist before (so absent from
# previous_attributes).
def add_home_language(ro: Roster, rec: Record) -> Record | None:
    if "home_language" in rec["roles"].get("student", {"home_language": 1}):
        return None
    lang, code = choose(ro.rng, LANGUAGES)
    out = set_in(rec, ("roles", "student", "home_language"), lang)
    return set_in(out, ("roles", "student", "home_language_code"), code)


def add_lms_status(ro: Roster, rec: Record) -> Record | None:
    if "lms_status" in rec:
        return None
    return set_in(rec, ("lms_status",), {"synced_in_lms": ro.rng.random() < 0.5})


def add_ext_key(ro: Roster, rec: Record) -> Record | None:
    role = _role_of(rec)
    ext = get_in(rec, ("roles", role, "ext"), MISSING)
    if ext is MISSING or "sis_flag" in ext:
        return None
    return set_in(rec, ("roles", role, "ext", "sis_flag"), choose(ro.rng, ("1", "2", "")))


def add_preferred_name(ro: Roster, rec: Record) -> Record | None:
    if "preferred_name" in rec["roles"].get("student", {"preferred_name": 1}):
        return None
    return set_in(rec, ("roles", "student", "preferred_name"), {"first": "Ace 🚀"})


USER_ADDITIONS: tuple[Edit, ...] = (
    add_home_language,
    add_lms_status,
    add_ext_key,
    add_preferred_name,
)

USER_EDITS: dict[str, tuple[tuple[float, Edit], ...]] = {
    "student": (
        (6, _edit_role_field("grade", GRADES)),
        (5, _edit_role_ext("gifted_status", ("Y", "N", ""))),
        (3, _edit_role_field("gender", ("M", "F", "X"))),
        (3, edit_schools),
        (3, edit_name),
        (2, edit_email),
        (2, edit_state_id),
        (2, edit_zip),
        (1, edit_username),
        (1, _edit_role_field("ell_status", ("Y", "N", ""))),
        (1, _edit_role_field("frl_status", ("Free", "Reduced", "Paid", ""))),
        (1, _edit_role_field("race", RACES)),
        (1, edit_graduation_year),
    ),
    "teacher": (
        (3, edit_title),
        (3, edit_schools),
        (2, _edit_role_ext("admin_permissions", ("Y", "N"))),
        (2, edit_name),
        (2, edit_email),
        (1, _edit_role_field("teacher_number", tuple(str(n) for n in range(100000, 100050)))),
    ),
    "staff": (
        (3, _edit_role_field("department", (*DEPARTMENTS, None))),
        (2, edit_title),
        (2, edit_staff_roles),
        (2, edit_schools),
        (1, edit_name),
    ),
    "district_admin": ((3, edit_title), (1, edit_email), (1, edit_name)),
    "contact": (
        (3, edit_phone),
        (2, _edit_role_field("phone_type", PHONE_TYPES)),
        (2, edit_contact_students),
        (1, edit_name),
        (1, edit_email),
    ),
}


def edit_roster(ro: Roster, rec: Record) -> Record:
    students = list(rec["students"])
    if students and ro.rng.random() < 0.45:
        for _ in range(randint(ro.rng, 1, min(3, len(students)))):
            students.pop(ro.rng.randrange(len(students)))
    else:
        for _ in range(randint(ro.rng, 1, 3)):
            student = ro.pick_student()
            if student not in students:
                students.append(student)
        students.sort()
    return set_in(rec, ("students",), students)


def edit_section_teacher(ro: Roster, rec: Record) -> Record:
    teacher = ro.pick_teacher()
    out = set_in(rec, ("teacher",), teacher)
    teachers = [teacher, *[t for t in rec.get("teachers", []) if t != teacher][:1]]
    return set_in(out, ("teachers",), teachers)


def _edit_field(field: str, values: tuple[Any, ...]) -> Edit:
    def edit(ro: Roster, rec: Record) -> Record:
        return set_in(rec, (field,), _other(ro.rng, values, rec.get(field)))

    return edit


def edit_section_ext(ro: Roster, rec: Record) -> Record | None:
    if "ext" not in rec:
        return None
    code = f"{rec.get('section_number', '0')}-{randint(ro.rng, 1, 9)}"
    return set_in(rec, ("ext", "sis_section_code"), code)


def edit_principal(ro: Roster, rec: Record) -> Record:
    principal = dict(rec.get("principal") or {})
    principal["name"] = f"{choose(ro.rng, FIRST_NAMES)} {choose(ro.rng, LAST_NAMES)}"
    return set_in(rec, ("principal",), principal)


def edit_school_ext(ro: Roster, rec: Record) -> Record:
    current = get_in(rec, ("ext", "charter_school"), None)
    return set_in(rec, ("ext", "charter_school"), _other(ro.rng, ("Y", "N", ""), current))


def edit_nces(ro: Roster, rec: Record) -> Record:
    value = None if rec.get("nces_id") else f"36{randint(ro.rng, 10**9, 10**10 - 1)}"
    return set_in(rec, ("nces_id",), value)


def edit_term_end(ro: Roster, rec: Record) -> Record:
    year = rec["end_date"][:4]
    return set_in(rec, ("end_date",), f"{year}-06-{randint(ro.rng, 10, 28)}T00:00:00.000Z")


def edit_resource_roles(ro: Roster, rec: Record) -> Record:
    options = (["student", "teacher"], ["teacher"], ["student"])
    return set_in(rec, ("roles",), _other(ro.rng, options, rec["roles"]))


def edit_login_methods(ro: Roster, rec: Record) -> Record:
    options = (["Clever Passwords"], ["Clever Passwords", "Google"], ["Google", "SAML"])
    return set_in(rec, ("login_methods",), _other(ro.rng, options, rec["login_methods"]))


RECORD_EDITS: dict[str, tuple[tuple[float, Edit], ...]] = {
    "sections": (
        (10, edit_roster),
        (2, edit_section_teacher),
        (1, _edit_field("period", tuple(str(p) for p in range(1, 9)))),
        (1, _edit_field("subject", SUBJECTS)),
        (1, _edit_field("grade", GRADES)),
        (1, edit_section_ext),
    ),
    "schools": (
        (3, edit_school_ext),
        (2, _edit_field("low_grade", ("Kindergarten", "PreKindergarten", "Ungraded", "6"))),
        (2, _edit_field("high_grade", ("5", "8", "12", "Ungraded"))),
        (2, edit_principal),
        (1, _edit_field("phone", ("(718) 555-4567", "(718) 555-8989", "", None))),
        (1, edit_nces),
    ),
    "terms": (
        (2, edit_term_end),
        (1, _edit_field("name", ("Fall Semester", "Spring Semester", "Full Year", "Année"))),
    ),
    "courses": (
        (2, _edit_field("name", COURSE_NAMES)),
        (1, _edit_field("number", ("M101", "S220", "", None))),
    ),
    "resources": (
        (2, _edit_field("title", RESOURCE_TITLES)),
        (1, edit_resource_roles),
    ),
    "districts": ((1, edit_login_methods),),
}
