"""A stateful model of one account: launches, releases, sweeps and bystanders, under a controlled clock.

Hypothesis drives random sequences of: launching a session (with or without
an instance), releasing one, moving the clock (freely and onto the exact
second an expiry plus grace falls due), sweeping (for real and dry-run),
planting foreign look-alikes (another base, malformed and near-miss names,
keep-tagged sessions, legacy ec2test names), running a bystander instance in
some group and terminating instances, and leaving behind what a session's
tests make (volumes, interfaces, AMIs with their snapshots, snapshots,
Elastic IPs), tied to their session by its tag alone; and CI jobs, GitHub's
(``queued`` makes one session per job, ``completed`` releases it) and
GitLab's (a job makes sessions, its hook releases them), whose end may come
before, during or long after their sessions' lives; an attacker's job ending on a runner
named like a live session's, and an operator keeping a session by tagging something of it
in another swept region. The model says, for every resource,
whether it must exist or must be gone; after every step the account (moto
over HTTP, with AWS's DependencyViolation and terminate rules modelled) is
compared with it (the moto server: see conftest.account). The model computes expiries from its own clock and its own
formatting, never from the product's parser.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import github_jobs
import gitlab_jobs
import interruption
import sessions as session_routes
from errors import JobOver, NoCapacity, SessionKept, SessionNotFound
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from launch import create_session, release_session
from session_naming import KEEP_TAG, SESSION_TAG, SessionName, clients
from session_naming.github import runner_name
from session_naming.settings import load_collector, load_launcher
from sweep import sweep

from tests.reliability.conftest import examples
from tests.reliability.tally import TALLY
from tests.support.aws_rules import model_aws_rules
from tests.support.capacity import Capacity
from tests.support.deliveries import iso
from tests.support.handlers import load_fixture
from tests.support.seed import left_behind, seed_left_behind
from tools.local_stack import make_launcher_stack

REGION = "us-east-1"
OTHER_REGION = "eu-west-1"  # swept too: a keep tag there keeps a session here
BASE = "ec2-test-runner"
GRACE = timedelta(seconds=300)
T0 = datetime(2026, 11, 24, 22, 0, 0, tzinfo=UTC)
IMAGE = "ami-0123456789abcdef0"  # moto accepts any image id; describing its catalogue costs seconds
NAMED = ("instance", "parameter", "key_pair", "security_group")
LEFT_BEHIND = ("volume", "network_interface", "image", "snapshot", "address")
KINDS = (*NAMED, *LEFT_BEHIND)


def stamp(moment: datetime) -> str:
    """The model's own rendering of an expiry (DESIGN.md: YYYYMMDDTHHMMSSZ)."""
    return (
        f"{moment.year:04d}{moment.month:02d}{moment.day:02d}T{moment.hour:02d}{moment.minute:02d}{moment.second:02d}Z"
    )


def tags(name: str, *, keep: bool = False, extra=()) -> list[dict]:
    found = [{"Key": SESSION_TAG, "Value": name}, *extra]
    return [*found, {"Key": KEEP_TAG, "Value": "true"}] if keep else found


@dataclass
class Session:
    name: str
    expires: datetime
    key: str
    group: str
    parameter: str | None
    instance: str | None
    gone: set[str] = field(default_factory=set)  # named kinds the model says no longer exist
    left: dict[str, set[str]] = field(default_factory=lambda: {kind: set() for kind in LEFT_BEHIND})
    left_gone: set[str] = field(default_factory=set)  # identifiers of left-behind resources now gone
    kept: bool = False  # an operator tagged a resource of it keep, in this region or another

    def ident(self, kind: str) -> str | None:
        return {
            "instance": self.instance,
            "parameter": self.parameter,
            "key_pair": self.key,
            "security_group": self.group,
        }[kind]

    def present(self) -> dict[str, str]:
        """The named kinds still there, one identifier each."""
        return {kind: self.ident(kind) for kind in NAMED if self.ident(kind) and kind not in self.gone}

    def still_left(self) -> dict[str, set[str]]:
        """The left-behind resources still there, by kind (only those the session has)."""
        return {kind: idents - self.left_gone for kind, idents in self.left.items() if idents - self.left_gone}


