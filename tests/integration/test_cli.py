"""The ``ec2-sessions`` command as an operator runs it: a process of its own, against the tests' moto server.

Each test starts the console script the venv holds (``make install``
creates it), or ``python -m ec2_sessions`` where it is missing
(``tests/support/command.py``), with nothing but AWS's variables (fake
credentials, the region, the server's endpoint) and ``PATH`` in its environment,
and reads its exit status, its output and its one-line errors. A process
start costs about a second, so each test runs as few commands as its story
needs. Shapes of input no process is needed for (the summary's wrappings)
are checked in this process.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import importlib
import io
import json
import subprocess
import sys
import tomllib
from datetime import UTC, datetime, timedelta

import pytest
from ec2_sessions import Refused
from ec2_sessions.cli import main
from ec2_sessions.summary import find_summary, summary_table
from jobs import JobLedger
from session_naming import GITHUB_JOB_TAG, GITLAB_JOB_TAG, KEEP_TAG, POOL_STATE_TAG, PROFILE_TAG, SESSION_TAG
from slots import Slots

from tests.support.command import ROOT, run_ec2_sessions
from tests.support.function_url import SECRET
from tests.support.seed import inventory, name_expiring, seed
from tools.local_stack import make_launcher_stack
from tools.offline import FAKE_AWS

REGION = FAKE_AWS["AWS_REGION"]
BASE = "ec2-test-runner"
SUMMARY = {
    "dry_run": False,
    "cut_short": None,
    "totals": {"deleted": 2, "kept": 1, "failed": 0},
    "regions": {
        REGION: {"key_pair": {"deleted": ["a", "b"], "kept": [{"name": "c", "reason": "not-expired"}], "failed": []}}
    },
}


def ec2_sessions(aws, *args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    """Run the command; a traceback on its standard error fails the test whatever it exits with.

    Its environment is an operator's shell: AWS's variables (fake
    credentials, the region, the endpoint), ``PATH`` and the command's own
    settings, nothing of Lambda's or Powertools'.
    """
    env = {
        "PATH": "/usr/bin:/bin",
        **{name: value for name, value in FAKE_AWS.items() if name.startswith("AWS_")},
        "AWS_ENDPOINT_URL": aws.url,
        "SESSION_BASES": "ec2-test-runner",  # the stack's bases: what a release may touch
        **env,
    }
    done = run_ec2_sessions(*args, env=env, stdin=stdin)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


def test_the_console_script_make_install_creates_runs_the_commands_main():
    """pyproject.toml's ``[project.scripts]`` entry is what ``make install`` writes into .venv/bin/ec2-sessions."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, function = scripts["ec2-sessions"].partition(":")

    assert getattr(importlib.import_module(module), function) is main


def test_the_install_holds_the_command_and_no_package_called_tools(tmp_path):
    """What users run is installed (clients/ec2_sessions); the developers' aids (tools/) stay in the checkout."""
    probe = "import importlib.util as u; print(u.find_spec('ec2_sessions').origin, u.find_spec('tools'))"

    done = subprocess.run(  # noqa: S603 (this interpreter)
        [sys.executable, "-c", probe], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True
    )

    assert done.stdout.split() == [str(ROOT / "clients" / "ec2_sessions" / "__init__.py"), "None"], done.stderr


@pytest.mark.parametrize(
    ("args", "fix"),
    [
        ((), "COMMAND"),
        (("keep",), "NAME"),
        (("release", "ec2-test-runner/not-a-name"), "<base>/<YYYYMMDDTHHMMSSZ>/<16 hex digits>"),
        (("list", "--regions", "xx-nowhere-1"), "xx-nowhere-1"),
    ],
)
def test_bad_usage_exits_2_with_one_line_naming_the_fix(aws, args, fix):
    done = ec2_sessions(aws, *args)

    assert done.returncode == 2
    assert fix in one_line(done.stderr) and done.stderr.startswith("ec2-sessions: ")
    assert done.stdout == ""


