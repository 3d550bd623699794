"""Warm pools: instances made ahead, claimed by jobs in seconds, inside the exact caps, never reused.

Against moto over HTTP and the fake GitHub. moto starts and stops instances
but never runs user data nor powers an instance off by itself: a test stops
a filling instance by hand where its boot script would have powered it off.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pool_upkeep
import pytest
import warm_pool
from session_naming import GITHUB_JOB_TAG, INSTANCE_TAG, POOL_STATE_TAG, POOL_TAG, SPEC_TAG, SessionName, clients
from session_naming.settings import load_collector, load_launcher
from sweep import sweep

from tests.support.deliveries import github_event, workflow_job
from tests.support.faults import Faults
from tests.support.function_url import url_event
from tests.support.handlers import LambdaContext
from tests.support.jobs import ROOT, finished, queued, with_app
from tests.support.metrics import total
from tests.support.seed import inventory
from tests.support.stack import REGION, make_launch_template

LABELS = ["self-hosted", "ec2-session"]


@pytest.fixture
def launcher(launcher, look, github_fake):
    """The App's launcher with one spot-first profile ``small`` that keeps a pool: one stopped, one hot.

    ``launcher.pool(spec, **fields)`` writes the profile again with another ``pool`` (``None``: none).
    """
    launcher = with_app(launcher, look, github_fake)
    template = make_launch_template(look, name="pooled")

    def pool(spec, **fields):
        document = {"labels": ["ec2-session"], "launch_template_id": template, "market": "spot-first", **fields}
        if spec is not None:
            document["pool"] = spec
        launcher.env("PROFILES", json.dumps({"small": document}))

    launcher.template, launcher.pool = template, pool
    pool({"stopped": 1, "hot": 1})
    warm_pool.forget_specs()  # a new container: no template version read yet
    return launcher


def upkeep(now=None, time_left=lambda: 50.0):
    return pool_upkeep.upkeep(load_launcher(), now or datetime.now(UTC), time_left)["pools"].get("small")


def pool_instances(look, states=("pending", "running", "stopping", "stopped")):
    """The pool's instances by state tag: {state: [(instance id, its tags, its EC2 state)]}."""
    found: dict[str, list] = {}
    pages = (
        look("ec2", REGION)
        .get_paginator("describe_instances")
        .paginate(
            Filters=[{"Name": "tag-key", "Values": [POOL_TAG]}, {"Name": "instance-state-name", "Values": list(states)}]
        )
    )
    for page in pages:
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                tags = {t["Key"]: t["Value"] for t in instance.get("Tags") or ()}
                found.setdefault(tags[POOL_STATE_TAG], []).append(
                    (instance["InstanceId"], tags, instance["State"]["Name"])
                )
    return found


def powered_off(look, instance):
    """What the stopped pool's boot script does once warmed (moto runs no user data)."""
    look("ec2", REGION).stop_instances(InstanceIds=[instance])


def filled_and_ready(look, now=None):
    """Fill the pool and let its instances get ready: the stopped one powers itself off, the hot one runs."""
    upkeep(now)
    for instance, _, _ in pool_instances(look).get("filling-stopped", []):
        powered_off(look, instance)
    return upkeep(now)


def test_upkeep_fills_the_pool_on_demand_and_registers_nothing_with_github(launcher, look):
    summary = upkeep()

    made = pool_instances(look)
    assert summary["filled"] == {"stopped": 1, "hot": 1}
    assert {state: len(found) for state, found in made.items()} == {"filling-stopped": 1, "filling-hot": 1}
    for _, tags, _ in made["filling-stopped"] + made["filling-hot"]:
        assert tags[POOL_TAG] == "small" and len(tags[SPEC_TAG]) == 16 and tags["ec2-sessions:profile"] == "small"
    assert launcher.capacity.fleet_calls == ["on-demand", "on-demand"]  # a spot-first profile's pool is on demand
    shutdowns = sorted(
        t["LaunchTemplateData"]["InstanceInitiatedShutdownBehavior"] for t in launcher.capacity.templates
    )
    assert shutdowns == ["stop", "terminate"]  # the stopped pool's instance stops when its boot script powers off
    assert launcher.github.runner_names(ROOT) == set()


def test_a_pool_instance_is_a_session_whose_expiry_covers_its_pool_life_and_one_job(launcher, look):
    before = datetime.now(UTC)
    upkeep()

    for found in pool_instances(look).values():
        for _, tags, _ in found:
            expires = SessionName(tags["ec2-sessions:session"]).expires
            assert before + timedelta(minutes=720 + 360) <= expires + timedelta(seconds=1)


