"""Dockerfile and compose.yaml agree with each other, with the settings and with the locks.

No image is built here: make image-check builds both and starts them, with
buildah on a stand-in base (.ci/image-check), and the last test here holds
compose.yaml to what it starts. What can be checked without building is:
each compose service builds a stage that exists and runs a command the CLI
has; ports, settings and the broker URL line up; each image installs its
lock with hashes checked and the project from the same folders the wheel
test builds from; both images run as an ordinary user with health checks;
the sandbox's security options are on the worker, which runs snippets, not
on the web server, and nothing broader (no capabilities, not privileged).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from typing import Any

import pytest
import yaml

from app.settings import ROOT, Settings
from tests.test_wheel import SOURCES

SANDBOX_OPTIONS = {"seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"}


def stages() -> dict[str, list[tuple[str, str]]]:
    """Each build stage's instructions as (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    found: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        instruction, _, args = line.strip().partition(" ")
        if instruction.upper() == "FROM":
            current = found.setdefault(args.split()[-1], [])
        current.append((instruction.upper(), " ".join(args.split())))
    return found


def instructions(stage: str, kind: str) -> list[str]:
    return [args for instruction, args in stages()[stage] if instruction == kind]


def global_args() -> dict[str, str]:
    """The ARGs before the first FROM, with their defaults."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    found: dict[str, str] = {}
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["FROM"]:
            break
        if words[:1] == ["ARG"]:
            name, _, default = words[1].partition("=")
            found[name] = default
    return found


def expand(words: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], words)


def base(stage: str, **build_args: str) -> str:
    """The image a stage starts from, through the stages it names, with these build args."""
    args = global_args() | build_args
    start = expand(instructions(stage, "FROM")[0].split()[0], args)
    return base(start, **build_args) if start in stages() else start


def env(stage: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for args in instructions(stage, "ENV"):
        pairs |= dict(word.split("=", 1) for word in shlex.split(args))
    return pairs


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded["services"]


def test_compose_runs_web_redis_and_a_gpu_worker_from_the_dockerfiles_stages(compose) -> None:  # type: ignore[no-untyped-def]
    assert set(compose) == {"web", "redis", "worker"}
    for name in ("web", "worker"):
        assert compose[name]["build"] == {"context": ".", "target": name}
        assert name in stages(), f"no stage {name} in the Dockerfile"
    (gpu,) = compose["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]


def test_the_images_commands_are_the_clis() -> None:
    for stage, command in (("web", "serve"), ("worker", "worker")):
        (cmd,) = instructions(stage, "CMD")
        assert yaml.safe_load(cmd) == ["sidebyside", command]
        helped = subprocess.run([sys.executable, "-m", "app.cli", command, "--help"],
                                capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert helped.returncode == 0, helped.stderr


def test_ports_settings_and_broker_line_up(compose) -> None:  # type: ignore[no-untyped-def]
    web = env("web")
    assert web["SIDEBYSIDE_HOST"] == "0.0.0.0"
    assert instructions("web", "EXPOSE") == [web["SIDEBYSIDE_PORT"]]
    assert compose["web"]["ports"] == [f"{web['SIDEBYSIDE_PORT']}:{web['SIDEBYSIDE_PORT']}"]
    named = {*web, *env("worker"), *compose["web"]["environment"],
             *compose["worker"]["environment"]}
    fields = {f"SIDEBYSIDE_{name.upper()}" for name in Settings.model_fields}
    assert {n for n in named if n.startswith("SIDEBYSIDE_")} <= fields
    for name in ("web", "worker"):
        broker = compose[name]["environment"]["SIDEBYSIDE_BROKER_URL"]
        host = re.fullmatch(r"redis://([\w-]+):6379/\d+", broker)
        assert host and host[1] in compose and compose[name]["depends_on"][host[1]]


def test_each_image_installs_its_lock_with_hashes_then_the_project_alone() -> None:
    for stage, packages, lock in (("web", "cpu-packages", "requirements/web.txt"),
                                  ("worker", "gpu-packages", "requirements/gpu.txt")):
        assert (ROOT / lock).is_file()
        assert expand(instructions(stage, "FROM")[0].split()[0], global_args()) == packages
        assert [c for c in instructions(packages, "COPY") if c.startswith(lock)]
        assert "pip install --require-hashes" in " ".join(instructions(packages, "RUN"))
        runs = " ".join(instructions(stage, "RUN"))
        assert "pip install --no-deps --no-build-isolation /src" in runs
        # buildah's layer cache can't see into the mount: the sources' digest comes first
        steps = stages()[stage]
        install = next(i for i, (kind, args) in enumerate(steps)
                       if kind == "RUN" and "--no-build-isolation /src" in args)
        assert ("ARG", "SOURCE_DIGEST=") in steps[:install]
    copied = {args.split()[0] for args in instructions("source", "COPY")}
    assert copied | {"pyproject.toml", "setup.py"} == {*SOURCES}
    assert ".venv" in (ROOT / ".dockerignore").read_text().split()


def test_images_run_as_an_ordinary_user_with_health_checks() -> None:
    for stage in ("web", "worker"):
        (user,) = instructions(stage, "USER")
        assert user not in ("root", "0")
        (check,) = instructions(stage, "HEALTHCHECK")
        assert "CMD" in check
    assert "/api/health" in instructions("web", "HEALTHCHECK")[0]


def test_only_the_worker_gets_the_sandboxs_security_options_and_nothing_broader(compose) -> None:  # type: ignore[no-untyped-def]
    assert set(compose["worker"]["security_opt"]) == SANDBOX_OPTIONS
    assert "security_opt" not in compose["web"]  # it runs no snippet: Docker's defaults hold
    assert compose["web"]["environment"]["SIDEBYSIDE_BROKER_URL"]
    for name in ("web", "worker"):
        assert "cap_add" not in compose[name] and not compose[name].get("privileged")
    readme = (ROOT / "README.md").read_text()
    assert all(option in readme for option in SANDBOX_OPTIONS)


def test_the_bases_are_build_args_with_the_official_images_by_default() -> None:
    args = global_args()
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    assert args["CUDA_IMAGE"].startswith("nvidia/cuda:")
    assert base("web") == args["PYTHON_IMAGE"]
    assert base("worker") == args["CUDA_IMAGE"]
    # what make image-check builds: the CPU worker on the web's packages, on a stand-in
    standin = "localhost/stand-in:1"
    assert base("web", PYTHON_IMAGE=standin) == standin
    assert base("worker", PYTHON_IMAGE=standin, WORKER_PACKAGES="cpu-packages") == standin
    for stage in ("cpu-packages", "gpu-packages"):
        assert "bubblewrap libseccomp2 graphviz" in " ".join(instructions(stage, "RUN"))


IMAGE_CHECK = ROOT / ".ci" / "image-check"


def bash_array(script: str, name: str) -> list[str]:
    (line,) = re.findall(rf"^{name}=\((.*)\)$", script, re.MULTILINE)
    return shlex.split(line)


def test_compose_runs_what_make_image_check_started(compose) -> None:  # type: ignore[no-untyped-def]
    """compose.yaml can't be run here; make image-check starts the same services
    with the same commands, users and settings, without Docker. What it changes,
    it changes for every service alike: the addresses (this machine's loopback)."""
    script = IMAGE_CHECK.read_text()
    started = set(re.findall(r'^start (\w+) "\$\w+" "\$\{DEPLOY\[@\]\}"', script, re.MULTILINE))
    assert started == {"web", "worker"}
    assert set(re.findall(r"--target (\w+)", script)) == started
    assert {*started, "redis"} == set(compose)
    # the same settings for both, those compose gives them (the secret and the broker)
    deployed = {word.split("=", 1)[0] for word in bash_array(script, "DEPLOY")}
    for name in started:
        assert set(compose[name]["environment"]) == deployed
        # the images' own command, user and health check, as the check runs them
        assert not {"command", "entrypoint", "user", "healthcheck"} & set(compose[name])
    # Redis with compose's command
    assert bash_array(script, "REDIS_COMMAND") == compose["redis"]["command"]
    assert '"SOURCE_DIGEST=$digest"' in script
