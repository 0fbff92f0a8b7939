"""utils.grading.sandbox: real child processes, real limits, no mocks.

Each hostile case runs with and without bubblewrap (the bubblewrap variant is
skipped, with the reason, where bwrap is missing or does not work). Checks that
need root (uid change, ownership, a non-root parent) are skipped without it.
Every run passes a marker variable to the child, and every test ends by
checking that no process holding the marker is alive.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid

import pytest

from utils.grading import sandbox
from utils.grading.sandbox import Limits, SandboxError

ROOT = pathlib.Path(__file__).resolve().parents[1]
PY = sys.executable
IS_ROOT = os.geteuid() == 0
BWRAP = sandbox.bubblewrap_path()
MARK = "SANDBOX_TEST_MARK"

needs_bwrap = pytest.mark.skipif(BWRAP is None, reason=f"bubblewrap unavailable: {sandbox._bwrap_probe.get('why')}")
MODES = [pytest.param(False, id="no-bwrap"), pytest.param(True, id="bwrap", marks=needs_bwrap)]
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (uid change, ownership)")


def alive_as(uid: int) -> list[int]:
    """Live (non-zombie) processes whose real uid is uid."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", "rb") as f:
                fields = dict(line.split(b":", 1) for line in f.read().splitlines() if b":" in line)
        except OSError:
            continue
        if int(fields[b"Uid"].split()[0]) == uid and fields[b"State"].split()[0] not in (b"Z", b"X"):
            found.append(int(name))
    return found


def alive_with(mark: str) -> list[tuple[int, str]]:
    """Live (non-zombie) processes whose environment holds MARK=mark."""
    needle = f"\0{MARK}={mark}\0".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if needle not in b"\0" + f.read():
                    continue
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        state = data.rpartition(b")")[2].split()[0].decode()
        if state not in ("Z", "X"):
            found.append((int(name), data.partition(b"(")[2].partition(b")")[0].decode()))
    return found


@pytest.fixture
def mark():
    """A marker for this test's children; nothing holding it may outlive the test."""
    value = uuid.uuid4().hex
    yield value
    assert alive_with(value) == [], "sandboxed processes were left behind"


@pytest.fixture
def box(tmp_path):
    """A scratch tree under pytest's tmp_path (whose parent is 0700 root: the sandbox must see through it)."""
    work = tmp_path / "work"
    work.mkdir()
    return tmp_path


def sbrun(argv, *, cwd, mode, mark, env=None, **kwargs):
    env = {**(env or {}), MARK: mark}
    result = sandbox.run(argv, cwd=cwd, bubblewrap=mode, env=env, **kwargs)
    assert alive_with(mark) == [], f"left behind after {argv!r}"
    return result


def py(code: str) -> list[str]:
    return [PY, "-c", code]


# ---------------------------------------------------------------------------
# arguments
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("wall_seconds", 0),
        ("wall_seconds", -1.0),
        ("wall_seconds", float("inf")),
        ("cpu_seconds", 0),
        ("memory_bytes", 0),
        ("processes", 0),
        ("file_bytes", -1),
        ("open_files", 2),
        ("output_bytes", -1),
        ("network", "no"),
    ],
)
def test_limits_reject_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"Limits.{field} must be"):
        Limits(**{field: value})


def test_limits_cpu_default_follows_the_wall_limit():
    assert Limits(wall_seconds=10).effective_cpu_seconds == 15
    assert Limits(wall_seconds=0.5).effective_cpu_seconds == 6
    assert Limits(wall_seconds=10, cpu_seconds=3).effective_cpu_seconds == 3


def test_run_rejects_bad_arguments_naming_them(box):
    work = box / "work"
    with pytest.raises(ValueError, match="argv must not be empty"):
        sandbox.run([], cwd=work)
    with pytest.raises(TypeError, match="argv must be a sequence"):
        sandbox.run("echo hi", cwd=work)
    with pytest.raises(ValueError, match="cwd: .* is not an existing directory"):
        sandbox.run(["true"], cwd=box / "missing")
    with pytest.raises(ValueError, match="writable: .* is not an existing directory"):
        sandbox.run(["true"], cwd=work, writable=[box / "missing"])
    with pytest.raises(ValueError, match="writable: / is a system directory"):
        sandbox.run(["true"], cwd=work, writable=["/"])
    with pytest.raises(ValueError, match="readable: .* does not exist"):
        sandbox.run(["true"], cwd=work, readable=[box / "missing"])
    with pytest.raises(ValueError, match="hidden: .* contains the writable directory"):
        sandbox.run(["true"], cwd=work, hidden=[box])
    with pytest.raises(ValueError, match="run_as must be"):
        sandbox.run(["true"], cwd=work, run_as="nobody")
    with pytest.raises(ValueError, match="bubblewrap must be"):
        sandbox.run(["true"], cwd=work, bubblewrap="yes")
    with pytest.raises(TypeError, match="limits must be a Limits"):
        sandbox.run(["true"], cwd=work, limits={"wall_seconds": 1})
    with pytest.raises(TypeError, match="stdin_bytes must be bytes"):
        sandbox.run(["true"], cwd=work, stdin_bytes="text")
    with pytest.raises(ValueError, match="env: bad variable name"):
        sandbox.run(["true"], cwd=work, env={"A=B": "1"})