def test_instances_are_marked_ready_when_ec2_says_so(launcher, look, capsys):
    upkeep()
    [(stopped, _, _)] = pool_instances(look)["filling-stopped"]
    powered_off(look, stopped)
    capsys.readouterr()

    marked = upkeep()

    assert marked["ready"] == {"stopped": 1, "hot": 1}
    assert set(pool_instances(look)) == {"ready-stopped", "ready-hot"}
    assert total(capsys.readouterr().out, "PoolReady") == 2


def test_a_queued_job_claims_the_hot_instance_first_and_starts_in_its_runner(launcher, look, capsys):
    filled_and_ready(look)
    [(hot, _, _)] = pool_instances(look)["ready-hot"]
    capsys.readouterr()

    status, body = launcher(queued(101))

    assert status == 201 and body["pool"] == "hot" and body["instances"][0]["id"] == hot
    assert body["runner"]["name"] in launcher.github.runner_names(ROOT)
    ssm = look("ssm", REGION)
    parameter = f"/{body['session']}/runner-jitconfig"
    tags = {
        t["Key"]: t["Value"]
        for t in ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=parameter)["TagList"]
    }
    assert tags[INSTANCE_TAG].endswith(f":instance/{hot}")  # readable by that instance alone
    claimed = pool_instances(look)["claimed"]
    assert [(i, t[GITHUB_JOB_TAG]) for i, t, _ in claimed] == [(hot, "101")]
    assert total(capsys.readouterr().out, "PoolClaims") == 1
    assert len(launcher.capacity.fleet_calls) == 2  # the fills' only: the job launched nothing


def test_then_a_stopped_instance_is_started_and_then_jobs_launch_cold(launcher, look, capsys):
    filled_and_ready(look)
    launcher(queued(102))
    capsys.readouterr()

    _, second = launcher(queued(103))
    _, third = launcher(queued(104))

    assert second["pool"] == "stopped"
    [(instance, _, state)] = [c for c in pool_instances(look)["claimed"] if c[0] == second["instances"][0]["id"]]
    assert state == "running"  # started by its claim
    assert "pool" not in third and third["instances"][0]["market"] == "spot"  # cold, as the profile says
    assert total(capsys.readouterr().out, "PoolMisses") == 1


def test_a_start_refused_for_capacity_releases_that_session_and_launches_cold_in_the_same_request(launcher, look):
    launcher.pool({"stopped": 1, "hot": 0})
    filled_and_ready(look)
    [(stopped, tags, _)] = pool_instances(look)["ready-stopped"]
    Faults().inject(clients.client("ec2", REGION), "StartInstances", "InsufficientInstanceCapacity", times=1)

    status, body = launcher(queued(105))

    assert status == 201 and "pool" not in body and body["instances"][0]["id"] != stopped
    assert tags["ec2-sessions:session"] not in inventory(look, REGION)["key_pair"]  # that session went
    assert stopped not in {i for found in pool_instances(look).values() for i, _, _ in found}
    assert len(launcher.github.runner_names(ROOT)) == 1  # the claim's registration went with it


def test_a_claimed_instance_is_released_after_its_job_and_never_returns_to_the_pool(launcher, look):
    filled_and_ready(look)
    _, body = launcher(queued(106))

    assert launcher(finished(106))[1]["released"] == [body["session"]]
    upkeep()

    states = pool_instances(look)
    assert body["instances"][0]["id"] not in {i for found in states.values() for i, _, _ in found}
    assert len(states["filling-hot"]) == 1  # a new instance takes its place