# Names an over-eager collector might take for ours: each keeps BASE visible and
# an expiry in the past, and each is outside the grammar or outside the bases.
def _month_13(t, e):
    return f"{BASE}/{e.year:04d}1301T000000Z/{t}"


LOOK_ALIKES = {
    "other-base": lambda t, e: f"other-team/{stamp(e)}/{t}",
    "base-prefix": lambda t, e: f"{BASE}-2/{stamp(e)}/{t}",
    "base-suffix": lambda t, e: f"x{BASE}/{stamp(e)}/{t}",
    "month-13": _month_13,
    "15-hex": lambda t, e: f"{BASE}/{stamp(e)}/{t[:15]}",
    "17-hex": lambda t, e: f"{BASE}/{stamp(e)}/{t}0",
    "upper-hex": lambda t, e: f"{BASE}/{stamp(e)}/{t.upper()}",
    "lower-z": lambda t, e: f"{BASE}/{stamp(e)[:-1]}z/{t}",
    "no-z": lambda t, e: f"{BASE}/{stamp(e)[:-1]}/{t}",
    "trailing": lambda t, e: f"{BASE}/{stamp(e)}/{t}/x",
    "double-slash": lambda t, e: f"{BASE}//{stamp(e)}/{t}",
    "legacy-bad-date": lambda t, e: f"{BASE}/{e.year:04d}-13-01-1200/{t[:8]}",
    "legacy-other-base": lambda t, e: f"other-team/{e:%Y-%m-%d-%H%M}/{t[:8]}",
    "embedded": lambda t, e: f"old-{BASE}/{stamp(e)}/{t}-copy",
}