def test_list_shows_live_sessions_with_expiry_profile_job_instance_market_and_kept(aws, look, capsys):
    """The table from a process of its own; the same listing as JSON from ``main`` here, a process start saved."""
    now = datetime.now(UTC)
    spot = name_expiring(BASE, timedelta(hours=2), now)
    tags = {PROFILE_TAG: "arm-small", GITHUB_JOB_TAG: "4242"}
    seed(look, REGION, spot, kinds=("key_pair", "security_group", "instance"), extra_tags=tags, spot=True)
    held = name_expiring(BASE, timedelta(hours=5), now)
    seed(look, REGION, held, kinds=("key_pair", "parameter"), extra_tags={GITLAB_JOB_TAG: "7/99"})
    # The keep tag on its parameter alone, in another letter case: the whole session is kept.
    look("ssm", REGION).add_tags_to_resource(
        ResourceType="Parameter", ResourceId=f"/{held}/private-key", Tags=[{"Key": KEEP_TAG, "Value": "True"}]
    )
    released = name_expiring(BASE, timedelta(hours=1), now)
    seed(look, REGION, released, kinds=("volume",))  # what a released session's tests left: not live
    seed(look, REGION, name_expiring("other-base", timedelta(hours=1), now), kinds=("key_pair",))

    listed = ec2_sessions(aws, "list")
    status = main(["list", "--json", "--regions", REGION])
    as_json = capsys.readouterr().out

    assert listed.returncode == status == 0
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:-1]}
    assert set(rows) == {spot, held}
    assert "arm-small" in rows[spot] and "github 4242" in rows[spot] and "running spot" in rows[spot]
    assert rows[spot].split()[-2:] == ["no", REGION] and rows[held].split()[-2:] == ["yes", REGION]
    assert "gitlab 7/99" in rows[held] and ("in 4h59m" in rows[held] or "in 5h00m" in rows[held])
    sessions = {s["session"]: s for s in json.loads(as_json)}
    assert sessions[spot]["profile"] == "arm-small" and sessions[spot]["github_job"] == "4242"
    [instance] = sessions[spot]["instances"]
    assert (instance["state"], instance["market"], instance["region"]) == ("running", "spot", REGION)
    assert sessions[held]["kept"] is True and sessions[spot]["kept"] is False
    assert sessions[held]["gitlab_job"] == "7/99" and sessions[held]["instances"] == []
    assert sessions[spot]["expires_at"] == spot.expires.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_kept_session_is_refused_release_and_once_unkept_is_released_whole_and_its_slot_freed(aws, look):
    """Every kind is tagged keep, the key pair by its ``key-...`` id; the release gives the stack's slot back."""
    now = datetime.now(UTC)
    name = name_expiring(BASE, timedelta(hours=2), now)
    # The kinds named by the session and two it leaves behind (found by their session tag alone).
    ids = seed(look, REGION, name, kinds=("instance", "parameter", "key_pair", "snapshot", "address", "security_group"))
    table = make_launcher_stack(look, SECRET)["IDEMPOTENCY_TABLE"]
    Slots(look("dynamodb", REGION), table).hold(name, now, [(None, 50)])

    kept = ec2_sessions(aws, "keep", name)
    tags = look("ec2", REGION).describe_tags(Filters=[{"Name": "key", "Values": [KEEP_TAG]}])["Tags"]
    parameter = look("ssm", REGION).list_tags_for_resource(ResourceType="Parameter", ResourceId=ids["parameter"])
    refused = ec2_sessions(aws, "release", name)
    unkept = ec2_sessions(aws, "unkeep", name)
    released = ec2_sessions(aws, "release", name, IDEMPOTENCY_TABLE=table)

    assert kept.returncode == 0 and "kept: tagged" in kept.stdout
    ec2_ids = {v for k, v in ids.items() if k != "parameter"} - {name}
    assert ec2_ids <= {t["ResourceId"] for t in tags}
    assert any(t["ResourceId"].startswith("key-") for t in tags)
    assert {"Key": KEEP_TAG, "Value": "true"} in parameter["TagList"]
    assert refused.returncode == 1 and "is kept" in one_line(refused.stderr) and f"unkeep {name}" in refused.stderr
    assert unkept.returncode == 0 and "no longer kept" in unkept.stdout
    assert released.returncode == 0 and released.stdout.startswith(f"released {name}: deleted instance 1")
    assert all(name not in names for names in inventory(look, REGION).values())
    slots = look("dynamodb", REGION).get_item(TableName=table, Key={"id": {"S": f"slots#{BASE}"}})["Item"]
    assert slots["sessions"]["M"] == {}