def test_two_jobs_racing_for_one_ready_instance_never_both_get_it(launcher, look):
    launcher.pool({"stopped": 0, "hot": 1})
    filled_and_ready(look)
    barrier, answers = threading.Barrier(2), []

    def one(job, container):
        event = queued(job)
        barrier.wait()
        from tests.support.function_url import answer

        answers.append(answer(container.lambda_handler(event, LambdaContext())))

    from tests.support.handlers import load_handler

    threads = [threading.Thread(target=one, args=(job, load_handler("launcher"))) for job in (107, 108)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(body.get("pool", "cold") for _, body in answers) == ["cold", "hot"]
    assert len({body["instances"][0]["id"] for _, body in answers}) == 2


def test_a_superseded_spec_is_replaced(launcher, look, capsys):
    filled_and_ready(look)
    ec2 = look("ec2", REGION)
    ec2.create_launch_template_version(
        LaunchTemplateId=launcher.template, LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.small"}
    )
    ec2.modify_launch_template(LaunchTemplateId=launcher.template, DefaultVersion="2")
    warm_pool.forget_specs()  # a minute later
    capsys.readouterr()

    summary = upkeep()

    assert summary["retired"] == {"spec": 2} and summary["filled"] == {"stopped": 1, "hot": 1}
    assert total(capsys.readouterr().out, "PoolReplaced") == 2


def test_an_instance_older_than_its_pools_max_age_is_replaced(launcher, look):
    filled_and_ready(look)

    summary = upkeep(datetime.now(UTC) + timedelta(minutes=721))

    assert summary["retired"] == {"age": 2}


def test_a_schedule_window_changes_the_counts_and_what_is_beyond_them_goes(launcher, look):
    filled_and_ready(look)
    quiet = {"days": "mon-sun", "from": "00:00", "to": "24:00", "timezone": "Europe/Berlin", "hot": 0}  # always holds
    launcher.pool({"stopped": 1, "hot": 1, "schedule": [quiet]})

    summary = upkeep()

    assert summary["wanted"] == {"hot": 0, "stopped": 0} and summary["retired"] == {"schedule": 2}


def test_an_instance_not_ready_in_ten_minutes_is_released(launcher, look, capsys):
    launcher.pool({"stopped": 1, "hot": 0})
    upkeep()
    capsys.readouterr()

    summary = upkeep(datetime.now(UTC) + timedelta(minutes=11))

    assert summary["retired"] == {"fill_failed": 1}
    assert total(capsys.readouterr().out, "PoolFillFailed") == 1


def test_a_pool_lives_inside_its_profiles_exact_cap(launcher, look):
    launcher.pool({"stopped": 0, "hot": 2}, max_live=2)
    filled_and_ready(look)

    assert launcher(queued(109))[1]["pool"] == "hot"
    assert launcher(queued(110))[1]["pool"] == "hot"
    assert launcher(queued(111))[0] == 429  # both slots are the claimed instances'
    assert upkeep()["filled"] == {"stopped": 0, "hot": 0}  # no slot to refill with


def test_a_pool_bigger_than_its_profiles_cap_is_a_configuration_error(launcher, caplog):
    launcher.pool({"stopped": 2, "hot": 1}, max_live=2)

    status, body = launcher(queued(112))

    assert status == 500 and body["error"] == "internal"  # the log names the profile, the field and the rule
    [logged] = [record.problem for record in caplog.records if record.getMessage() == "configuration error"]
    assert "profile small: pool: stopped + hot (3 at most) must not exceed max_live (2)" in logged


def test_upkeep_with_nothing_to_do_makes_one_listing(launcher, look):
    filled_and_ready(look)
    calls = []
    for service in ("ec2", "dynamodb", "ssm", "secretsmanager"):
        clients.client(service, REGION).meta.events.register(
            f"before-call.{service}", lambda model, **_: calls.append(model.name)
        )

    upkeep()

    assert calls == ["DescribeInstances"]


def test_a_session_asked_for_with_the_profile_claims_from_the_pool_without_a_runner(launcher, look):
    filled_and_ready(look)

    status, body = launcher(url_event("POST", "/sessions", {"instance": True, "profile": "small"}))
    _, own_key = launcher(
        url_event(
            "POST",
            "/sessions",
            {
                "instance": True,
                "profile": "small",
                "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGXUrIo9NsoKq3aFL6HE3Wh7cUQUtuXI2nm3AIyZeLJu ci",
            },
        )
    )

    assert status == 201 and body["pool"] == "hot" and body["private_key_parameter"]
    parameter = look("ssm", REGION).get_parameter(Name=f"/{body['session']}/runner-jitconfig", WithDecryption=True)
    assert parameter["Parameter"]["Value"] == "none"  # its boot script keeps the instance up for its session
    assert "pool" not in own_key  # a pool's key pair is its own: an imported key launches cold


def test_a_pool_removed_from_the_profiles_is_retired(launcher, look):
    filled_and_ready(look)
    launcher.pool(None)

    summary = upkeep()

    assert summary["retired"] == {"schedule": 2}
    assert set(pool_instances(look)) == set()


def test_the_collector_sweeps_a_pool_instance_that_outlived_its_session_like_any_other(launcher, look):
    filled_and_ready(look)
    expired = datetime.now(UTC) + timedelta(days=2)

    sweep(look, load_collector({"REGIONS": REGION, "GRACE_SECONDS": "300"}), expired, lambda: 900.0, False)

    assert pool_instances(look) == {}


def test_the_schedule_runs_the_upkeep_through_the_handler(launcher, look):
    event = {"source": "ec2-sessions.scheduler", "detail-type": "Scheduled Event", "detail": {"pass": "pool"}}

    answer = launcher.module.lambda_handler(event, LambdaContext())

    assert answer["pools"]["small"]["filled"] == {"stopped": 1, "hot": 1}


def test_an_in_progress_on_a_claimed_instance_binds_nothing_new(launcher, look):
    filled_and_ready(look)
    _, body = launcher(queued(113))
    started = workflow_job("in_progress", 113, labels=LABELS, runner_name=body["runner"]["name"])

    assert launcher(github_event(started, "p-113")) == (200, {"bound": []})


def test_an_instance_whose_record_failed_after_its_fill_is_released_not_left_unclaimable(launcher, look):
    launcher.pool({"stopped": 1, "hot": 0})
    upkeep()
    [(stopped, tags, _)] = pool_instances(look)["filling-stopped"]
    table = load_launcher().idempotency_table
    look("dynamodb", REGION).delete_item(TableName=table, Key={"id": {"S": f"pool#small#{stopped}"}})
    powered_off(look, stopped)

    summary = upkeep()

    assert summary["retired"] == {"fill_failed": 1}
    assert tags["ec2-sessions:session"] not in inventory(look, REGION)["key_pair"]


def test_a_ready_instance_that_died_is_never_given_to_a_job_and_its_slots_come_back(launcher, look):
    launcher.pool({"stopped": 0, "hot": 1}, max_live=1)
    filled_and_ready(look)
    [(dead, tags, _)] = pool_instances(look)["ready-hot"]
    look("ec2", REGION).terminate_instances(InstanceIds=[dead])  # a reboot that lost it, a hand, EC2

    status, body = launcher(queued(114))

    assert status == 201 and "pool" not in body and body["instances"][0]["id"] != dead  # cold, in the freed slot
    assert tags["ec2-sessions:session"] not in inventory(look, REGION)["key_pair"]


def test_upkeep_releases_a_ready_record_whose_instance_is_gone_and_refills(launcher, look):
    launcher.pool({"stopped": 0, "hot": 1}, max_live=1)
    filled_and_ready(look)
    [(dead, _, _)] = pool_instances(look)["ready-hot"]
    look("ec2", REGION).terminate_instances(InstanceIds=[dead])

    summary = upkeep()

    assert summary["retired"] == {"gone": 1} and summary["filled"] == {"stopped": 0, "hot": 1}  # its slot, freed


def test_a_claim_that_fails_for_github_releases_one_instance_and_leaves_the_rest_of_the_pool(launcher, look):
    launcher.pool({"stopped": 0, "hot": 3})
    filled_and_ready(look)
    launcher.github.fail(times=12, status=502, route="generate-jitconfig")

    status, _ = launcher(queued(115))

    assert status == 500  # the cold launch that followed met the same GitHub
    assert len(pool_instances(look)["ready-hot"]) == 2


def test_a_retirement_cut_short_before_its_tag_is_finished_by_the_next_upkeep(launcher, look):
    filled_and_ready(look)
    [(hot, tags, _)] = pool_instances(look)["ready-hot"]
    table = load_launcher().idempotency_table
    look("dynamodb", REGION).update_item(  # the table says retiring; the tag never followed
        TableName=table,
        Key={"id": {"S": f"pool#small#{hot}"}},
        UpdateExpression="SET #state = :retiring REMOVE awaiting, due_at",
        ExpressionAttributeNames={"#state": "state"},
        ExpressionAttributeValues={":retiring": {"S": "retiring"}},
    )

    upkeep(datetime.now(UTC) + timedelta(minutes=721))  # old enough to retire

    assert tags["ec2-sessions:session"] not in inventory(look, REGION)["key_pair"]


def test_a_session_asked_for_with_a_lifetime_of_its_own_is_launched_cold_for_that_long(launcher, look):
    filled_and_ready(look)

    status, body = launcher(
        url_event("POST", "/sessions", {"instance": True, "profile": "small", "lifetime_minutes": 30})
    )

    assert status == 201 and "pool" not in body
    assert SessionName(body["session"]).expires <= datetime.now(UTC) + timedelta(minutes=31)


def test_one_pools_failure_is_that_pools_and_the_others_are_tended(launcher, look):
    gone = make_launch_template(look, name="soon-gone")
    pools = {
        "small": {"labels": ["ec2-session"], "launch_template_id": launcher.template, "pool": {"hot": 1}},
        "gone": {"labels": ["ec2-session", "gone"], "launch_template_id": gone, "pool": {"hot": 1}},
    }
    launcher.env("PROFILES", json.dumps(pools))
    look("ec2", REGION).delete_launch_template(LaunchTemplateId=gone)

    tended = pool_upkeep.upkeep(load_launcher(), datetime.now(UTC), lambda: 50.0)["pools"]

    assert tended["small"]["filled"] == {"stopped": 0, "hot": 1}
    assert tended["gone"]["filled"] == {"stopped": 0, "hot": 0}