class AccountModel(RuleBasedStateMachine):
    def __init__(self, account):
        super().__init__()
        TALLY.add(examples=1)
        account.reset()
        self.clients = account.clients
        self.ec2, self.ssm = self.clients("ec2", REGION), self.clients("ssm", REGION)
        self.capacity = Capacity.on(self.ec2)
        self.now = T0
        template = self.ec2.create_launch_template(
            LaunchTemplateName="ec2-sessions-runner", LaunchTemplateData={"ImageId": IMAGE, "InstanceType": "t3.micro"}
        )["LaunchTemplate"]["LaunchTemplateId"]
        stack = make_launcher_stack(self.clients, "ModelWebhookSecret0123456789abcdefghijklmnopqr", REGION)
        self.launcher = load_launcher(
            {
                "SESSION_BASES": BASE,
                "LAUNCH_TEMPLATE_ID": template,
                "MAX_LIVE_SESSIONS": "2000",
                "REGIONS": f"{REGION},{OTHER_REGION}",
                **stack,
            }
        )
        # The job routes call the launcher's own clients; AWS's rules go on them too (once per client).
        launcher_ec2 = clients.client("ec2", REGION)
        if not getattr(launcher_ec2, "aws_rules_modelled", False):
            model_aws_rules(launcher_ec2)
            launcher_ec2.aws_rules_modelled = True
        self.jobs: dict[tuple[str, int], dict] = {}  # (system, job) -> {"over": bool, "sessions": set of names}
        self.collector = load_collector(
            {"SESSION_BASES": BASE, "REGIONS": f"{REGION},{OTHER_REGION}", "GRACE_SECONDS": "300"}
        )
        self.sessions: dict[str, Session] = {}
        self.protected: dict[tuple[str, str], str] = {}  # (kind, ident) -> why it must never go
        self.legacy_keys: dict[str, datetime] = {}  # own-base untagged ec2test key pairs: swept when due
        self.legacy_gone: set[str] = set()
        self.alive: dict[str, set[str]] = {}  # instance id -> groups its interface uses
        self.bystanders: set[str] = set()  # instances that are no session's

    # ---- helpers -------------------------------------------------------------------------

    def due(self, expires: datetime, now: datetime) -> bool:
        return now >= expires + GRACE

    def users(self, group: str, ignoring: set[str] = frozenset()) -> set[str]:
        return {i for i, groups in self.alive.items() if group in groups and i not in ignoring}

    def run_instance(self, name_tag: str, group: str, extra_tags=()) -> str:
        instance = self.ec2.run_instances(
            ImageId=IMAGE,
            MinCount=1,
            MaxCount=1,
            SecurityGroupIds=[group],
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name_tag}, *extra_tags]}],
        )["Instances"][0]["InstanceId"]
        self.alive[instance] = {group}
        return instance

    def live_groups(self) -> list[str]:
        groups = [s.group for s in self.sessions.values() if "security_group" not in s.gone]
        return groups + [ident for kind, ident in self.protected if kind == "security_group"]

    # ---- rules -----------------------------------------------------------------------------

    @rule(minutes=st.integers(5, 180), instance=st.booleans(), cidrs=st.sampled_from([(), ("203.0.113.0/24",)]))
    def launch(self, minutes, instance, cidrs):
        try:
            answer = create_session(
                self.clients,
                self.launcher,
                BASE,
                timedelta(minutes=minutes),
                self.now,
                slots=None,
                profile=self.launcher.profiles["default"] if instance else None,
                ingress_cidrs=cidrs,
            )
        except NoCapacity:
            assert instance and self.capacity.exhausted, "no capacity, though EC2 had some"
            return  # rolled back: the invariant checks that nothing of it is left
        expires = self.now + timedelta(minutes=minutes)
        assert answer["expires_at"] == f"{expires:%Y-%m-%dT%H:%M:%SZ}"
        name = answer["session"]
        assert name.startswith(f"{BASE}/{stamp(expires)}/") and name not in self.sessions
        ident = answer["instances"][0]["id"] if instance else None
        self.sessions[name] = Session(
            name, expires, name, answer["security_group"]["id"], answer["private_key_parameter"], ident
        )
        if ident:
            self.alive[ident] = {answer["security_group"]["id"]}

    def _made(self, answer: dict, expires: datetime) -> str:
        """Record a session the launcher answered; its expiry by the model's own arithmetic."""
        name = answer["session"]
        assert answer["expires_at"] == f"{expires:%Y-%m-%dT%H:%M:%SZ}"
        assert name.startswith(f"{BASE}/{stamp(expires)}/") and name not in self.sessions
        ident = answer["instances"][0]["id"] if answer["instances"] else None
        self.sessions[name] = Session(
            name, expires, name, answer["security_group"]["id"], answer["private_key_parameter"], ident
        )
        if ident:
            self.alive[ident] = {answer["security_group"]["id"]}
        return name

    def _released(self, session: Session) -> None:
        """A release went through: all of it is gone but a group another instance still uses."""
        present = session.present()
        self._gone(session, "instance", "parameter", "key_pair")
        session.left_gone |= set().union(*session.left.values())
        if "security_group" in present and not self.users(session.group):
            self._gone(session, "security_group")

    @rule(system=st.sampled_from(["github", "gitlab"]), job=st.integers(1, 3))
    def job_asks_for_a_session(self, system, job):
        record = self.jobs.setdefault((system, job), {"over": False, "sessions": set()})
        if system == "gitlab":
            body = {"lifetime_minutes": 45, "gitlab_job": {"project_id": 380, "job_id": job}}
            try:
                answer = session_routes.create(self.launcher, json.dumps(body).encode(), self.now)
            except JobOver:
                assert record["over"], "a running GitLab job was refused"
                return
            assert not record["over"], "a GitLab job that is over got a session"
            record["sessions"].add(self._made(answer, self.now + timedelta(minutes=45)))
            return
        status, answer = github_jobs.handle(self.launcher, "workflow_job", self._delivery("queued", job), self.now)
        if record["over"]:
            assert status == 202, (status, answer)
        elif record["sessions"]:  # one session per job, however many deliveries
            assert (status, answer["session"]) == (200, next(iter(record["sessions"]))), (status, answer)
        else:
            assert status == 201, (status, answer)
            record["sessions"].add(self._made(answer, self.now + self.launcher.default_lifetime))

    @rule(system=st.sampled_from(["github", "gitlab"]), job=st.integers(1, 3), finished=st.booleans())
    def job_hook_arrives(self, system, job, finished):
        """A job's end, at any point of its sessions' lives: before, during, after release or expiry."""
        record = self.jobs.setdefault((system, job), {"over": False, "sessions": set()})
        if system == "gitlab":
            hook = json.loads(load_fixture("gitlab/job-hook.json"))
            hook.update(project_id=380, build_id=job, build_status="canceled" if finished else "running")
            status, answer = gitlab_jobs.handle(self.launcher, "Job Hook", json.dumps(hook).encode(), self.now)
        elif finished:
            status, answer = github_jobs.handle(
                self.launcher, "workflow_job", self._delivery("completed", job), self.now
            )
        else:
            status, answer = github_jobs.handle(
                self.launcher, "workflow_job", self._delivery("in_progress", job), self.now
            )
        if not finished:
            # A GitLab job still running is ignored; a GitHub job's runner is no session's: nothing to bind.
            expected = (200, {"bound": []}) if system == "github" else (202, {"ignored": "the job has not finished"})
            assert (status, answer) == expected, (status, answer)
            return
        there = {
            name for name in record["sessions"] if {"key_pair", "security_group"} & set(self.sessions[name].present())
        }
        expected = {name for name in there if not self.sessions[name].kept}
        kept = there - expected
        assert status == 200 and set(answer["released"]) == expected, (answer, expected)
        assert set(answer["kept"]) == kept, (answer, kept)
        for name in expected:
            self._released(self.sessions[name])
        record["over"] = True

    def _delivery(self, action: str, job: int) -> bytes:
        fixture = {
            "queued": "workflow_job-queued.payload.json",
            "in_progress": "workflow_job-in_progress.payload.json",
            "completed": "workflow_job-completed.success.with-organization.payload.json",
        }[action]
        payload = json.loads(load_fixture(f"github/{fixture}"))
        payload["workflow_job"].update(id=job, labels=["self-hosted", "ec2-session"], created_at=iso(self.now))
        return json.dumps(payload).encode()

    @precondition(lambda self: self.sessions)
    @rule(pick=st.integers(0, 10**6))
    def runner_name_from_another_job(self, pick):
        """A job ends whose runner carries a live session's runner name (anyone may register one so named)."""
        session = sorted(self.sessions.values(), key=lambda s: s.name)[pick % len(self.sessions)]
        payload = json.loads(self._delivery("completed", 1000 + pick))
        payload["workflow_job"]["runner_name"] = runner_name(SessionName(session.name))
        status, answer = github_jobs.handle(self.launcher, "workflow_job", json.dumps(payload).encode(), self.now)
        assert (status, answer) == (200, {"released": [], "kept": []}), answer

    @precondition(lambda self: self.sessions)
    @rule(pick=st.integers(0, 10**6))
    def keep_in_another_region(self, pick):
        """An operator keeps a session by tagging something of it in another swept region."""
        session = sorted(self.sessions.values(), key=lambda s: s.name)[pick % len(self.sessions)]
        if session.kept:
            return
        self.clients("ec2", OTHER_REGION).create_key_pair(
            KeyName=session.name,
            KeyType="ed25519",
            TagSpecifications=[{"ResourceType": "key-pair", "Tags": tags(session.name, keep=True)}],
        )
        session.kept = True

    @precondition(lambda self: self.sessions)
    @rule(pick=st.integers(0, 10**6))
    def release(self, pick):
        session = sorted(self.sessions.values(), key=lambda s: s.name)[pick % len(self.sessions)]
        present = session.present()
        if session.kept:
            try:
                release_session(self.clients, self.launcher, session.name)
            except SessionKept:
                return
            raise AssertionError(f"releasing {session.name}, kept in {OTHER_REGION}, did not answer kept")
        if not present and not session.still_left():
            try:
                release_session(self.clients, self.launcher, session.name)
            except SessionNotFound:
                return
            raise AssertionError(f"releasing {session.name}, of which nothing is left, did not answer NotFound")
        answer = release_session(self.clients, self.launcher, session.name)
        self._gone(session, "instance", "parameter", "key_pair")
        session.left_gone |= set().union(*session.left.values())  # none attached: all released
        if "security_group" in present:
            if self.users(session.group):
                assert answer["left_to_collector"] == [
                    {"kind": "security_group", "id": session.group, "reason": "in-use"}
                ], answer
            else:
                self._gone(session, "security_group")
        assert answer["failed"] == [], answer

    @rule(gone=st.booleans())
    def capacity_changes(self, gone):
        """EC2 runs out of on-demand capacity for the profile's type, or gets it back."""
        if gone:
            TALLY.add(faults=1)
            self.capacity.exhaust("on-demand")
        else:
            self.capacity.restore()

    @precondition(lambda self: any("instance" in s.present() for s in self.sessions.values()))
    @rule(pick=st.integers(0, 10**6))
    def spot_interruption(self, pick):
        """EC2 warns that it takes a session's instance back: the session is released at once."""
        running = sorted((s for s in self.sessions.values() if "instance" in s.present()), key=lambda s: s.name)
        session = running[pick % len(running)]
        event = {
            "source": "aws.ec2",
            "detail-type": "EC2 Spot Instance Interruption Warning",
            "detail": {"instance-id": session.instance, "instance-action": "terminate"},
        }
        answer = interruption.handle(self.launcher, event, self.now)
        if session.kept:
            assert answer.get("kept") is True, answer
            return
        assert answer["released"] == [session.name], answer
        self._released(session)

    @rule(seconds=st.integers(1, 4 * 3600))
    def advance(self, seconds):
        self.now += timedelta(seconds=seconds)

    @precondition(lambda self: self.sessions or self.legacy_keys)
    @rule(pick=st.integers(0, 10**6), offset=st.sampled_from([-1, 0, 1]))
    def advance_to_the_edge(self, pick, offset):
        """Onto the very second a session falls due (or one either side): where off-by-ones live."""
        expiries = sorted({s.expires for s in self.sessions.values()} | set(self.legacy_keys.values()))
        target = expiries[pick % len(expiries)] + GRACE + timedelta(seconds=offset)
        if target > self.now:
            self.now = target

    @rule(dry_run=st.booleans())
    def collect(self, dry_run):
        before = self.inventory() if dry_run else None
        expected = self.expected_sweep()
        summary = sweep(self.clients, self.collector, self.now, lambda: 900.0, dry_run)
        report = summary["regions"][REGION]
        assert summary["totals"]["failed"] == 0, [r["failed"] for r in report.values()]
        deleted = {kind: set(report[kind]["deleted"]) for kind in KINDS}
        if dry_run:
            assert self.inventory() == before, "a dry run changed the account"
            # A rehearsal cannot free the groups that due instances hold: it reports at most a real run's deletions.
            for kind in KINDS:
                assert deleted[kind] <= expected[kind], (kind, deleted[kind] - expected[kind])
            assert {k: deleted[k] for k in KINDS if k != "security_group"} == {
                k: expected[k] for k in KINDS if k != "security_group"
            }
            return
        assert deleted == expected, {k: (deleted[k] ^ expected[k]) for k in KINDS}
        self.apply_sweep(expected)

    @rule(
        kind=st.sampled_from(sorted(LOOK_ALIKES) + ["keep-tagged", "legacy-own-base"]),
        age=st.integers(1, 30 * 24 * 3600),
        keep_on=st.sampled_from(["key_pair", "security_group", "parameter", "volume"]),
    )
    def plant_foreign(self, kind, age, keep_on):
        expires = (self.now - timedelta(seconds=age)).replace(second=0)
        token = secrets.token_hex(8)
        ec2 = self.ec2
        if kind == "legacy-own-base":
            # ec2test made untagged key pairs and groups; the key pair may go when due,
            # the untagged group waits for an operator (SWEEP_UNTAGGED).
            expires = expires + timedelta(hours=6) if age % 2 else expires
            name = f"{BASE}/{expires:%Y-%m-%d-%H%M}/{token[:8]}"
            ec2.create_key_pair(KeyName=name, KeyType="ed25519")
            self.legacy_keys[name] = expires
            group = ec2.create_security_group(GroupName=name, Description="ec2test")["GroupId"]
            self.protected["security_group", group] = kind
            return
        name = f"{BASE}/{stamp(expires)}/{token}" if kind == "keep-tagged" else LOOK_ALIKES[kind](token, expires)
        keep = kind == "keep-tagged"
        key_tags = tags(name, keep=keep and keep_on == "key_pair")
        ec2.create_key_pair(
            KeyName=name, KeyType="ed25519", TagSpecifications=[{"ResourceType": "key-pair", "Tags": key_tags}]
        )
        self.protected["key_pair", name] = kind
        group = ec2.create_security_group(
            GroupName=name,
            Description="look-alike",
            TagSpecifications=[
                {"ResourceType": "security-group", "Tags": tags(name, keep=keep and keep_on == "security_group")}
            ],
        )["GroupId"]
        self.protected["security_group", group] = kind
        # What a look-alike session's tests left: a volume carrying its (look-alike) session tag.
        volume = seed_left_behind(self.clients, REGION, tags(name, keep=keep and keep_on == "volume"), ["volume"])
        self.protected["volume", volume["volume"]] = kind
        if "//" not in name and name.count("/") < 14:
            parameter = f"/{name}/private-key"
            self.ssm.put_parameter(
                Name=parameter, Value="x", Type="SecureString", Tags=tags(name, keep=keep and keep_on == "parameter")
            )
            self.protected["parameter", parameter] = kind
        elif keep and keep_on == "parameter":
            raise AssertionError("unreachable: keep-tagged names are well-formed")

    @precondition(lambda self: self.sessions)
    @rule(pick=st.integers(0, 10**6), kind=st.sampled_from(LEFT_BEHIND))
    def leave_behind(self, pick, kind):
        """A test on the session made something the launcher never knew of, tagged with the session."""
        session = sorted(self.sessions.values(), key=lambda s: s.name)[pick % len(self.sessions)]
        ids = seed_left_behind(self.clients, REGION, tags(session.name), [kind])
        session.left[kind].add(ids[kind])
        if "image_snapshot" in ids:  # the AMI's own snapshot, tagged as AWS's CreateImage would tag it
            session.left["snapshot"].add(ids["image_snapshot"])

    @precondition(lambda self: self.live_groups())
    @rule(pick=st.integers(0, 10**6))
    def attach_instance_to_group(self, pick):
        groups = self.live_groups()
        group = groups[pick % len(groups)]
        instance = self.run_instance("ci-bystander", group)
        self.bystanders.add(instance)
        self.protected["instance", instance] = "bystander"

    @precondition(lambda self: self.alive)
    @rule(pick=st.integers(0, 10**6))
    def terminate_instance(self, pick):
        instance = sorted(self.alive)[pick % len(self.alive)]
        self.ec2.terminate_instances(InstanceIds=[instance])
        self.alive.pop(instance)
        self.protected.pop(("instance", instance), None)
        self.bystanders.discard(instance)
        for session in self.sessions.values():
            if session.instance == instance:
                self._gone(session, "instance")

    # ---- the model's bookkeeping ---------------------------------------------------------

    def _gone(self, session: Session, *kinds: str) -> None:
        for kind in kinds:
            if session.ident(kind) is not None:
                session.gone.add(kind)
                if kind == "instance":
                    self.alive.pop(session.instance, None)

    def expected_sweep(self) -> dict[str, set[str]]:
        """What one real sweep at ``now`` must delete, by kind, named as the summary names them."""
        expected = {kind: set() for kind in KINDS}
        due = [s for s in self.sessions.values() if self.due(s.expires, self.now) and not s.kept]
        ending = set()
        for session in due:
            for kind in ("instance", "parameter", "key_pair", *session.still_left()):
                if kind in session.present() or kind in session.still_left():
                    expected[kind].add(session.name)
            if "instance" in session.present():
                ending.add(session.instance)
        expected["key_pair"] |= {
            name
            for name, expires in self.legacy_keys.items()
            if name not in self.legacy_gone and self.due(expires, self.now)
        }
        for session in due:  # instances go first, so a group they held is free in the same run
            if "security_group" in session.present() and not self.users(session.group, ignoring=ending):
                expected["security_group"].add(session.name)
        return expected

    def apply_sweep(self, deleted: dict[str, set[str]]) -> None:
        for session in self.sessions.values():
            self._gone(session, *(kind for kind in NAMED if session.name in deleted[kind]))
            for kind, idents in session.still_left().items():
                if session.name in deleted[kind]:  # a session's every resource of a kind goes in one sweep
                    session.left_gone |= idents
        self.legacy_gone |= deleted["key_pair"] & set(self.legacy_keys)

    def expectation(self) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
        """(must exist, must be gone), by kind, as identifiers the inventory reports."""
        must = {kind: set() for kind in KINDS}
        gone = {kind: set() for kind in KINDS}
        for session in self.sessions.values():
            for kind in NAMED:
                ident = session.ident(kind)
                if ident is not None:
                    (gone if kind in session.gone else must)[kind].add(ident)
            for kind, idents in session.left.items():
                must[kind] |= idents - session.left_gone
                gone[kind] |= idents & session.left_gone
        for kind, ident in self.protected:
            must[kind].add(ident)
        for name in self.legacy_keys:
            (gone if name in self.legacy_gone else must)["key_pair"].add(name)
        return must, gone

    def inventory(self) -> dict[str, set[str]]:
        ec2 = self.ec2
        instances = {
            i["InstanceId"]
            for page in ec2.get_paginator("describe_instances").paginate(
                Filters=[{"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]
            )
            for r in page["Reservations"]
            for i in r["Instances"]
        }
        return {
            "instance": instances,
            "parameter": {
                p["Name"]
                for page in self.ssm.get_paginator("describe_parameters").paginate()
                for p in page["Parameters"]
            },
            "key_pair": {k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]},
            "security_group": {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]}
            - {g["GroupId"] for g in ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"]},
            # Session-tagged; a launched instance's own (attached) volume is its instance's, not listed.
            **left_behind(ec2, key="ident"),
        }

    @invariant()
    def account_matches_model(self):
        have = self.inventory()
        must, gone = self.expectation()
        missing = {kind: must[kind] - have[kind] for kind in KINDS if must[kind] - have[kind]}
        lingering = {kind: gone[kind] & have[kind] for kind in KINDS if gone[kind] & have[kind]}
        unknown = {kind: have[kind] - must[kind] - gone[kind] for kind in KINDS if have[kind] - must[kind] - gone[kind]}
        TALLY.add(checks=1, wrongful_deletions=sum(map(len, missing.values())))
        assert not missing, f"deleted while live, foreign or kept: {missing}"
        assert not lingering, f"still there though swept or released: {lingering}"
        assert not unknown, f"resources the model never made: {unknown}"

    def teardown(self):
        """The last word: every bystander ends, the clock passes every expiry, one sweep leaves nothing of ours."""
        if not hasattr(self, "sessions"):
            return
        for instance in sorted(self.bystanders):
            self.ec2.terminate_instances(InstanceIds=[instance])
            self.alive.pop(instance, None)
            self.protected.pop(("instance", instance), None)
        self.bystanders.clear()
        expiries = [s.expires for s in self.sessions.values()] + list(self.legacy_keys.values())
        if expiries:
            self.now = max(self.now, max(expiries) + GRACE)
        expected = self.expected_sweep()
        summary = sweep(self.clients, self.collector, self.now, lambda: 900.0, False)
        deleted = {kind: set(summary["regions"][REGION][kind]["deleted"]) for kind in KINDS}
        self.apply_sweep(deleted)
        have = self.inventory()
        ours = [session for session in self.sessions.values() if not session.kept]  # kept: an operator's to end
        leaked = [
            (kind, ident) for session in ours for kind, ident in session.present().items() if ident in have[kind]
        ] + [name for name in self.legacy_keys if name in have["key_pair"]]
        leaked += [
            (kind, ident)
            for session in ours
            for kind, idents in session.still_left().items()
            for ident in idents & have[kind]
        ]
        TALLY.add(leaked=len(leaked))
        assert not leaked, f"left after expiry + grace and a final sweep: {leaked}"
        assert deleted == expected
        self.account_matches_model()


def test_account_matches_the_model_after_every_launch_release_clock_move_sweep_and_bystander(account):
    run_state_machine_as_test(lambda: AccountModel(account), settings=examples(6, stateful_step_count=20))


def test_one_sweep_removes_every_expired_parameter_even_when_they_fill_more_than_one_page(fresh):
    """DescribeParameters answers 10 a page; the sweep deletes page one before asking for page two.

    A page token that counts positions (moto's does; AWS does not promise
    otherwise) then skips as many parameters as were just deleted, so a
    session outlives "expiry + grace plus one sweep".
    """
    model = AccountModel(fresh)
    for minutes in range(5, 17):
        model.launch(minutes=minutes, instance=False, cidrs=())
    model.now = T0 + timedelta(days=1)

    summary = sweep(model.clients, model.collector, model.now, lambda: 900.0, False)

    left = model.inventory()["parameter"]
    TALLY.add(leaked=len(left), checks=1)
    assert len(summary["regions"][REGION]["parameter"]["deleted"]) == 12
    assert left == set()