def test_expire_without_yes_changes_nothing_and_with_yes_releases_all_but_the_kept(aws, look):
    now = datetime.now(UTC)
    free = [name_expiring(BASE, timedelta(hours=h), now) for h in (1, 2)]
    held = name_expiring(BASE, timedelta(hours=3), now)
    for name in free:
        seed(look, REGION, name, kinds=("key_pair", "security_group", "parameter"))
    seed(look, REGION, held, kinds=("key_pair", "security_group"), keep=True)
    before = inventory(look, REGION)

    dry = ec2_sessions(aws, "expire", "--base", BASE)
    after_dry = inventory(look, REGION)
    real = ec2_sessions(aws, "expire", "--base", BASE, "--yes")

    assert dry.returncode == 0 and "would release 3 session(s); nothing changed" in dry.stdout
    assert after_dry == before
    assert real.returncode == 1  # the kept one could not be released
    assert (
        "2 released, 1 refused, 0 with failures" in real.stdout
        and f"not released: session {held} is kept" in real.stdout
    )
    left = inventory(look, REGION)
    assert left["key_pair"] == {held} and left["security_group"] == {held} and left["parameter"] == set()


def test_summary_prints_the_table_of_a_logged_sweep_read_from_log_events(aws):
    line = json.dumps({"level": "INFO", "message": "sweep finished", "summary": SUMMARY})
    events = json.dumps({"events": [{"timestamp": 1, "message": line}], "searchedLogStreams": []})

    done = ec2_sessions(aws, "summary", stdin=events)

    assert done.returncode == 0
    assert done.stdout.splitlines()[1].split() == ["key_pair", "2", "not-expired", "1", "0"]
    assert "(real run)" in done.stdout


@pytest.mark.parametrize(
    "wrapped",
    [
        json.dumps(SUMMARY),
        json.dumps({"message": "sweep finished", "summary": SUMMARY}),
        "2026/12/06/[$LATEST]0abc 2026-12-06T06:00:00Z "
        + json.dumps({"message": "sweep finished", "summary": SUMMARY}),
        json.dumps(
            {
                "awslogs": {
                    "data": base64.b64encode(
                        gzip.compress(
                            json.dumps({"logEvents": [{"message": json.dumps({"summary": SUMMARY})}]}).encode()
                        )
                    ).decode()
                }
            }
        ),
    ],
    ids=["result", "log-line", "sam-logs-line", "subscription"],
)
def test_a_summary_is_found_in_each_shape_the_collector_or_its_logs_give(wrapped):
    assert find_summary(wrapped) == SUMMARY


def test_input_without_a_summary_is_refused_naming_what_to_pipe_in():
    with pytest.raises(Refused, match="sweep finished"):
        find_summary(json.dumps({"message": "deleted", "session": "x"}))


def test_the_table_of_a_summary_cut_for_the_log_still_adds_up_to_its_totals():
    """A logged summary keeps the first entries of each list and counts the rest under ``more``."""
    report = {
        "deleted": ["a"],
        "kept": [{"name": "c", "reason": "in-use"}],
        "failed": [],
        "more": {"deleted": 4, "kept": 2},
    }
    cut = {**SUMMARY, "regions": {REGION: {"volume": report}}, "lists_cut_to": 1}

    [_, row, _] = summary_table(cut).splitlines()

    assert row.split() == ["volume", "5", "in-use", "1,", "reason", "not", "logged", "2", "0"]


