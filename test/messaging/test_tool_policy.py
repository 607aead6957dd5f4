"""The tool allow-list and `user_auth` (allow_all, userlist, oidc with a real identity
provider on loopback) over the message queue: a listed tool runs; a refused job gets exactly
one status update, `failed` with the reason, and nothing of it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from pulsar.core import PulsarApp
from test.jobs.test_oidc import IdentityProvider, oidc_auth
from test.messaging.conftest import GalaxyQueues, setup_body

pytestmark = pytest.mark.rabbitmq

App = Callable[..., PulsarApp]


@pytest.fixture
def toolbox(tmp_path: Path) -> Path:
    """`probe` 1.0 (the tool of `setup_body`) may only `touch` a file in its outputs."""
    (tmp_path / "probe.xml").write_text(
        '<tool id="probe" version="1.0"><validators><command_validator>'
        '<literal value="touch"/><output/></command_validator></validators></tool>')
    box = tmp_path / "toolbox.xml"
    box.write_text('<toolbox><tool file="probe.xml"/></toolbox>')
    return box


def refused_once(galaxy: GalaxyQueues, job_id: str, reason: str, returncode: int | None = 1) -> dict[str, Any]:
    """One update, `failed` with the reason; `returncode` 1 when the job directory exists
    (set up, then refused), None when the refusal came before it was created."""
    document = galaxy.terminal(job_id)
    galaxy.barrier()
    assert galaxy.statuses(job_id) == ["failed"], galaxy.for_job(job_id)
    assert document["returncode"] == returncode and reason in document["stderr"], document
    assert document["outputs_directory_contents"] == []
    return document


def test_listed_tool_runs_and_the_others_are_refused(galaxy: GalaxyQueues, mq_app: App, toolbox: Path,
                                                     tmp_path: Path) -> None:
    mq_app(tool_config_files=str(toolbox))
    galaxy.send("setup", setup_body("ok", "touch __PULSAR_JOB_DIRECTORY__/outputs/ran"))
    document = galaxy.terminal("ok")
    assert (document["status"], document["returncode"], document["outputs_directory_contents"]) == \
        ("complete", 0, ["ran"]), document

    witness = tmp_path / "witness"
    unlisted = setup_body("unlisted", f"touch {witness}")
    unlisted["setup_params"]["tool_id"] = "rm_rf"
    galaxy.send("setup", unlisted)
    document = refused_once(galaxy, "unlisted", "tool 'rm_rf' version '1.0' is not in this server's tool allow-list",
                            returncode=None)
    assert not Path(document["job_directory"]).exists()

    galaxy.send("setup", setup_body("misfit", f"touch __PULSAR_JOB_DIRECTORY__/outputs/x; touch {witness}"))
    refused_once(galaxy, "misfit", "does not fit the <command_validator> of tool 'probe'")
    assert not witness.exists()


@pytest.mark.parametrize("allowed, refused", [(["anonymous"], False), (["alice"], True)])
def test_user_auth(galaxy: GalaxyQueues, mq_app: App, tmp_path: Path, allowed: list[str], refused: bool) -> None:
    mq_app(user_auth={"authentication": [{"type": "allow_all"}],
                      "authorization": [{"type": "userlist", "userlist_allowed_users": allowed}]})
    galaxy.send("setup", setup_body("u", "touch __PULSAR_JOB_DIRECTORY__/outputs/ran"))
    if refused:
        refused_once(galaxy, "u", "user 'anonymous' is not in userlist_allowed_users")
    else:
        assert galaxy.terminal("u")["outputs_directory_contents"] == ["ran"]


@pytest.mark.parametrize("user, refused", [("alice@example.org", False), ("mallory@example.org", True)])
def test_oidc_user_from_the_setup_messages_token_endpoint(galaxy: GalaxyQueues, mq_app: App, user: str,
                                                          refused: bool) -> None:
    idp = IdentityProvider()
    try:
        idp.claims = {"preferred_username": user}
        mq_app(user_auth=oidc_auth(idp, ["alice@example.org"]))
        galaxy.send("setup", setup_body("o", "touch __PULSAR_JOB_DIRECTORY__/outputs/ran",
                                        token_endpoint=f"{idp.url}/api/jobs/ENC/oidc-tokens?job_key=K"))
        if refused:
            refused_once(galaxy, "o", "user 'mallory@example.org' is not in userlist_allowed_users")
        else:
            assert galaxy.terminal("o")["outputs_directory_contents"] == ["ran"]
        assert idp.paths[0] == "/api/jobs/ENC/oidc-tokens?job_key=K&provider=myprov"
    finally:
        idp.stop()
