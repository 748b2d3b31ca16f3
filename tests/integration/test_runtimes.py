"""RuntimeService end to end against a real agent: recipes installed from local files and
from a branch archive served on loopback, used by jobs, built in a sandboxed job, tested,
removed only when unused, refused when bad - and all of it kept across agent restarts."""

from __future__ import annotations

import functools
import http.server
import io
import os
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from joblet.api import joblet_pb2 as pb
from joblet.api import joblet_pb2_grpc as pbg
from node_agent.runtimes.store import disk_usage
from tests.support.agent import REPO, Agent

EXAMPLE = "python-3.11-demo"
EXAMPLE_DIR = os.path.join(REPO, "examples", "runtimes", EXAMPLE)
IMPORT_DEMO = (
    "import joblet_demo, os; print(joblet_demo.greet('job'), os.environ['JOBLET_RUNTIME'])"
)

# A recipe whose setup reports what the build sandbox let it do.
PROBE_YAML = """name: {name}
language: shell
version: "1"
setup: setup.sh
mounts: [{{source: ., target: /runtimes/{name}}}]
environment: {{PROBE_HOME: /runtimes/{name}}}
test: cat /runtimes/{name}/probe.txt
"""
PROBE_SETUP = """#!/bin/sh
out=/runtime/probe.txt
echo "uid=$(id -u)" > $out
for f in /usr/probe /etc/probe /src/probe /probe /proc/sys/probe; do
  if touch $f 2>/dev/null; then echo "wrote $f" >> $out; else echo "refused $f" >> $out; fi
done
grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\\t ' >> $out
if python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" \
    "{url}" 2>/dev/null; then echo "host-network=reachable" >> $out
else echo "host-network=unreachable" >> $out; fi
echo "setup-log-line"
"""


def stub(a: Agent) -> pbg.RuntimeServiceStub:
    if a.channel is None:
        a.channel = a.connect()
    return pbg.RuntimeServiceStub(a.channel)


def dir_files(path: str) -> list[pb.RuntimeFile]:
    out = []
    for dirpath, _, names in os.walk(path):
        for n in sorted(names):
            full = os.path.join(dirpath, n)
            with open(full, "rb") as f:
                out.append(
                    pb.RuntimeFile(
                        path=os.path.relpath(full, path),
                        content=f.read(),
                        executable=os.access(full, os.X_OK),
                    )
                )
    return out


def probe_files(name: str, url: str = "http://127.0.0.1:9/") -> list[pb.RuntimeFile]:
    return [
        pb.RuntimeFile(path="runtime.yaml", content=PROBE_YAML.format(name=name).encode()),
        pb.RuntimeFile(
            path="setup.sh", content=PROBE_SETUP.format(url=url).encode(), executable=True
        ),
    ]


def simple_files(name: str, *, setup: str = "", test: str = "") -> list[pb.RuntimeFile]:
    yaml = f"name: {name}\nmounts: [{{source: ., target: /runtimes/{name}}}]\n"
    files = [pb.RuntimeFile(path="data.txt", content=b"runtime data\n")]
    if setup:
        yaml += "setup: setup.sh\n"
        files.append(pb.RuntimeFile(path="setup.sh", content=setup.encode()))
    if test:
        yaml += f"test: {test}\n"
    return [pb.RuntimeFile(path="runtime.yaml", content=yaml.encode()), *files]


def install_local(
    a: Agent, name: str, files: list[pb.RuntimeFile], force: bool = False
) -> pb.InstallRuntimeResponse:
    return stub(a).InstallRuntimeFromLocal(
        pb.InstallRuntimeFromLocalRequest(runtime_spec=name, files=files, force_reinstall=force),
        timeout=120,
    )


def names(a: Agent) -> list[str]:
    return [r.name for r in stub(a).ListRuntimes(pb.EmptyRequest()).runtimes]


def runtimes_dir(a: Agent) -> str:
    return os.path.join(a.state_dir, "runtimes")


def staging_empty(a: Agent) -> bool:
    return os.listdir(os.path.join(runtimes_dir(a), ".staging")) == []


def remove(a: Agent, name: str) -> pb.RemoveRuntimeResponse:
    return stub(a).RemoveRuntime(pb.RemoveRuntimeRequest(runtime=name))