def test_a_release_of_a_base_the_stack_does_not_own_is_refused_before_any_call(aws, look):
    foreign = "someone-else/20200101T000000Z/0123456789abcdef"
    seed(look, REGION, foreign, kinds=("key_pair",))

    done = ec2_sessions(aws, "release", foreign, "--regions", REGION)
    unset = ec2_sessions(aws, "expire", "--base", "ec2-test-runner", "--yes", SESSION_BASES="")

    assert done.returncode == 2 and "not one of SESSION_BASES" in one_line(done.stderr)
    assert unset.returncode == 2 and "set SESSION_BASES" in one_line(unset.stderr)
    assert foreign in inventory(look, REGION)["key_pair"]


# What an operator's shell met (issue 28, item 7): each test failed before its fix.


def test_a_release_from_a_shell_without_lambda_settings_ends_the_instance_and_prints_no_lambda_lines(aws, look):
    """No Powertools variable is set in an operator's shell: the instance's cost metric used to need one."""
    name = name_expiring(BASE, timedelta(hours=2), datetime.now(UTC))
    seed(look, REGION, name, kinds=("key_pair", "security_group", "instance"))

    done = ec2_sessions(aws, "release", name)

    assert done.returncode == 0 and done.stdout.startswith(f"released {name}: deleted instance 1"), done.stderr
    assert done.stderr == ""  # the launcher's metric lines are Lambda's, not the operator's
    assert inventory(look, REGION)["instance"] == set()


def test_a_release_makes_the_github_job_of_the_session_pending_again_as_the_route_does(aws, look):
    """The job had not started on the released machine: the next reconcile pass gives it a session of its own."""
    now = datetime.now(UTC)
    name = name_expiring(BASE, timedelta(hours=2), now)
    seed(look, REGION, name, kinds=("key_pair", "security_group", "instance"), extra_tags={GITHUB_JOB_TAG: "4242"})
    table = make_launcher_stack(look, SECRET)["IDEMPOTENCY_TABLE"]
    ledger = JobLedger(look("dynamodb", REGION), table)
    assert ledger.claim("github", "4242", now, {"repository": "octo-org/octo-repo"}) is None
    ledger.settle("github", "4242", {"session": str(name)})

    done = ec2_sessions(aws, "release", name, IDEMPOTENCY_TABLE=table)

    job = look("dynamodb", REGION).get_item(TableName=table, Key={"id": {"S": "job#github#4242"}})["Item"]
    assert done.returncode == 0 and "GitHub job 4242 is pending again" in done.stdout, done.stderr
    assert (job["state"]["S"], job["awaiting"]["S"], job["reason"]["S"]) == ("pending", "pending", "runner_taken")


def test_a_release_without_the_stacks_table_says_the_job_is_not_pending_again(aws, look):
    name = name_expiring(BASE, timedelta(hours=2), datetime.now(UTC))
    seed(look, REGION, name, kinds=("key_pair", "security_group"), extra_tags={GITHUB_JOB_TAG: "4343"})

    done = ec2_sessions(aws, "release", name)

    assert done.returncode == 0
    assert "GitHub job 4343 is not pending again: set IDEMPOTENCY_TABLE" in one_line(done.stdout)


@pytest.mark.parametrize("command", ["keep", "unkeep"])
def test_keep_and_unkeep_refuse_a_base_the_stack_does_not_own(aws, look, command):
    foreign = "someone-else/20991231T000000Z/0123456789abcdef"
    seed(look, REGION, foreign, kinds=("key_pair",))

    done = ec2_sessions(aws, command, foreign)

    assert done.returncode == 2 and "not one of SESSION_BASES" in one_line(done.stderr)
    assert look("ec2", REGION).describe_tags(Filters=[{"Name": "key", "Values": [KEEP_TAG]}])["Tags"] == []