# ---------------------------------------------------------------------------
# ordinary runs
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_ok_run_captures_output_and_stdin(box, mode, mark):
    code = "import sys; data = sys.stdin.read(); print(data.upper()); print('to stderr', file=sys.stderr)"
    res = sbrun(py(code), cwd=box / "work", mode=mode, mark=mark, stdin_bytes=b"hello")
    assert (res.status, res.returncode, res.signal) == ("ok", 0, None)
    assert res.stdout == b"HELLO\n" and res.stderr == b"to stderr\n"
    assert not res.stdout_truncated and not res.stderr_truncated
    assert res.ok and res.message() == "finished normally"
    assert {"rlimits", "new session", "no new privileges", "no network", "private /tmp"} <= set(res.isolation)
    assert ("bubblewrap" in res.isolation) == mode
    if IS_ROOT:
        assert any(item.startswith("uid ") for item in res.isolation)
    assert 0 < res.wall_seconds < 10 and res.leftover_killed == 0


@pytest.mark.parametrize("mode", MODES)
def test_exit_code_is_an_error(box, mode, mark):
    res = sbrun(py("import sys; sys.exit(3)"), cwd=box / "work", mode=mode, mark=mark)
    assert (res.status, res.returncode, res.signal) == ("error", 3, None)
    assert res.message() == "exited with code 3"


@pytest.mark.parametrize("mode", MODES)
def test_missing_program_could_not_start(box, mode, mark):
    res = sbrun(["no-such-program-anywhere"], cwd=box / "work", mode=mode, mark=mark)
    assert (res.status, res.returncode) == ("error", 127)
    assert b"cannot run no-such-program-anywhere" in res.stderr
    assert res.message() == "could not be started (exit code 127)"


@pytest.mark.parametrize("mode", MODES)
def test_child_imports_numpy_from_the_venv(box, mode, mark):
    res = sbrun(py("import numpy, sys; print(numpy.__file__)"), cwd=box / "work", mode=mode, mark=mark)
    assert res.status == "ok", res.stderr
    assert res.stdout.decode().startswith(str(pathlib.Path(sys.prefix)))


@pytest.mark.parametrize("mode", MODES)
def test_environment_is_exactly_the_minimal_one(box, mode, mark, monkeypatch):
    monkeypatch.setenv("CNN_COURSE_GRADER_SEED", "secret")
    monkeypatch.setenv("NBGRADER_DB_URL", "sqlite:///secret.db")
    work = box / "work"
    code = "import json, os; print(json.dumps(dict(os.environ)))"
    res = sbrun(py(code), cwd=work, mode=mode, mark=mark, env={"EXTRA": "1", "USER": None})
    env = json.loads(res.stdout)
    env.pop("PWD", None)  # set by bubblewrap's --chdir
    assert sorted(env) == sorted(["PATH", "HOME", "LANG", "LOGNAME", "EXTRA", MARK, sandbox.TOKEN_VARIABLE])
    assert env["HOME"] == str(work.resolve()) and env["EXTRA"] == "1"
    assert len(env[sandbox.TOKEN_VARIABLE]) == 32


# ---------------------------------------------------------------------------
# time
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_busy_loop_times_out(box, mode, mark):
    res = sbrun(py("while True: pass"), cwd=box / "work", mode=mode, mark=mark, limits=Limits(wall_seconds=1))
    assert (res.status, res.returncode, res.signal) == ("timeout", None, signal.SIGKILL)
    assert res.message() == "ran past the 1 s time limit and was stopped"
    assert 1.0 <= res.wall_seconds < 3


