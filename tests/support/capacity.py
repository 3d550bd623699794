"""EC2 capacity that runs out, in front of moto, which never runs out.

moto runs ``CreateFleet`` type ``instant`` (spot and on-demand; it starts the
first override) but never answers a capacity error. ``Capacity`` sits on a
client's botocore events: before the request is built it drops the
overrides of exhausted pools (a market, or a market and instance type), and
when none is left it answers the call itself, as EC2 does, with no instance
and one capacity error per pool. Everything else goes to moto unchanged.
It also records every fleet call's market and every session template made.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


class _Http:
    status_code = 200
    headers: dict = {}  # noqa: RUF012
    content = b""


@dataclass
class Capacity:
    exhausted: set[tuple[str, str | None]] = field(default_factory=set)  # (market, instance type or None: all)
    refuse_with: str | None = None  # a configuration error code every fleet call answers
    fleet_calls: list[str] = field(default_factory=list)  # the market of each CreateFleet
    templates: list[dict] = field(default_factory=list)  # each CreateLaunchTemplate's parameters
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def on(cls, client) -> Capacity:
        """The one ``Capacity`` of a client (attached on first use), its pools all restored."""
        capacity = getattr(client, "ec2_sessions_capacity", None) or cls().attach(client)
        client.ec2_sessions_capacity = capacity
        capacity.restore()
        capacity.fleet_calls.clear()
        return capacity

    def attach(self, client) -> Capacity:
        client.meta.events.register("before-parameter-build.ec2.CreateFleet", self._filter)
        client.meta.events.register("before-call.ec2.CreateFleet", self._answer)
        client.meta.events.register("before-parameter-build.ec2.CreateLaunchTemplate", self._record_template)
        return self

    def exhaust(self, market: str, instance_type: str | None = None) -> None:
        self.exhausted.add((market, instance_type))

    def restore(self) -> None:
        self.exhausted.clear()
        self.refuse_with = None

    def _record_template(self, params, **_):
        with self._lock:
            self.templates.append(params)

    def _filter(self, params, context, **_):
        market = params["TargetCapacitySpecification"]["DefaultTargetCapacityType"]
        with self._lock:
            self.fleet_calls.append(market)
        context["ec2-sessions-market"] = market
        if self.refuse_with:
            context["ec2-sessions-errors"] = [self.refuse_with]
            return
        if (market, None) in self.exhausted:
            context["ec2-sessions-errors"] = ["InsufficientInstanceCapacity"]
            return
        for config in params["LaunchTemplateConfigs"]:
            overrides = config.get("Overrides") or [{}]
            left = [o for o in overrides if (market, o.get("InstanceType")) not in self.exhausted]
            if not left:
                context["ec2-sessions-errors"] = ["InsufficientInstanceCapacity" for _ in overrides]
                return
            if config.get("Overrides"):
                config["Overrides"] = left

    def _answer(self, context, **_):
        errors = context.get("ec2-sessions-errors")
        if not errors:
            return None
        market = context["ec2-sessions-market"]
        parsed = {
            "FleetId": "fleet-00000000-0000-0000-0000-000000000000",
            "Errors": [
                {"Lifecycle": market, "ErrorCode": code, "ErrorMessage": "There is no capacity right now."}
                for code in errors
            ],
        }
        return _Http(), parsed