def test_keep_tags_the_volumes_and_interfaces_attached_to_the_sessions_instance(aws, look):
    """The collector's listings show only detached ones; the session owns those its instance holds too."""
    name = name_expiring(BASE, timedelta(hours=2), datetime.now(UTC))
    ids = seed(look, REGION, name, kinds=("key_pair", "security_group", "instance"))
    ec2 = look("ec2", REGION)
    session = [{"Key": SESSION_TAG, "Value": str(name)}]
    [root] = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [ids["instance"]]}])["Volumes"]
    ec2.create_tags(Resources=[root["VolumeId"]], Tags=session)  # as the session's launch template tags it
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    interface = ec2.create_network_interface(
        SubnetId=subnet, TagSpecifications=[{"ResourceType": "network-interface", "Tags": session}]
    )["NetworkInterface"]["NetworkInterfaceId"]
    ec2.attach_network_interface(NetworkInterfaceId=interface, InstanceId=ids["instance"], DeviceIndex=1)

    kept = ec2_sessions(aws, "keep", name)
    tagged = {t["ResourceId"] for t in ec2.describe_tags(Filters=[{"Name": "key", "Values": [KEEP_TAG]}])["Tags"]}
    unkept = ec2_sessions(aws, "unkeep", name)
    left = ec2.describe_tags(Filters=[{"Name": "key", "Values": [KEEP_TAG]}])["Tags"]

    assert kept.returncode == 0 and "volume 1" in kept.stdout and "network_interface 1" in kept.stdout
    assert {root["VolumeId"], interface, ids["instance"]} <= tagged
    assert unkept.returncode == 0 and left == []


def test_summary_prints_the_gib_the_collector_removed(aws):
    summary = {**SUMMARY, "removed": {"volume_gib": 12, "snapshot_gib": 3.5, "addresses": 2}}

    done = ec2_sessions(aws, "summary", stdin=json.dumps(summary))

    assert done.returncode == 0
    assert "removed 12 GiB of volumes, 3.5 GiB of snapshots, 2 Elastic IP addresses" in done.stdout


# ---- pool: the warm pools' instances -----------------------------------------------------------------------------


@pytest.fixture
def pool(launcher_stack, look, monkeypatch):
    """A pool ``small`` of one stopped and one hot instance, filled and marked ready by the launcher's upkeep (the
    stopped one powered off by hand: moto runs no boot script); ``PROFILES`` set here, as in the stack.

    Answers ``{state tag: instance id}``, the template's id and ``PROFILES``.
    """
    import pool_upkeep
    import warm_pool
    from session_naming.settings import load_launcher

    from tests.support.stack import make_launch_template

    template = make_launch_template(look, name="pooled")
    profile = {"labels": ["ec2-session"], "launch_template_id": template, "pool": {"stopped": 1, "hot": 1}}
    profiles = json.dumps({"small": profile})
    monkeypatch.setenv("PROFILES", profiles)
    warm_pool.forget_specs()  # a new container: no template version read yet
    with contextlib.redirect_stdout(io.StringIO()):  # the upkeep's metric lines
        pool_upkeep.upkeep(load_launcher(), datetime.now(UTC), lambda: 50.0)
        filling = [
            m.instance for m in warm_pool.members(load_launcher(), datetime.now(UTC)) if m.state == "filling-stopped"
        ]
        look("ec2", REGION).stop_instances(InstanceIds=filling)
        pool_upkeep.upkeep(load_launcher(), datetime.now(UTC), lambda: 50.0)
    ready = {m.state: m.instance for m in warm_pool.members(load_launcher(), datetime.now(UTC))}
    assert set(ready) == {"ready-stopped", "ready-hot"}
    return ready, template, profiles