@pytest.mark.parametrize("mode", MODES)
def test_native_sleep_ignoring_sigterm_and_sigint_is_killed(box, mode, mark):
    code = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "time.sleep(1000)\n"
    )
    start = time.monotonic()
    res = sbrun(py(code), cwd=box / "work", mode=mode, mark=mark, limits=Limits(wall_seconds=0.8))
    assert res.status == "timeout"
    assert res.message() == "ran past the 0.8 s time limit and was stopped"
    assert time.monotonic() - start < 4


@pytest.mark.parametrize("mode", MODES)
def test_numpy_matmul_loop_is_killed(box, mode, mark):
    code = "import numpy as np\na = np.ones((600, 600))\nwhile True:\n    a @ a\n"
    res = sbrun(py(code), cwd=box / "work", mode=mode, mark=mark, limits=Limits(wall_seconds=1.5))
    assert res.status == "timeout" and res.stderr == b""


def test_cpu_limit_stops_with_sigxcpu(box, mark):
    res = sbrun(py("while True: pass"), cwd=box / "work", mode=False, mark=mark,
                limits=Limits(wall_seconds=10, cpu_seconds=1))
    assert (res.status, res.returncode, res.signal) == ("killed", None, signal.SIGXCPU)
    assert res.message() == "was stopped: it used more than 1 s of CPU time"
    assert res.wall_seconds < 5


# ---------------------------------------------------------------------------
# memory, files, output
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "code",
    ["x = bytearray(10**11)", "x = []\nwhile True:\n    x.append(bytearray(10**7))"],
    ids=["one-huge-block", "growing-list"],
)
def test_memory_bomb_ends_as_memory_error(box, mode, mark, code):
    res = sbrun(py(code), cwd=box / "work", mode=mode, mark=mark,
                limits=Limits(wall_seconds=10, memory_bytes=512 * 2**20))
    assert (res.status, res.returncode) == ("error", 1)
    assert res.stderr.rstrip().endswith(b"MemoryError")
    assert res.message() == "exited with code 1: it ran out of memory (the limit is 512 MiB)"


@pytest.mark.parametrize("mode", MODES)
def test_big_file_write_fails_with_efbig(box, mode, mark):
    work = box / "work"
    res = sbrun(py("open('big', 'wb').write(b'x' * (100 * 2**20))"), cwd=work, mode=mode, mark=mark,
                limits=Limits(wall_seconds=10, file_bytes=2**20))
    assert (res.status, res.returncode) == ("error", 1)
    assert b"[Errno 27] File too large" in res.stderr
    assert res.message() == "exited with code 1: it tried to write a file larger than 1 MiB"
    assert (work / "big").stat().st_size <= 2**20


@pytest.mark.parametrize("mode", MODES)
def test_big_file_write_by_a_non_python_program_is_an_error_not_a_kill(box, mode, mark):
    res = sbrun(["dd", "if=/dev/zero", "of=big", "bs=1M", "count=10"], cwd=box / "work", mode=mode, mark=mark,
                limits=Limits(wall_seconds=10, file_bytes=2**20))
    assert (res.status, res.signal) == ("error", None)
    assert res.message() == f"exited with code {res.returncode}: it tried to write a file larger than 1 MiB"


@pytest.mark.parametrize("mode", MODES)
def test_output_flood_is_capped_and_does_not_block(box, mode, mark):
    res = sbrun(["yes"], cwd=box / "work", mode=mode, mark=mark, limits=Limits(wall_seconds=1, output_bytes=2**16))
    assert res.status == "timeout"
    assert res.stdout == b"y\n" * 2**15 and res.stdout_truncated and not res.stderr_truncated
    assert res.message() == "ran past the 1 s time limit and was stopped (its output was cut at 64 KiB)"


@pytest.mark.parametrize("mode", MODES)
def test_one_huge_line_on_both_streams_finishes(box, mode, mark):
    code = "import sys\nsys.stdout.write('x' * 50_000_000)\nsys.stderr.write('e' * 50_000_000)\n"
    res = sbrun(py(code), cwd=box / "work", mode=mode, mark=mark, limits=Limits(wall_seconds=20, output_bytes=1000))
    assert res.status == "ok"
    assert res.stdout == b"x" * 1000 and res.stderr == b"e" * 1000
    assert res.message() == "finished normally (its output and error output were cut at 1000 bytes)"