# -- an archive server on loopback, standing in for GitHub -----------------------------------------


def tar_of(entries: dict[str, bytes | str], executable: frozenset[str] = frozenset()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            if isinstance(data, str):  # a symlink
                info.type, info.linkname = tarfile.SYMTYPE, data
                tar.addfile(info)
                continue
            info.size = len(data)
            info.mode = 0o755 if name in executable else 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def example_archive(prefix: str) -> bytes:
    entries: dict[str, bytes | str] = {f"{prefix}README.md": b"runtimes repo\n"}
    execs = set()
    for f in dir_files(EXAMPLE_DIR):
        name = f"{prefix}runtimes/{EXAMPLE}/{f.path}"
        entries[name] = f.content
        if f.executable:
            execs.add(name)
    return tar_of(entries, frozenset(execs))


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(base URL, served folder): BASE/OWNER/REPO/archive/refs/heads/BRANCH.tar.gz."""
    root = tmp_path_factory.mktemp("archives")
    heads = root / "acme" / "runtimes" / "archive" / "refs" / "heads"
    heads.mkdir(parents=True)
    (heads / "main.tar.gz").write_bytes(example_archive("runtimes-main/"))
    evil = tar_of(
        {
            "runtimes-evil/x-1/runtime.yaml": b"name: x-1\n",
            "runtimes-evil/x-1/../../../escaped.txt": b"pwned\n",
        }
    )
    (heads / "evil.tar.gz").write_bytes(evil)
    linky = tar_of(
        {"runtimes-linky/x-1/runtime.yaml": b"name: x-1\n", "runtimes-linky/x-1/l": "/etc/passwd"}
    )
    (heads / "linky.tar.gz").write_bytes(linky)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def rt_agent(
    tmp_path_factory: pytest.TempPathFactory, archives: tuple[str, Path]
) -> Iterator[Agent]:
    state = tmp_path_factory.mktemp("rt-agent") / "state"
    a = Agent(str(state), ("--stop-grace", "2", "--runtime-archive-base", archives[0])).start()
    yield a
    a.stop()


# -- install from local files ----------------------------------------------------------------------


def test_example_installed_from_local_files_is_used_by_a_job(rt_agent: Agent) -> None:
    a = rt_agent
    r = install_local(a, EXAMPLE, dir_files(EXAMPLE_DIR))
    assert (r.status, r.runtime_spec) == ("completed", EXAMPLE), r.message
    assert r.build_job_uuid  # the setup ran as a job
    assert a.status(r.build_job_uuid).status == "COMPLETED"
    assert b"Successfully installed joblet-demo-0.1.0" in a.output(r.build_job_uuid)

    st, out = a.run_to_end("python3", "-c", IMPORT_DEMO, runtime=EXAMPLE)
    assert st.status == "COMPLETED", out
    assert out == b"hello job from joblet_demo 0.1.0 python-3.11-demo\n"
    assert st.runtime == EXAMPLE

    st, out = a.run_to_end("sh", "-c", "echo $PYTHONPATH; touch $PYTHONPATH/x", runtime=EXAMPLE)
    assert out.decode().splitlines()[0] == f"/runtimes/{EXAMPLE}/site-packages"
    assert st.status == "FAILED"  # the runtime is read-only to jobs

    # without the runtime, the package isn't there
    st, out = a.run_to_end("python3", "-c", "import joblet_demo")
    assert st.status == "FAILED" and b"ModuleNotFoundError" in out

    info = stub(a).GetRuntimeInfo(pb.GetRuntimeInfoRequest(runtime=EXAMPLE))
    assert info.found
    rt = info.runtime
    assert (rt.name, rt.language, rt.version, rt.available) == (EXAMPLE, "python", "3.11", True)
    assert list(rt.packages) == ["joblet-demo==0.1.0"]
    assert list(rt.requirements.architectures) == ["amd64", "arm64"]
    assert rt.size_bytes == disk_usage(os.path.join(runtimes_dir(a), EXAMPLE)) > 0
    assert EXAMPLE in names(a)
    assert not stub(a).GetRuntimeInfo(pb.GetRuntimeInfoRequest(runtime="nope-1")).found
    assert staging_empty(a)


def test_streaming_install_reports_progress_logs_then_result(rt_agent: Agent) -> None:
    setup = "#!/bin/sh\nfor i in 1 2 3; do echo building-$i; done\necho made > /runtime/made.txt\n"
    chunks = list(
        stub(rt_agent).StreamingInstallRuntimeFromLocal(
            pb.InstallRuntimeFromLocalRequest(
                runtime_spec="stream-1", files=simple_files("stream-1", setup=setup)
            ),
            timeout=120,
        )
    )
    kinds = [c.WhichOneof("chunk") for c in chunks]
    assert kinds[0] == "progress" and kinds[-1] == "result" and kinds.count("result") == 1
    steps = [(c.progress.step, c.progress.total_steps) for c in chunks if c.HasField("progress")]
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]
    logs = b"".join(c.log.data for c in chunks if c.HasField("log"))
    assert logs == b"building-1\nbuilding-2\nbuilding-3\n"
    # the logs arrive while the setup step runs, before activation
    assert kinds.index("log") > steps.index((3, 4)) and kinds.index("log") < len(kinds) - 2
    result = chunks[-1].result
    assert result.success and result.runtime_spec == "stream-1", result.message
    assert result.install_path == os.path.join(runtimes_dir(rt_agent), "stream-1")
    st, out = rt_agent.run_to_end("cat", "/runtimes/stream-1/made.txt", runtime="stream-1")
    assert (st.status, out) == ("COMPLETED", b"made\n")


def test_setup_runs_in_the_build_sandbox(rt_agent: Agent, archives: tuple[str, Path]) -> None:
    url = f"{archives[0]}/acme/runtimes/archive/refs/heads/main.tar.gz"
    r = install_local(rt_agent, "probe-1", probe_files("probe-1", url))
    assert r.status == "completed", r.message
    files = Path(runtimes_dir(rt_agent)) / "probe-1" / "files"
    report = (files / "probe.txt").read_text().split()
    uid = int(report[0].removeprefix("uid="))
    assert uid != 0
    for path in ("/usr/probe", "/etc/probe", "/src/probe", "/probe", "/proc/sys/probe"):
        assert f"refused {path}" in (files / "probe.txt").read_text(), path
    assert not os.path.exists("/usr/probe") and not os.path.exists("/etc/probe")
    assert "CapEff:0000000000000000" in report
    assert "NoNewPrivs:1" in report
    assert "Seccomp:2" in report
    assert "host-network=unreachable" in report  # the test's own loopback server
    # once installed, the runtime belongs to root, not to the build user
    for p in [files, *files.rglob("*")]:
        assert p.lstat().st_uid == 0, p
    # TestRuntime runs the manifest's test command with the runtime
    t = stub(rt_agent).TestRuntime(pb.TestRuntimeRequest(runtime="probe-1"), timeout=60)
    assert t.success and t.exit_code == 0 and f"uid={uid}" in t.output


def test_failed_setup_installs_nothing(rt_agent: Agent) -> None:
    setup = "#!/bin/sh\necho about to fail\nexit 3\n"
    r = install_local(rt_agent, "broken-1", simple_files("broken-1", setup=setup))
    assert r.status == "failed"
    assert "exit 3" in r.message
    assert rt_agent.output(r.build_job_uuid) == b"about to fail\n"
    assert "broken-1" not in names(rt_agent)
    assert not os.path.exists(os.path.join(runtimes_dir(rt_agent), "broken-1"))
    assert staging_empty(rt_agent)
    with pytest.raises(grpc.RpcError) as e:
        rt_agent.run("true", runtime="broken-1")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_client_gone_mid_setup_stops_the_build(rt_agent: Agent) -> None:
    setup = "#!/bin/sh\necho started\nsleep 60\n"
    request = pb.InstallRuntimeFromLocalRequest(
        runtime_spec="slow-1", files=simple_files("slow-1", setup=setup)
    )
    chunks = stub(rt_agent).StreamingInstallRuntimeFromLocal(request, timeout=60)
    for c in chunks:
        if c.HasField("log"):
            break  # the setup job is running
    chunks.cancel()
    deadline = time.monotonic() + 15
    while True:
        jobs = rt_agent.jobs.ListJobs(pb.EmptyRequest()).jobs
        build = [j for j in jobs if j.name == "runtime-setup-slow-1"]
        if build and build[0].status in ("STOPPED", "FAILED") and staging_empty(rt_agent):
            break
        assert time.monotonic() < deadline, (build, os.listdir(runtimes_dir(rt_agent)))
        time.sleep(0.1)
    assert "slow-1" not in names(rt_agent)
    # nothing is left claimed: the same name installs now
    fast = simple_files("slow-1")
    assert install_local(rt_agent, "slow-1", fast).status == "completed"


def test_test_runtime_reports_failure(rt_agent: Agent) -> None:
    files = simple_files("failing-1", test="'cat /runtimes/failing-1/data.txt; exit 7'")
    assert install_local(rt_agent, "failing-1", files).status == "completed"
    t = stub(rt_agent).TestRuntime(pb.TestRuntimeRequest(runtime="failing-1"), timeout=60)
    assert (t.success, t.exit_code, t.output) == (False, 7, "runtime data\n")
    assert t.error
    with pytest.raises(grpc.RpcError) as e:
        stub(rt_agent).TestRuntime(pb.TestRuntimeRequest(runtime="absent-1"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_already_exists_unless_forced(rt_agent: Agent) -> None:
    assert install_local(rt_agent, "again-1", simple_files("again-1")).status == "completed"
    with pytest.raises(grpc.RpcError) as e:
        install_local(rt_agent, "again-1", simple_files("again-1"))
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "force_reinstall" in (e.value.details() or "")
    files = simple_files("again-1")
    files[1] = pb.RuntimeFile(path="data.txt", content=b"version two\n")
    assert install_local(rt_agent, "again-1", files, force=True).status == "completed"
    _, out = rt_agent.run_to_end("cat", "/runtimes/again-1/data.txt", runtime="again-1")
    assert out == b"version two\n"
    assert names(rt_agent).count("again-1") == 1


# -- install from a branch archive -----------------------------------------------------------------


def test_install_from_archive_server_streams_five_steps(rt_agent: Agent) -> None:
    request = pb.InstallRuntimeRequest(
        runtime_spec=EXAMPLE, repository="acme/runtimes", branch="main", force_reinstall=True
    )
    chunks = list(stub(rt_agent).StreamingInstallRuntimeFromGithub(request, timeout=120))
    progress = [c.progress for c in chunks if c.HasField("progress")]
    assert [(p.step, p.total_steps) for p in progress] == [(i, 5) for i in range(1, 6)]
    assert "acme/runtimes/archive/refs/heads/main.tar.gz" in progress[0].message
    assert chunks[-1].result.success, chunks[-1].result.message
    st, out = rt_agent.run_to_end("python3", "-c", IMPORT_DEMO, runtime=EXAMPLE)
    assert st.status == "COMPLETED", out


@pytest.mark.parametrize(
    ("branch", "code", "fragment"),
    [
        ("evil", grpc.StatusCode.INVALID_ARGUMENT, "climbs out of the archive"),
        ("linky", grpc.StatusCode.INVALID_ARGUMENT, "points to the absolute path"),
        ("missing", grpc.StatusCode.FAILED_PRECONDITION, "HTTP 404"),
    ],
)
def test_bad_archives_install_nothing(
    rt_agent: Agent, archives: tuple[str, Path], branch: str, code: grpc.StatusCode, fragment: str
) -> None:
    before = names(rt_agent)
    request = pb.InstallRuntimeRequest(
        runtime_spec="x-1", repository="acme/runtimes", branch=branch
    )
    with pytest.raises(grpc.RpcError) as e:
        stub(rt_agent).InstallRuntimeFromGithub(request, timeout=60)
    assert e.value.code() == code
    assert fragment in (e.value.details() or "")
    assert names(rt_agent) == before
    assert staging_empty(rt_agent)
    assert not (archives[1] / "escaped.txt").exists()
    assert not list(Path(rt_agent.state_dir).parent.rglob("escaped.txt"))


# -- bad input -------------------------------------------------------------------------------------


def test_validate_runtime_spec(rt_agent: Agent) -> None:
    for name, lang, version, variants in [
        ("python-3.11-ml", "python", "3.11", ["ml"]),
        ("openjdk-21", "openjdk", "21", []),
        ("node-20", "node", "20", []),
    ]:
        r = stub(rt_agent).ValidateRuntimeSpec(pb.ValidateRuntimeSpecRequest(runtime_spec=name))
        assert r.valid and r.normalized_spec == name
        assert (r.spec_info.language, r.spec_info.version) == (lang, version)
        assert list(r.spec_info.variants) == variants
    for bad, fragment in [
        ("", "empty"),
        ("Python-3.11", "lowercase"),
        ("python 3.11", "whitespace"),
        ("python", "no version"),
        ("../../etc", "path characters"),
        ("a-1" + "-x" * 40, "limit is 63"),
    ]:
        r = stub(rt_agent).ValidateRuntimeSpec(pb.ValidateRuntimeSpecRequest(runtime_spec=bad))
        assert not r.valid and fragment in r.message, (bad, r.message)


@pytest.mark.parametrize(
    ("spec", "files", "fragment"),
    [
        ("Bad-1", simple_files("bad-1"), "lowercase"),
        ("bad", simple_files("bad-1"), "no version"),
        ("bad-1", [], "no files"),
        ("bad-1", [*simple_files("bad-1"), pb.RuntimeFile(path="../x", content=b"")], "'..'"),
        ("bad-1", [*simple_files("bad-1"), pb.RuntimeFile(path="/etc/x", content=b"")], "absolute"),
        ("bad-1", simple_files("other-1"), "names the runtime 'other-1'"),
        ("bad-1", [pb.RuntimeFile(path="setup.sh", content=b"")], "no runtime.yaml"),
        (
            "bad-1",
            [pb.RuntimeFile(path="runtime.yaml", content=b"name: bad-1\nsetup: nope.sh\n")],
            "setup script 'nope.sh' is not a file",
        ),
        (
            "bad-1",
            [
                pb.RuntimeFile(
                    path="runtime.yaml",
                    content=b"name: bad-1\nmounts: [{source: gone, target: /runtimes/b}]\n",
                )
            ],
            "mount source 'gone' does not exist",
        ),
    ],
)
def test_bad_local_installs_refused(
    rt_agent: Agent, spec: str, files: list[pb.RuntimeFile], fragment: str
) -> None:
    before = names(rt_agent)
    try:
        r = install_local(rt_agent, spec, files)
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e.details()
        assert fragment in (e.details() or ""), e.details()
    else:
        assert r.status == "failed" and fragment in r.message, r.message
    assert names(rt_agent) == before
    assert staging_empty(rt_agent)


def test_unknown_runtime_refused_for_jobs(rt_agent: Agent) -> None:
    with pytest.raises(grpc.RpcError) as e:
        rt_agent.run("true", runtime="nothing-1")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert "not installed" in (e.value.details() or "")


# -- removal and restarts --------------------------------------------------------------------------


def wait_running(a: Agent, uuid: str) -> None:
    deadline = time.monotonic() + 10
    while a.status(uuid).status != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_remove_refused_while_used_then_frees_space(rt_agent: Agent) -> None:
    a = rt_agent
    assert install_local(a, "removable-1", simple_files("removable-1")).status == "completed"
    path = os.path.join(runtimes_dir(a), "removable-1")
    size = disk_usage(path)
    job = a.run("sh", "-c", "cat /runtimes/removable-1/data.txt; sleep 30", runtime="removable-1")
    wait_running(a, job.job_uuid)
    with pytest.raises(grpc.RpcError) as e:
        remove(a, "removable-1")
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "used by 1 running job" in (e.value.details() or "")
    with pytest.raises(grpc.RpcError) as e:
        install_local(a, "removable-1", simple_files("removable-1"), force=True)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    a.jobs.StopJob(pb.StopJobRequest(uuid=job.job_uuid))
    assert a.output(job.job_uuid).startswith(b"runtime data\n")
    deadline = time.monotonic() + 5
    while True:  # the job's hold is released just after it is recorded as ended
        try:
            r = remove(a, "removable-1")
            break
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert r.success and r.freed_space_bytes == size > 0
    assert not os.path.exists(path)
    assert "removable-1" not in names(a)
    with pytest.raises(grpc.RpcError) as e:
        remove(a, "removable-1")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_every_mutation_survives_kill9(fresh_state: str, archives: tuple[str, Path]) -> None:
    a = Agent(fresh_state, ("--stop-grace", "2", "--runtime-archive-base", archives[0])).start()
    try:
        r = stub(a).InstallRuntimeFromGithub(
            pb.InstallRuntimeRequest(
                runtime_spec=EXAMPLE,
                repository="acme/runtimes",
                branch="main",
                path=f"runtimes/{EXAMPLE}",
            ),
            timeout=120,
        )
        assert r.status == "completed", r.message
        assert (r.repository, r.resolved_path) == ("acme/runtimes", f"runtimes/{EXAMPLE}")
        assert install_local(a, "gone-1", simple_files("gone-1")).status == "completed"
        size = stub(a).GetRuntimeInfo(pb.GetRuntimeInfoRequest(runtime=EXAMPLE)).runtime.size_bytes
        holder = a.run("sh", "-c", "sleep 4; echo held", runtime="gone-1").job_uuid
        wait_running(a, holder)

        a.kill9()
        a.start()
        assert sorted(names(a)) == sorted([EXAMPLE, "gone-1"])
        info = stub(a).GetRuntimeInfo(pb.GetRuntimeInfoRequest(runtime=EXAMPLE)).runtime
        assert info.size_bytes == size
        st, out = a.run_to_end("python3", "-c", IMPORT_DEMO, runtime=EXAMPLE)
        assert st.status == "COMPLETED", out
        # the job that held gone-1 across the restart still holds it
        with pytest.raises(grpc.RpcError) as e:
            remove(a, "gone-1")
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert a.wait(holder).status == "COMPLETED"
        deadline = time.monotonic() + 5
        while True:
            try:
                assert remove(a, "gone-1").success
                break
            except grpc.RpcError:
                assert time.monotonic() < deadline
                time.sleep(0.05)

        a.kill9()
        a.start()
        assert names(a) == [EXAMPLE]
        t = stub(a).TestRuntime(pb.TestRuntimeRequest(runtime=EXAMPLE), timeout=60)
        assert t.success and "hello runtime from joblet_demo" in t.output
    finally:
        a.stop()


def test_cli_install_list_test_remove(
    rt_agent: Agent, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from joblet.cli.main import main

    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"version: 1\ndefault: local\nnodes:\n  local:\n    address: {rt_agent.target}\n"
    )
    cli = ["--config", str(cfg)]
    recipe = tmp_path / "cli-1"
    recipe.mkdir()
    (recipe / "runtime.yaml").write_text(
        "name: cli-1\nsetup: setup.sh\ntest: cat /runtimes/cli-1/out.txt\n"
        "mounts: [{source: ., target: /runtimes/cli-1}]\n"
    )
    (recipe / "setup.sh").write_text("echo from-setup; echo built > /runtime/out.txt\n")
    assert main([*cli, "runtime", "install", str(recipe)]) == 0
    out, err = capsys.readouterr()
    assert "from-setup" in out and "[4/4] activating" in err and "cli-1" in out
    assert main([*cli, "runtime", "install", "cli-1", "--from-dir", str(recipe), "--force"]) == 0
    capsys.readouterr()
    assert main([*cli, "runtime", "list"]) == 0
    assert "cli-1" in capsys.readouterr().out
    assert main([*cli, "runtime", "test", "cli-1"]) == 0
    out, err = capsys.readouterr()
    assert out == "built\n" and "passed" in err
    assert main([*cli, "runtime", "validate", "Python-3"]) == 1
    assert "lowercase" in capsys.readouterr().out
    assert main([*cli, "runtime", "remove", "cli-1"]) == 0
    assert "removed cli-1" in capsys.readouterr().out
    assert main([*cli, "runtime", "info", "cli-1"]) == 1
    capsys.readouterr()
    github = ["--repo", "acme/runtimes", "--branch", "main", "--path", f"runtimes/{EXAMPLE}"]
    assert main([*cli, "runtime", "install", EXAMPLE, *github, "--force"]) == 0
    out, err = capsys.readouterr()
    assert "[5/5] activating" in err and "Successfully installed joblet-demo" in out