def test_pool_lists_each_instance_with_its_state_age_spec_and_prices_the_stopped_ones_volumes(
    aws, look, pool, launcher_stack, capsys
):
    """The table from a process of its own; then, the template's new version out, the JSON from ``main`` here."""
    import warm_pool

    ready, template, profiles = pool
    ec2 = look("ec2", REGION)
    # The hot instance's tag lags its record (a mark that failed; the next upkeep mends it).
    ec2.create_tags(Resources=[ready["ready-hot"]], Tags=[{"Key": POOL_STATE_TAG, "Value": "filling-hot"}])
    gib = {
        v["Attachments"][0]["InstanceId"]: v["Size"]
        for v in ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": list(ready.values())}])[
            "Volumes"
        ]
    }

    listed = ec2_sessions(aws, "pool", IDEMPOTENCY_TABLE=launcher_stack["IDEMPOTENCY_TABLE"], PROFILES=profiles)
    ec2.create_launch_template_version(
        LaunchTemplateId=template, LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.small"}
    )
    ec2.modify_launch_template(LaunchTemplateId=template, DefaultVersion="2")
    warm_pool.forget_specs()  # a minute later
    status = main(["pool", "--json", "--gib-month-price", "0.1"])
    as_json = json.loads(capsys.readouterr().out)

    assert listed.returncode == status == 0, listed.stderr
    lines = listed.stdout.splitlines()
    rows = {line.split()[1]: line for line in lines[1:3]}
    stopped, hot = rows[ready["ready-stopped"]], rows[ready["ready-hot"]]
    assert stopped.split()[:3] == ["small", ready["ready-stopped"], "ready-stopped"]
    assert "ready-hot (tag: filling-hot)" in hot and " yes " in hot and " running " in hot
    assert stopped.split()[-4:] == ["yes", "stopped", str(gib[ready["ready-stopped"]]), REGION]
    cost = gib[ready["ready-stopped"]] * 0.08
    assert lines[2 + 1] == (
        f"pool small: ready-hot 1, ready-stopped 1; 1 stopped, {gib[ready['ready-stopped']]} GiB of volumes: "
        f"{cost:.2f} USD a month at 0.08 USD per GiB-month"
    )
    assert lines[-1] == "(2 pool instances; states from the job table (the tag shown where it differs))"
    small = as_json["pools"]["small"]
    assert as_json["gib_month_price_usd"] == 0.1 and as_json["table_read"] is True
    assert small["stopped_gib"] == gib[ready["ready-stopped"]]
    assert small["stopped_monthly_usd"] == round(gib[ready["ready-stopped"]] * 0.1, 2)
    instances = {i["instance"]: i for i in small["instances"]}
    assert instances[ready["ready-hot"]]["states_agree"] is False
    assert (instances[ready["ready-hot"]]["table_state"], instances[ready["ready-hot"]]["tag_state"]) == (
        "ready-hot",
        "filling-hot",
    )
    assert [i["spec_current"] for i in instances.values()] == [False, False]  # superseded by version 2
    assert all(0 <= i["age_seconds"] < 300 and len(i["spec"]) == 16 for i in instances.values())


def test_pool_without_the_table_or_the_profiles_shows_the_tags_and_says_so(aws, pool, capsys, monkeypatch):
    ready, _, _ = pool
    monkeypatch.delenv("IDEMPOTENCY_TABLE")
    monkeypatch.delenv("PROFILES")
    monkeypatch.setenv("EBS_GIB_MONTH_PRICE", "0.125")

    shown = main(["pool"])
    out = capsys.readouterr().out
    other = main(["pool", "--profile", "large"])
    none = capsys.readouterr().out

    assert shown == other == 0
    rows = {line.split()[1]: line.split() for line in out.splitlines()[1:3]}
    assert rows[ready["ready-hot"]][2] == "ready-hot" and rows[ready["ready-hot"]][5] == "-"  # spec: not judged
    assert "at 0.125 USD per GiB-month" in out
    assert out.splitlines()[-1] == "(2 pool instances; states from the tags alone (IDEMPOTENCY_TABLE unset))"
    assert none == "(0 pool instances; states from the tags alone (IDEMPOTENCY_TABLE unset))\n"


def test_a_bad_price_is_refused_in_one_line_with_status_2(aws, capsys, monkeypatch):
    flag = ec2_sessions(aws, "pool", "--gib-month-price", "-1")
    monkeypatch.setenv("EBS_GIB_MONTH_PRICE", "cheap")
    variable = main(["pool"])

    assert flag.returncode == 2 and "USD per GiB-month" in one_line(flag.stderr) and flag.stdout == ""
    assert variable == 2 and "EBS_GIB_MONTH_PRICE" in one_line(capsys.readouterr().err)