# ---------------------------------------------------------------------------
# signals
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_self_kill_and_segfault_are_killed(box, mode, mark):
    work = box / "work"
    res = sbrun(py("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"), cwd=work, mode=mode, mark=mark)
    assert (res.status, res.returncode, res.signal) == ("killed", None, signal.SIGKILL)
    assert res.message().startswith("was killed (SIGKILL)")
    res = sbrun(py("import ctypes; ctypes.string_at(0)"), cwd=work, mode=mode, mark=mark)
    assert (res.status, res.signal) == ("killed", signal.SIGSEGV)
    assert res.message() == "crashed with a segmentation fault (SIGSEGV)"


# ---------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_fork_bomb_ends_and_leaves_nothing(box, mode, mark):
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    res = sbrun(py(code), cwd=box / "work", mode=mode, mark=mark, limits=Limits(wall_seconds=1.5, processes=20))
    assert res.status == "timeout"
    assert res.leftover_killed >= 1


@pytest.mark.parametrize(
    "mode, pid_ns",
    [
        pytest.param(False, False, id="no-bwrap"),
        pytest.param(True, False, id="bwrap-shared-pids", marks=needs_bwrap),
        pytest.param(True, True, id="bwrap-pid-namespace", marks=needs_bwrap),
    ],
)
def test_background_process_is_killed(box, mode, pid_ns, mark):
    code = "import subprocess\nsubprocess.Popen(['sleep', '1000'], start_new_session=True)\n"
    res = sbrun(py(code), cwd=box / "work", mode=mode, mark=mark, new_pid_namespace=pid_ns)
    assert (res.status, res.message()) == ("ok", "finished normally")
    assert ("new pid namespace" in res.isolation) == (mode and pid_ns)
    if mode and pid_ns:
        assert res.leftover_killed in (0, 1)  # the kernel may end it first, with the namespace
    else:
        assert res.leftover_killed == 1


@pytest.mark.parametrize("mode", MODES)
def test_double_fork_with_cleared_environment_is_killed_as_root(box, mode, mark):
    if not IS_ROOT:
        pytest.skip("without root only the token finds leftovers")
    # `env -i` drops the token: the uid sweep still finds it
    code = "import subprocess\nsubprocess.Popen(['setsid', 'env', '-i', 'sleep', '1000'])\n"
    res = sbrun(py(code), cwd=box / "work", mode=mode, mark=mark, new_pid_namespace=False)
    assert res.status == "ok"
    uid = int(next(i for i in res.isolation if i.startswith("uid ")).split()[1])
    assert alive_as(uid) == []
    assert res.leftover_killed == 1


@needs_root
@pytest.mark.parametrize("mode", MODES)
def test_child_cannot_signal_the_grader(box, mode, mark):
    code = (
        "import os\n"
        "try:\n"
        f"    os.kill({os.getpid()}, 0)\n"
        "    print('reached')\n"
        "except OSError as e:\n"
        "    print(type(e).__name__)\n"
    )
    res = sbrun(py(code), cwd=box / "work", mode=mode, mark=mark)
    assert res.stdout.strip() in (b"PermissionError", b"ProcessLookupError")


