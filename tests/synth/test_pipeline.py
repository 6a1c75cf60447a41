"""The whole job on a real local Ray cluster (127.0.0.1) against the scripted world."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llm.testing import ScriptedEndpoint
from synth.store import RunStore
from synth.testing import ScriptedWorld

from .conftest import scripted_config

pytestmark = pytest.mark.integration


def test_a_run_writes_a_reconciled_dataset(tmp_path, local_ray, api_env) -> None:
    from synth.pipeline import run

    with ScriptedEndpoint(ScriptedWorld()) as server:
        config = scripted_config(tmp_path, server)
        manifest = run(config)
    counts = manifest.counts.model_dump()
    assert counts["agents"] == 4 and counts["tasks"] == 8
    assert counts["trajectories"] == 8 == counts["accepted"] + counts["rejected"]
    assert manifest.reconciled and manifest.duplicates == 0
    assert counts["rejected"] == manifest.rejected_by_reason.get("state_mismatch", 0)
    assert {"generator", "agent", "user", "judge"} <= set(manifest.usage)
    # Every executable and simulated task was first tried as a blueprint (the scripted
    # world's names no real tool, so each falls back); the counts reconcile.
    blueprints = manifest.blueprints
    assert blueprints.tried == 8 == blueprints.kept + sum(blueprints.rejected_by_reason.values())
    assert blueprints.rejected_by_reason == {"unknown_tool": 8}
    by_source = manifest.tasks_by_source
    assert sum(n for kind in by_source.values() for n in kind.values()) == counts["tasks"]
    assert by_source["executable"] == {"template": 4} and by_source["simulated"] == {"generated": 4}
    diversity = manifest.diversity.by_environment
    assert {k: (v.tasks, v.trajectories) for k, v in diversity.items()} == {
        "executable": (4, 4),
        "simulated": (4, 4),
    }
    assert set(manifest.diversity.by_source) == {"template", "generated"}
    out = Path(config.output_dir)
    assert json.loads((out / "manifest.json").read_text())["counts"] == counts
    assert (out / "report.html").exists() and (out / "rl_prompts.parquet").exists()
    assert len(RunStore(out).shards()) >= 2  # shard_size 3: more than one shard


def test_rerunning_a_finished_job_plays_nothing_again(tmp_path, local_ray, api_env) -> None:
    from synth.pipeline import run

    world = ScriptedWorld()
    with ScriptedEndpoint(world) as server:
        config = scripted_config(tmp_path, server)
        first = run(config)
        work = lambda: sum(n for role, n in world.roles.items() if role != "other")  # noqa: E731
        before = work()
        second = run(config)
    assert work() == before  # only the preflight ping ("other") went out again
    assert second.counts == first.counts and second.reconciled


def test_a_directory_of_another_config_is_refused(tmp_path, local_ray, api_env) -> None:
    from synth import TaskError
    from synth.pipeline import run

    with ScriptedEndpoint(ScriptedWorld()) as server:
        run(scripted_config(tmp_path, server))
        with pytest.raises(TaskError, match="another config"):
            run(scripted_config(tmp_path, server, seed=7))


def test_a_wrong_endpoint_fails_the_job_early_naming_the_role(tmp_path, local_ray, api_env) -> None:
    from synth import TaskError
    from synth.pipeline import run

    with ScriptedEndpoint(ScriptedWorld()) as server:
        config = scripted_config(tmp_path, server)
    config.endpoints.generator.base_url = server.url  # the server is gone now
    with pytest.raises(TaskError, match="role 'generator' does not answer"):
        run(config)


def test_the_local_cluster_listens_on_loopback_only(local_ray) -> None:
    import ipaddress

    import psutil

    def loopback(ip: str) -> bool:
        address = ipaddress.ip_address(ip.split("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return address.is_loopback

    reachable = [
        a.address
        for addresses in psutil.net_if_addrs().values()
        for a in addresses
        if a.family.name in ("AF_INET", "AF_INET6") and not loopback(a.address)
    ]
    if not reachable:
        reason = "this machine has no address but loopback: nothing to listen on beyond it"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must check Ray's sockets, but {reason}")
        pytest.skip(reason)
    me = psutil.Process()
    listening = []
    for proc in [me, *me.children(recursive=True)]:
        try:
            name, connections = proc.name(), proc.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue  # an idle worker that exited meanwhile
        listening += [
            (name, c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN
        ]
    assert any(name.startswith(("gcs_server", "raylet")) for name, _, _ in listening)
    exposed = [entry for entry in listening if not loopback(entry[1])]
    assert not exposed, f"Ray listens beyond loopback: {exposed}"