@needs_root
def test_concurrent_runs_get_different_uids(box, mark):
    dirs = [box / f"w{i}" for i in range(2)]
    out = {}

    def one(i):
        dirs[i].mkdir()
        code = "import os, time; time.sleep(0.3); print(os.getuid())"
        out[i] = sbrun(py(code), cwd=dirs[i], mode=False, mark=f"{mark}-{i}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    uids = {int(out[i].stdout) for i in range(2)}
    assert len(uids) == 2 and all(u >= sandbox.UID_POOL_START for u in uids)


# ---------------------------------------------------------------------------
# network
# ---------------------------------------------------------------------------


@pytest.fixture
def listener():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    yield srv.getsockname()[1]
    srv.close()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("network", [False, True])
def test_network(box, mode, mark, listener, network):
    code = (
        "import socket, time\n"
        "t = time.monotonic()\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {listener}), timeout=2).close()\n"
        "    print('connected')\n"
        "except OSError as e:\n"
        "    print('failed', round(time.monotonic() - t, 2))\n"
    )
    res = sbrun(py(code), cwd=box / "work", mode=mode, mark=mark, limits=Limits(wall_seconds=10, network=network))
    if network:
        assert res.stdout == b"connected\n"
        assert "no network" not in res.isolation
    else:
        words = res.stdout.split()
        assert words[0] == b"failed" and float(words[1]) < 1.0  # at once, not after the 2 s timeout
        assert "no network" in res.isolation


# ---------------------------------------------------------------------------
# files: hidden, writable, read-only
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_hidden_paths_are_unreadable_and_only_scratch_is_writable(box, mode, mark):
    work = box / "work"
    (work / ".grader_secret").write_text("SEED-12345")
    (work / "solutions").mkdir()
    (work / "solutions" / "a1.py").write_text("SOLUTION")
    (work / "notebook.ipynb").write_text("{}")
    other = box / "other"  # outside the scratch space: a gradebook elsewhere
    other.mkdir()
    (other / "gradebook.db").write_text("GRADES")
    scratch = box / "scratch"
    scratch.mkdir()
    # real paths outside /tmp (which is private in the sandbox anyway), read-only use
    repo_dir, repo_file = ROOT / "solutions", ROOT / "nbgrader_config.py"
    assert repo_dir.is_dir() and repo_file.is_file()
    hidden = [work / ".grader_secret", work / "solutions", other / "gradebook.db", repo_dir, repo_file]
    code = (
        "import json, os, sys\n"
        "out = {}\n"
        "for p in sys.argv[1:]:\n"
        "    try:\n"
        "        out[p] = sorted(os.listdir(p)) if os.path.isdir(p) else open(p).read()\n"
        "    except OSError as e:\n"
        "        out[p] = type(e).__name__\n"
        "def write(p):\n"
        "    try:\n"
        "        open(p, 'w').write('x')\n"
        "        return 'written'\n"
        "    except OSError as e:\n"
        "        return type(e).__name__\n"
        "out['writes'] = [write(p) for p in os.environ['TARGETS'].split(':')]\n"
        "print(json.dumps(out))\n"
    )
    targets = [work / "new.txt", scratch / "new.txt", other / "new.txt", ROOT / "sandbox-test-must-not-exist", "/etc/x"]
    res = sbrun(
        py(code) + [str(p) for p in hidden],
        cwd=work,
        mode=mode,
        mark=mark,
        writable=[scratch],
        hidden=hidden,
        env={"TARGETS": ":".join(map(str, targets))},
    )
    assert res.status == "ok", res.stderr
    if "hidden paths" not in res.isolation:
        pytest.skip(f"this machine cannot hide paths without root: {res.isolation}")
    seen = json.loads(res.stdout)
    for p in hidden:
        assert seen[str(p)] in ("", [], "FileNotFoundError", "PermissionError"), (p, seen[str(p)])
    writes = dict(zip(map(str, targets), seen["writes"]))
    assert writes.pop(str(work / "new.txt")) == writes.pop(str(scratch / "new.txt")) == "written"
    if not IS_ROOT and not mode:
        # no uid change and no read-only root: the caller's own files stay writable (the module docstring)
        for own in (ROOT / "sandbox-test-must-not-exist", other / "new.txt"):
            assert writes.pop(str(own)) == "written"
            own.unlink()
    assert "written" not in writes.values(), writes
    assert not (ROOT / "sandbox-test-must-not-exist").exists() and not (other / "new.txt").exists()
    # the parent still sees everything, unchanged
    assert (work / ".grader_secret").read_text() == "SEED-12345"
    assert (other / "gradebook.db").read_text() == "GRADES"


@pytest.mark.parametrize("mode", MODES)
def test_a_hidden_folder_inside_another_is_hidden_with_it(box, mode, mark):
    """The grader hides its state folder and the assignment's template inside it: both out of sight, and the
    child starts (bubblewrap cannot make a mount point inside a folder it has already covered read-only)."""
    state = box / "state"
    template = state / "work" / "a1" / "template"
    template.mkdir(parents=True)
    (template / "gradebook.db").write_text("TEMPLATE")
    (state / "gradebook.db").write_text("GRADES")
    code = "import os, sys\nfor p in sys.argv[1:]:\n    print(p, os.path.exists(p))\n"
    paths = [state / "gradebook.db", template / "gradebook.db"]
    res = sbrun(py(code) + [str(p) for p in paths], cwd=box / "work", mode=mode, mark=mark,
                hidden=[state, template])
    assert res.status == "ok", res.stderr
    if "hidden paths" not in res.isolation:
        pytest.skip(f"this machine cannot hide paths without root: {res.isolation}")
    assert res.stdout.decode().split() == [str(paths[0]), "False", str(paths[1]), "False"]


@needs_root
@pytest.mark.parametrize("mode", MODES)
def test_root_only_files_are_unreadable_after_the_uid_change(box, mode, mark):
    shared = box / "shared"
    shared.mkdir(mode=0o755)
    (shared / "private.txt").write_text("ROOT ONLY")
    os.chmod(shared / "private.txt", 0o600)
    (shared / "public.txt").write_text("PUBLIC")
    os.chmod(shared / "public.txt", 0o644)
    code = (
        "import sys\n"
        "for p in sys.argv[1:]:\n"
        "    try:\n"
        "        print(open(p).read())\n"
        "    except OSError as e:\n"
        "        print(type(e).__name__)\n"
    )
    res = sbrun(py(code) + [str(shared / "private.txt"), str(shared / "public.txt"), "/root/.bashrc"],
                cwd=box / "work", mode=mode, mark=mark, readable=[shared])
    assert res.stdout.decode().split("\n")[:3] == ["PermissionError", "PUBLIC", "FileNotFoundError"]


@needs_root
@pytest.mark.parametrize("mode", MODES)
def test_ownership_is_handed_over_and_given_back(box, mode, mark):
    work = box / "work"
    (work / "given.txt").write_text("from the grader")
    os.chmod(work, 0o700)
    code = (
        "import os\n"
        "open('given.txt', 'a').write(' + student')\n"
        "os.makedirs('made/deeper')\n"
        "open('made/deeper/f.txt', 'w').write('x')\n"
        "open('setuid.bin', 'w').write('x')\n"
        "os.chmod('setuid.bin', 0o4755)\n"
        "os.symlink('/etc/passwd', 'link')\n"
    )
    res = sbrun(py(code), cwd=work, mode=mode, mark=mark)
    assert res.status == "ok", res.stderr
    assert (work / "given.txt").read_text() == "from the grader + student"
    for path in [work, *work.rglob("*")]:
        info = path.lstat()
        assert (info.st_uid, info.st_gid) == (0, 0), path
    assert stat.S_IMODE(work.stat().st_mode) == 0o700
    assert not (work / "setuid.bin").stat().st_mode & stat.S_ISUID
    assert os.stat("/etc/passwd").st_uid == 0


# ---------------------------------------------------------------------------
# what can be enforced
# ---------------------------------------------------------------------------


def test_require_refuses_to_start_what_cannot_be_enforced(box, mark):
    work = box / "work"
    with pytest.raises(SandboxError, match="cannot enforce no network"):
        sbrun(py("open('ran', 'w')"), cwd=work, mode=False, mark=mark, require=["no network"],
              limits=Limits(network=True))
    assert not (work / "ran").exists()
    res = sbrun(py("pass"), cwd=work, mode=False, mark=mark, require=["no network", "rlimits"])
    assert res.status == "ok"


def test_without_bubblewrap_on_the_machine_the_fallback_is_used(box, mark, monkeypatch):
    monkeypatch.setattr(sandbox, "_bwrap_probe", {"path": None, "why": "pretend it is not installed"})
    with pytest.raises(SandboxError, match="pretend it is not installed"):
        sandbox.run(["true"], cwd=box / "work", bubblewrap=True)
    res = sbrun(py("print('fine')"), cwd=box / "work", mode=None, mark=mark)
    assert res.stdout == b"fine\n" and "bubblewrap" not in res.isolation


@pytest.fixture
def tmp_scratch():
    """A scratch directory that any uid can reach once handed over (sandbox.scratch_dir), removed afterwards."""
    path = pathlib.Path(sandbox.scratch_dir("sandbox-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("mode", MODES)
def test_without_namespaces_for_the_launcher(tmp_scratch, mode, mark, monkeypatch):
    """A container without CAP_SYS_ADMIN, or a kernel without user namespaces: what is left."""
    monkeypatch.setattr(sandbox, "_ns_probe", {"ok": False})
    secret = tmp_scratch / "secret.txt"
    secret.write_text("SECRET")
    script = f"cat {secret} 2>/dev/null || echo hidden; echo x > /tmp/probe && echo tmp-writable"
    if mode:  # bubblewrap makes the mounts itself
        res = sbrun(["sh", "-c", script], cwd=tmp_scratch, mode=mode, mark=mark, hidden=[secret])
        assert res.status == "ok" and res.stdout.split() == [b"hidden", b"tmp-writable"]
        assert {"bubblewrap", "hidden paths", "private /tmp", "no network"} <= set(res.isolation)
    else:
        with pytest.raises(SandboxError, match="cannot enforce hidden paths"):
            sbrun(["sh", "-c", script], cwd=tmp_scratch, mode=mode, mark=mark, hidden=[secret])
        res = sbrun(["sh", "-c", "echo ran"], cwd=tmp_scratch, mode=mode, mark=mark)
        assert res.status == "ok" and res.stdout == b"ran\n"
        assert not {"no network", "private /tmp", "hidden paths"} & set(res.isolation)
        assert "rlimits" in res.isolation


@needs_root
@pytest.mark.parametrize("mode", MODES)
def test_without_namespaces_a_closed_directory_is_refused_with_the_fix(box, mode, mark, monkeypatch):
    """pytest's tmp_path lies under a mode-0700 folder: with no mount namespace to show it through, the
    sandbox uid could not enter it, and the run is refused before anything starts, naming the folder."""
    monkeypatch.setattr(sandbox, "_ns_probe", {"ok": False})
    closed = sandbox._first_closed(str(box), sandbox.UID_POOL_START, sandbox.UID_POOL_START)
    assert closed is not None
    with pytest.raises(SandboxError) as caught:
        sbrun(["sh", "-c", "echo ran > started"], cwd=box / "work", mode=mode, mark=mark)
    assert f"cannot reach {box / 'work'}: {closed}" in str(caught.value)
    assert f"chmod o+x {closed}" in str(caught.value)
    assert not (box / "work" / "started").exists()


def test_scratch_dir_is_private_and_reachable_by_other_users(monkeypatch, tmp_path):
    """As root, a private TMPDIR (mode 0700) is passed over for /tmp; a TMPDIR every user can enter is used.
    Not root, the child keeps the caller's uid: the TMPDIR is used as it is."""
    import tempfile

    private = tmp_path / "private-tmp"
    private.mkdir(mode=0o700)
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    made = pathlib.Path(sandbox.scratch_dir("probe-"))
    try:
        assert made.parent == (pathlib.Path("/tmp").resolve() if IS_ROOT else private)
        assert made.name.startswith("probe-")
        assert stat.S_IMODE(made.stat().st_mode) == 0o700 and made.stat().st_uid == os.geteuid()
    finally:
        made.rmdir()
    shared = pathlib.Path(sandbox.scratch_dir("shared-"))  # a folder /tmp's users can enter
    shared.chmod(0o1777)
    try:
        monkeypatch.setattr(tempfile, "tempdir", str(shared))
        inner = pathlib.Path(sandbox.scratch_dir("probe-"))
        assert inner.parent == shared and sandbox.scratch_parent() == str(shared)
    finally:
        shutil.rmtree(shared)


@needs_root
def test_a_fixed_uid_can_be_asked_for(box, mark):
    res = sbrun(py("import os; print(os.getuid(), os.getgid(), os.getgroups())"), cwd=box / "work", mode=False,
                mark=mark, run_as=65534)
    assert res.stdout == b"65534 65534 []\n" and "uid 65534" in res.isolation


def test_isolation_report_describes_this_machine():
    report = sandbox.isolation_report()
    print(json.dumps(report, indent=1))
    assert report["root"] == IS_ROOT and report["bubblewrap"] == BWRAP
    assert "rlimits" in report["without_bubblewrap"]
    if BWRAP:
        assert "bubblewrap" in report["with_bubblewrap"]


def test_module_imports_only_the_standard_library():
    path = ROOT / "utils" / "grading" / "sandbox.py"
    probe = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('sandbox', {str(path)!r})\n"
        "mod = importlib.util.module_from_spec(spec); sys.modules['sandbox'] = mod; spec.loader.exec_module(mod)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([PY, "-c", probe], capture_output=True, text=True, check=True)
    loaded = {name.split(".")[0] for name in json.loads(out.stdout)}
    assert not loaded & {"numpy", "torch", "tensorflow", "keras", "jax", "ctypes"}, loaded


# ---------------------------------------------------------------------------
# a caller that is not root
# ---------------------------------------------------------------------------

NONROOT_SCRIPT = r"""
import importlib.util, json, os, socket, sys
spec = importlib.util.spec_from_file_location("sandbox", sys.argv[1])
sb = importlib.util.module_from_spec(spec); sys.modules["sandbox"] = sb; spec.loader.exec_module(sb)
use_bwrap, scratch, mark = sys.argv[2] == "1", sys.argv[3], sys.argv[4]
work = os.path.join(scratch, "work"); os.mkdir(work)
secret = os.path.join(work, ".grader_secret"); open(secret, "w").write("SEED")
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(4)
port = srv.getsockname()[1]
env = {"SANDBOX_TEST_MARK": mark}
code = (
    "import os, socket, subprocess\n"
    "subprocess.Popen(['sleep', '1000'], start_new_session=True)\n"
    "try:\n"
    f"    socket.create_connection(('127.0.0.1', {port}), timeout=2); print('connected')\n"
    "except OSError:\n"
    "    print('no network')\n"
    "try:\n"
    f"    print(open({secret!r}).read())\n"
    "except OSError:\n"
    "    print('hidden')\n"
    "print(os.getuid())\n"
)
res = sb.run([sys.executable, "-c", code], cwd=work, env=env, hidden=[secret], bubblewrap=use_bwrap,
             new_pid_namespace=False)
# a neighbour of the same uid (another grading worker) starts 200 threads after the child's limits are set,
# and only then does the child start its own 20: they must start
import threading, time
ready, crowd = os.path.join(work, "ready"), os.path.join(work, "crowd")
def neighbour():
    while not os.path.exists(ready):
        time.sleep(0.01)
    done = threading.Event()
    threads = [threading.Thread(target=done.wait) for _ in range(200)]
    for t in threads:
        t.start()
    open(crowd, "w").close()
    time.sleep(3)
    done.set()
threading.Thread(target=neighbour).start()
burst_code = (
    "import os, threading, time\n"
    f"open({ready!r}, 'w').close()\n"
    f"while not os.path.exists({crowd!r}):\n"
    "    time.sleep(0.01)\n"
    "done = threading.Event()\n"
    "threads = [threading.Thread(target=done.wait) for _ in range(20)]\n"
    "for t in threads:\n"
    "    t.start()\n"
    "done.set()\n"
    "print('threads started')\n"
)
burst = sb.run([sys.executable, "-c", burst_code], cwd=work, env=env, bubblewrap=use_bwrap,
               limits=sb.Limits(wall_seconds=10, processes=30))
bomb_code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
bomb = sb.run([sys.executable, "-c", bomb_code], cwd=work, env=env, bubblewrap=use_bwrap,
              limits=sb.Limits(wall_seconds=1, processes=30))
print(json.dumps({"uid": os.getuid(), "status": res.status, "stdout": res.stdout.decode(),
                  "stderr": res.stderr.decode(), "isolation": res.isolation, "leftover": res.leftover_killed,
                  "bomb": [bomb.status, bomb.leftover_killed],
                  "burst": [burst.status, burst.stdout.decode(), burst.stderr.decode()[-300:]]}))
"""


@needs_root
@pytest.mark.parametrize("mode", MODES)
def test_a_non_root_caller_gets_rlimits_and_what_user_namespaces_allow(tmp_path, mode, mark):
    system_python = "/usr/bin/python3"
    if not os.access(system_python, os.X_OK):
        pytest.skip("no /usr/bin/python3 that an unprivileged uid can run")
    # nobody's account, not in the pool, and one per variant: this machine's init may take
    # seconds to reap the previous fork bomb's zombies, which count against RLIMIT_NPROC
    uid = sandbox.UID_POOL_START - (2 if mode else 1)
    scratch = pathlib.Path("/tmp") / f"sandbox-nonroot-{uuid.uuid4().hex}"
    scratch.mkdir(mode=0o700)
    # the module is passed in: the checkout may lie where that user cannot read (under /root)
    module = scratch / "sandbox.py"
    shutil.copyfile(ROOT / "utils" / "grading" / "sandbox.py", module)
    for path in (scratch, module):
        os.chown(path, uid, uid)
    try:
        proc = subprocess.run(
            [system_python, "-I", "-c", NONROOT_SCRIPT, str(module),
             "1" if mode else "0", str(scratch), mark],
            user=uid, group=uid, extra_groups=[], env={"PATH": "/usr/bin:/bin"}, cwd="/",
            capture_output=True, text=True, timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout.splitlines()[-1])
        print(out["isolation"])
        assert out["uid"] == uid and out["status"] == "ok", out
        assert out["stdout"].split("\n")[2] == str(uid)  # no uid change without root
        assert out["leftover"] == 1 and out["bomb"][0] == "timeout" and out["bomb"][1] >= 1
        assert out["burst"][:2] == ["ok", "threads started\n"], out["burst"]
        assert "rlimits" in out["isolation"] and not any(i.startswith("uid ") for i in out["isolation"])
        if "no network" in out["isolation"]:
            assert out["stdout"].split("\n")[0] == "no network"
        if "hidden paths" in out["isolation"]:
            assert out["stdout"].split("\n")[1] in ("", "hidden")  # /dev/null, or not there at all
        if mode:
            assert {"bubblewrap", "no network", "hidden paths"} <= set(out["isolation"])
        assert alive_as(uid) == []
    finally:
        subprocess.run(["rm", "-rf", str(scratch)], check=False)
