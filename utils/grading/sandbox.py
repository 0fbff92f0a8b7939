"""Run an untrusted command (a student's code) in a child process with limits.

Used by the trusted verifier (``python -m utils.grading._verify_child ...``) and,
later, for nbgrader's kernels. Standard library only: importing this module
loads no framework and no NumPy of its own.

What one call of :func:`run` does, in order:

1. The parent checks the arguments (``ValueError`` names the bad one). As root
   it takes a sandbox uid for this run alone (``run_as="auto"``: a free uid from
   a private pool, never shared by two runs at once, so one submission cannot
   signal, trace or starve another) and hands the ``cwd`` and ``writable``
   directories to that uid (``chown``, recursively; restored after the run).
2. A small trusted launcher (``python -I -S -c <_LAUNCHER>``; no ``preexec_fn``,
   which is unsafe in a threaded parent) starts in a new session and, before it
   executes the command:

   - as root: unshares a new mount namespace and makes ``/`` private; mounts a
     private, size-capped tmpfs on ``/tmp``, ``/var/tmp``, ``/run/lock`` and
     ``/dev/shm``; covers every directory the sandbox uid may not enter but
     must see through (``/root`` when the interpreter lives under it) with an
     empty read-only tmpfs and binds back only the ``writable`` and
     ``readable`` paths and the interpreter's install; mounts an empty
     read-only tmpfs on each hidden directory and ``/dev/null`` on each hidden
     file; mounts ``/proc`` with ``hidepid`` (unless bubblewrap gives a PID
     namespace); without bubblewrap also unshares the network and IPC
     namespaces;
   - not root: tries a user namespace (with mount and network namespaces) and
     does the same mounts in it; when the kernel refuses, rlimits only;
   - sets the rlimits (``RLIMIT_AS``, ``RLIMIT_CPU``, ``RLIMIT_NPROC``,
     ``RLIMIT_FSIZE``, ``RLIMIT_NOFILE``, ``RLIMIT_CORE`` = 0), ignores
     ``SIGXFSZ`` (an oversized write fails with ``EFBIG`` instead of killing
     silently), sets ``no_new_privs``, drops to the sandbox uid/gid with no
     supplementary groups, asks for ``SIGKILL`` when the parent dies, and
     executes the command, or bubblewrap around it.
3. With bubblewrap (``bwrap``, run by the sandbox uid, which gives it an
   unprivileged user namespace): read-only root, fresh ``/dev``, the writable
   directories bound read-write, new PID (``new_pid_namespace=True``: the whole
   tree dies with its pid 1), network, IPC and UTS namespaces, no further user
   namespaces, ``--die-with-parent``, ``--new-session``.
4. The parent reads stdout and stderr through one ``selectors`` loop (each
   capped at ``Limits.output_bytes``, the rest read and discarded, so a flood
   never blocks the child), enforces the wall limit with ``SIGKILL``, and when
   the command ends or times out, kills every process that is left: the
   process group, every process whose environment holds this run's token
   (``CNN_SANDBOX_TOKEN``, which survives ``setsid`` and double forks) and, as
   root, every process of the sandbox uid (``kill(-1, SIGKILL)`` from a helper
   running as that uid, which also ends fork bombs at once), repeating until
   none is left.

What is enforced (``Result.isolation`` says it per run; :func:`isolation_report`
per machine):

==============================  ========================  =======================
                                caller is root            caller is not root
==============================  ========================  =======================
rlimits, new session,           yes                       yes
no_new_privs, leftover sweep
own uid per run                 yes (pool uid)            no (caller's uid; the
                                                          sweep finds leftovers
                                                          by token only)
root-only files unreadable      yes (uid change)          n/a
private /tmp, hidden paths,     yes (mount namespace)     with bubblewrap, or in
no network                                                a user namespace when
                                                          the kernel allows one
read-only root, fresh /dev,     with bubblewrap           with bubblewrap
PID namespace
/proc shows only the sandbox    yes (hidepid, or the      with a PID namespace
                                PID namespace)
==============================  ========================  =======================

Without bubblewrap and as root, the rest of the file system is protected by the
uid change alone: the child can write where any user can (outside the private
temporary directories, e.g. a world-writable folder elsewhere) and read what
any user can. Not root and without bubblewrap, it can write wherever the
caller can.

Traps met on the machines this was built on:

- ``bwrap`` run *by root* with ``--unshare-user --uid N`` maps the sandbox uid
  to the real uid 0 outside: the child keeps root's files and root's process
  count. So the launcher drops privileges first and runs bwrap unprivileged.
  An unprivileged bwrap cannot see paths under a directory its uid may not
  enter (pytest's ``/tmp/pytest-of-root`` is 0700, the interpreter of the
  course's venv lives under ``/root``), and ``--bind-fd`` with a descriptor
  opened by root is refused; the launcher therefore prepares those views in
  its own mount namespace, as root, before it drops privileges, and bwrap
  inherits them (a less privileged namespace cannot unmount them).
- bwrap reports a command killed by signal N as exit code 128 + N; such codes
  are read back as the signal (an exit code above 128 from a program that
  chose it is read the same way).
- ``RLIMIT_NPROC`` counts threads as well as processes, per uid: a BLAS
  library that starts one thread per core may fail on a machine with many
  cores. Pass ``OMP_NUM_THREADS``/``OPENBLAS_NUM_THREADS``/``MKL_NUM_THREADS``
  in ``env`` when the limit is small. For a non-root caller the count includes
  all of that user's other processes (a Jupyter server, the grader's own
  threads): its limit is that count, read at the start, plus
  ``Limits.processes`` (a fixed 64 made bubblewrap fail to create its
  namespaces with EAGAIN for a user running the test suite), plus
  ``SHARED_UID_HEADROOM`` for the threads that user's other processes start
  while the child runs (a second grading worker's TensorFlow).
- ``RLIMIT_AS`` limits address space, not resident memory: CUDA reserves tens
  of GiB of address space, so a GPU child needs a much larger
  ``memory_bytes``; tmpfs pages (the private ``/tmp``) are not counted in it,
  which is why the private ``/tmp`` is capped at ``4 * file_bytes``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import math
import os
import pathlib
import secrets
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "Limits",
    "Result",
    "SandboxError",
    "TOKEN_VARIABLE",
    "run",
    "default_env",
    "bubblewrap_path",
    "isolation_report",
    "sweep_orphaned_uids",
    "scratch_dir",
    "scratch_parent",
    "reach_problem",
]

TOKEN_VARIABLE = "CNN_SANDBOX_TOKEN"

# First uid of the pool that run_as="auto" draws from as root: high enough to be
# nobody's account, below 2**31 so that no tool takes it for a negative number.
UID_POOL_START = 2_000_000_000
UID_POOL_SIZE = 4096

# Directories any user may write to: each run gets private, size-capped copies.
_SHARED_WRITABLE = ("/tmp", "/var/tmp", "/run/lock", "/dev/shm")

# Writable directories that would hand the system to the sandbox uid.
_SYSTEM_DIRS = frozenset(
    "/ /bin /boot /dev /etc /home /lib /lib32 /lib64 /libx32 /media /mnt /opt /proc /root "
    "/run /sbin /srv /sys /tmp /usr /var /var/tmp /run/lock /dev/shm".split()
)

# A writable directory holding more entries than this is not a scratch space.
_MAX_OWNED_ENTRIES = 200_000

_SIGNAL_TEXT = {
    signal.SIGKILL: "was killed (SIGKILL), usually because it used more memory than the machine could give",
    signal.SIGSEGV: "crashed with a segmentation fault (SIGSEGV)",
    signal.SIGBUS: "crashed with a bus error (SIGBUS)",
    signal.SIGABRT: "aborted (SIGABRT)",
    signal.SIGFPE: "crashed with an arithmetic error (SIGFPE)",
    signal.SIGILL: "crashed with an illegal instruction (SIGILL)",
}


class SandboxError(RuntimeError):
    """The sandbox itself could not be set up (a grader-side problem, not the student's)."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """Resource limits for one run.

    Attributes:
    - wall_seconds: float > 0; the whole process tree is killed (SIGKILL to the
      process group, to every process holding the run's token and, as root, to
      every process of the sandbox uid) when the run takes longer.
    - cpu_seconds: int >= 1 or None; RLIMIT_CPU per process (SIGXCPU, then
      SIGKILL one second later). None means ceil(wall_seconds) + 5.
    - memory_bytes: int > 0; RLIMIT_AS (address space) per process.
    - processes: int >= 1; RLIMIT_NPROC (processes and threads of the uid).
      Enforced for a non-root uid only, that is when the sandbox drops to one
      or the caller is not root; a caller that is not root keeps its uid, and
      its child may then start this many beyond the user's current count.
    - file_bytes: int >= 0; RLIMIT_FSIZE, the largest file the child may write
      (larger writes fail with EFBIG). The private /tmp holds at most
      4 * file_bytes (at least 1 MiB).
    - open_files: int >= 3; RLIMIT_NOFILE.
    - output_bytes: int >= 0; cap on captured stdout and on stderr, each; the
      rest is read and discarded, so the child never blocks on a full pipe.
    - network: bool; False gives the child a new network namespace, so every
      connection fails at once.
    """

    wall_seconds: float = 60.0
    cpu_seconds: int | None = None
    memory_bytes: int = 4 * 2**30
    processes: int = 64
    file_bytes: int = 64 * 2**20
    open_files: int = 256
    output_bytes: int = 1 * 2**20
    network: bool = False

    def __post_init__(self):
        def need(name, ok, rule):
            if not ok:
                raise ValueError(f"Limits.{name} must be {rule}, got {getattr(self, name)!r}")

        def is_int(value):
            return isinstance(value, int) and not isinstance(value, bool)

        wall = self.wall_seconds
        need(
            "wall_seconds",
            isinstance(wall, (int, float)) and not isinstance(wall, bool) and math.isfinite(wall) and wall > 0,
            "a finite number of seconds > 0",
        )
        cpu = self.cpu_seconds
        need("cpu_seconds", cpu is None or (is_int(cpu) and cpu >= 1), "None or an int >= 1")
        need("memory_bytes", is_int(self.memory_bytes) and self.memory_bytes > 0, "an int > 0")
        need("processes", is_int(self.processes) and self.processes >= 1, "an int >= 1")
        need("file_bytes", is_int(self.file_bytes) and self.file_bytes >= 0, "an int >= 0")
        need("open_files", is_int(self.open_files) and self.open_files >= 3, "an int >= 3")
        need("output_bytes", is_int(self.output_bytes) and self.output_bytes >= 0, "an int >= 0")
        need("network", isinstance(self.network, bool), "True or False")

    @property
    def effective_cpu_seconds(self) -> int:
        """RLIMIT_CPU in seconds: cpu_seconds, or ceil(wall_seconds) + 5 when it is None."""
        return self.cpu_seconds if self.cpu_seconds is not None else math.ceil(self.wall_seconds) + 5


@dataclasses.dataclass
class Result:
    """What happened to one run.

    Attributes:
    - status: "ok" (exit code 0), "error" (nonzero exit code), "timeout" (ran
      past Limits.wall_seconds and was killed) or "killed" (ended by a signal
      it did not survive: SIGKILL, SIGXCPU at the CPU limit, SIGSEGV, ...).
      A flood of output does not change the status: see the *_truncated flags.
    - returncode: the exit code when the command exited, else None.
    - signal: the signal that ended it (SIGKILL for a timeout), else None.
    - stdout, stderr: bytes, at most Limits.output_bytes each.
    - stdout_truncated, stderr_truncated: True when output was discarded.
    - wall_seconds: float, from start to the end (or the kill) of the command.
    - leftover_killed: number of processes other than the command itself that
      the sandbox found alive and killed when the command ended or timed out
      (background processes, fork bombs). In a new PID namespace the kernel
      ends leftovers together with the command, often before the sandbox
      looks, so after a normal exit it is then 0 or a few.
    - isolation: what was actually enforced, items from: "rlimits", "new
      session", "no new privileges", "uid N" (the sandbox uid), "private /tmp"
      (also /var/tmp, /run/lock, /dev/shm), "hidden paths" (every visible
      hidden path covered), "hidden processes" (/proc shows only the sandbox
      uid's), "no network", "new ipc namespace", "user namespace" (not root,
      no bubblewrap), "bubblewrap", "read-only root", "new pid namespace".
    - limits: the Limits of the run (used by message()).
    """

    status: str
    returncode: int | None
    signal: int | None
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    wall_seconds: float
    leftover_killed: int
    isolation: tuple[str, ...]
    limits: Limits = dataclasses.field(default_factory=Limits)

    @property
    def ok(self) -> bool:
        """True when the command exited with code 0 in time."""
        return self.status == "ok"

    def message(self) -> str:
        """One plain sentence for a student saying how the run ended.

        Returns a str without subject or final period, to follow "Your code ...":
        "ran past the 10 s time limit and was stopped", "exited with code 1: it
        ran out of memory (the limit is 4 GiB)", "was stopped: it used more than
        15 s of CPU time", ... A note is appended when output was cut.
        """
        lim = self.limits
        if self.status == "ok":
            text = "finished normally"
        elif self.status == "timeout":
            text = f"ran past the {lim.wall_seconds:g} s time limit and was stopped"
        elif self.status == "killed":
            sig = self.signal
            if sig == signal.SIGXCPU:
                text = f"was stopped: it used more than {lim.effective_cpu_seconds} s of CPU time"
            elif sig == signal.SIGXFSZ:
                text = f"was stopped: it tried to write a file larger than {_size(lim.file_bytes)}"
            elif sig == signal.SIGKILL:
                text = (
                    "was killed (SIGKILL), usually because it used more memory than the machine "
                    f"could give (the limit is {_size(lim.memory_bytes)})"
                )
            elif sig in _SIGNAL_TEXT:
                text = _SIGNAL_TEXT[sig]
            else:
                text = f"was killed by signal {_signal_name(sig)}"
        elif self.returncode == 127 and b"sandbox: cannot run" in self.stderr[-4096:]:
            text = "could not be started (exit code 127)"
        else:
            text = f"exited with code {self.returncode}"
            reason = self._error_reason()
            if reason:
                text += f": it {reason}"
        flags = (("output", self.stdout_truncated), ("error output", self.stderr_truncated))
        cut = [name for name, flag in flags if flag]
        if cut:
            verb = "were" if len(cut) == 2 else "was"
            text += f" (its {' and '.join(cut)} {verb} cut at {_size(lim.output_bytes)})"
        return text

    def _error_reason(self) -> str:
        tail = self.stderr[-4096:]
        lim = self.limits
        if b"MemoryError" in tail or b"std::bad_alloc" in tail or b"Cannot allocate memory" in tail:
            return f"ran out of memory (the limit is {_size(lim.memory_bytes)})"
        if b"[Errno 27]" in tail or b"File too large" in tail:
            return f"tried to write a file larger than {_size(lim.file_bytes)}"
        if b"[Errno 24]" in tail or b"Too many open files" in tail:
            return f"opened more than {lim.open_files} files at once"
        return ""


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n} bytes"


def _signal_name(sig: int | None) -> str:
    try:
        return f"{signal.Signals(sig).name} ({sig})"
    except (ValueError, TypeError):
        return str(sig)


def default_env(cwd: str | os.PathLike) -> dict[str, str]:
    """The minimal environment a child gets when the caller adds nothing.

    Inputs:
    - cwd: the child's working directory; it is also its HOME.

    Returns a new dict with PATH (the parent interpreter's bin directory first,
    then /usr/local/bin, /usr/bin, /bin), HOME=cwd, LANG=C.UTF-8 and
    USER=LOGNAME=sandbox (the sandbox uid has no passwd entry). Nothing of the
    parent's environment is inherited.
    """
    bindir = os.path.dirname(os.path.abspath(sys.executable))
    path = ":".join(dict.fromkeys([bindir, "/usr/local/bin", "/usr/bin", "/bin"]))
    return {"PATH": path, "HOME": os.fspath(cwd), "LANG": "C.UTF-8", "USER": "sandbox", "LOGNAME": "sandbox"}


# ---------------------------------------------------------------------------
# The launcher: runs in the child, as the caller (root or not), and ends in
# exec. Standard library only, started with -I -S so nothing from the
# environment or site-packages runs with the caller's privileges.
# ---------------------------------------------------------------------------

_LAUNCHER = r'''
import ctypes, json, os, resource, signal, sys
import warnings  # os.execvpe imports it; after the uid change the stdlib may be out of reach

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWIPC = 0x00020000, 0x10000000, 0x40000000, 0x08000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38

def main():
    cfg_fd, rep_fd = int(sys.argv[1]), int(sys.argv[2])
    os.set_inheritable(rep_fd, False)
    with os.fdopen(cfg_fd, "rb") as f:
        cfg = json.loads(f.read())
    try:
        iso = setup(cfg)
    except BaseException as e:
        os.write(rep_fd, json.dumps({"error": f"{type(e).__name__}: {e}"}).encode())
        os._exit(126)
    os.write(rep_fd, json.dumps({"isolation": iso}).encode())
    argv, env = cfg["argv"], cfg["env"]
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as e:
        os.write(2, f"sandbox: cannot run {argv[0]}: {e.strerror}\n".encode())
        os._exit(127)

def setup(cfg):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    libc.unshare.argtypes = [ctypes.c_int]
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    def enc(s):
        return None if s is None else s.encode()
    def fail(what):
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")
    def mount(src, target, fstype, flags, data=None):
        if libc.mount(enc(src), enc(target), enc(fstype), flags, enc(data)) != 0:
            fail(f"mount {fstype or src} on {target}")
    iso = []
    root = os.geteuid() == 0
    mounted = False
    flags = 0
    if cfg["mount"]:
        flags |= CLONE_NEWNS
    if cfg["unshare_net"]:
        flags |= CLONE_NEWNET
    if cfg["unshare_ipc"]:
        flags |= CLONE_NEWIPC
    if flags and root:
        if libc.unshare(flags) != 0:
            fail("unshare")  # the parent's probe said it works
        mounted = bool(flags & CLONE_NEWNS)
    elif flags:
        uid, gid = os.geteuid(), os.getegid()
        if libc.unshare(flags | CLONE_NEWUSER) == 0:
            for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
                with open(f"/proc/self/{name}", "w") as f:
                    f.write(text)
            iso.append("user namespace")
            mounted = bool(flags & CLONE_NEWNS)
        else:
            flags = 0
    if flags & CLONE_NEWNET:
        iso.append("no network")
    if flags & CLONE_NEWIPC:
        iso.append("new ipc namespace")
    if mounted:
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        sources = {}
        for op in cfg["mounts"]:
            if op["op"] == "bind":
                # opened after the unshare: a bind source must be a mount of this namespace
                sources[op["src"]] = os.open(op["src"], os.O_PATH | os.O_CLOEXEC)
        for op in cfg["mounts"]:
            kind, path = op["op"], op.get("path")
            if kind == "tmpfs":
                mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={op['mode']},size={op['size']}")
            elif kind == "bind":
                os.makedirs(path, mode=0o755, exist_ok=True)
                mount(f"/proc/self/fd/{sources[op['src']]}", path, None, MS_BIND | MS_REC)
                if op["ro"]:
                    mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
            elif kind == "remount_ro":
                mount(None, path, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, op["data"])
            elif kind == "hide_dir":
                mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0555,size=4k")
            elif kind == "hide_file":
                mount("/dev/null", path, None, MS_BIND)
                mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC)
            elif kind == "proc":
                try:
                    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2")
                    iso.append("hidden processes")
                except OSError:
                    pass  # e.g. a container whose /proc has masked parts: the rest still holds
        for fd in sources.values():
            os.close(fd)
        if any(op["op"] == "tmpfs" and op.get("shared") for op in cfg["mounts"]):
            iso.append("private /tmp")
        if cfg["hidden_requested"]:
            iso.append("hidden paths")
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    for name, soft, hard in cfg["rlimits"]:
        res = getattr(resource, name)
        cur_soft, cur_hard = resource.getrlimit(res)
        if not root and cur_hard != resource.RLIM_INFINITY:
            hard = min(hard, cur_hard)
            soft = min(soft, hard)
        resource.setrlimit(res, (soft, hard))
    iso.append("rlimits")
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        fail("prctl(PR_SET_NO_NEW_PRIVS)")
    iso.append("no new privileges")
    if cfg["uid"] is not None:
        os.setgroups([])
        os.setresgid(cfg["gid"], cfg["gid"], cfg["gid"])
        os.setresuid(cfg["uid"], cfg["uid"], cfg["uid"])
        if os.getuid() != cfg["uid"] or os.geteuid() != cfg["uid"] or os.getgroups():
            raise OSError("the uid did not change")
        iso.append(f"uid {cfg['uid']}")
    # after the uid change, which clears it: SIGKILL when the grader dies
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        fail("prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != cfg["parent"]:
        raise OSError("the parent is gone")
    os.chdir(cfg["cwd"])
    have = iso + cfg["outer"]
    missing = [need for need in cfg["require"] if not any(h == need or h.startswith(need + " ") for h in have)]
    if missing:
        raise OSError(f"cannot enforce {', '.join(missing)} here (enforced: {', '.join(have)})")
    return iso

main()
'''


# ---------------------------------------------------------------------------
# bubblewrap
# ---------------------------------------------------------------------------

_bwrap_lock = threading.Lock()
_bwrap_probe: dict[str, object] = {}


def bubblewrap_path() -> str | None:
    """Path of a working bubblewrap, or None.

    Returns shutil.which("bwrap") when a probe run succeeds: the probe starts it
    the way run() will (as root: under an unprivileged uid) with a read-only
    root, new user, PID and network namespaces and a fresh /proc. The answer is
    probed once and cached.
    """
    with _bwrap_lock:
        if "path" not in _bwrap_probe:
            _bwrap_probe.update(_probe_bwrap())
        return _bwrap_probe["path"]  # type: ignore[return-value]


def _bwrap_disables_userns() -> bool:
    return bool(bubblewrap_path() and _bwrap_probe.get("disable_userns"))


def _probe_bwrap() -> dict[str, object]:
    path = shutil.which("bwrap")
    if not path:
        return {"path": None, "why": "bwrap is not on PATH"}
    base = [path, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-user", "--unshare-pid",
            "--unshare-net", "--unshare-ipc", "--die-with-parent", "--new-session"]
    kwargs: dict = {"stdin": subprocess.DEVNULL, "capture_output": True, "timeout": 20, "env": {}, "cwd": "/"}
    if os.geteuid() == 0:
        kwargs.update(user=65534, group=65534, extra_groups=[])
    why = ""
    for extra, disable in ((["--disable-userns"], True), ([], False)):
        try:
            proc = subprocess.run(base + extra + ["--", path, "--version"], **kwargs)
        except (OSError, subprocess.SubprocessError) as exc:
            return {"path": None, "why": f"{path} did not start: {exc}"}
        if proc.returncode == 0:
            return {"path": path, "disable_userns": disable, "version": proc.stdout.decode(errors="replace").strip()}
        why = proc.stderr.decode(errors="replace").strip()
    return {"path": None, "why": f"{path} does not work here: {why}"}


# ---------------------------------------------------------------------------
# Can the launcher create namespaces here?
# ---------------------------------------------------------------------------

_ns_lock = threading.Lock()
_ns_probe: dict[str, bool] = {}


def _namespaces_work() -> bool:
    """Whether this process's children can unshare mount, network and IPC namespaces.

    As root that needs CAP_SYS_ADMIN (a container may lack it); not root, it needs
    an unprivileged user namespace (a kernel or an AppArmor policy may forbid it).
    Probed once with a throwaway child and cached; tests may set _ns_probe["ok"].
    """
    with _ns_lock:
        if "ok" not in _ns_probe:
            flags = 0x00020000 | 0x40000000 | 0x08000000  # CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC
            if os.geteuid() != 0:
                flags |= 0x10000000  # CLONE_NEWUSER
            code = f"import ctypes, sys; sys.exit(0 if ctypes.CDLL(None).unshare({flags}) == 0 else 1)"
            try:
                proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], stdin=subprocess.DEVNULL,
                                      capture_output=True, env={}, cwd="/", timeout=20)
                _ns_probe["ok"] = proc.returncode == 0
            except (OSError, subprocess.SubprocessError):
                _ns_probe["ok"] = False
        return _ns_probe["ok"]


# ---------------------------------------------------------------------------
# The uid pool (root only)
# ---------------------------------------------------------------------------


class _UidLease:
    """A uid no other run on this machine uses until release(): an flock on a slot file."""

    def __init__(self, uid: int, fd: int | None):
        self.uid, self._fd = uid, fd

    def release(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _uid_lock_dir() -> str:
    """Where the pool's slot files live: /run as root (the same for every grader on the machine,
    whatever its TMPDIR, so two graders never share a uid), else the temporary directory."""
    parent = "/run" if os.geteuid() == 0 and os.access("/run", os.W_OK | os.X_OK) else tempfile.gettempdir()
    return os.path.join(parent, f"cnn-course-sandbox-uids-{os.geteuid()}")


def _lease_uid() -> _UidLease:
    lock_dir = _uid_lock_dir()
    try:
        os.mkdir(lock_dir, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(lock_dir)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise SandboxError(f"{lock_dir} is not a private directory of uid {os.geteuid()}")
    # start at a random slot: a uid just given back may still count zombies
    # (dead, not yet reaped by init) against its RLIMIT_NPROC
    first = secrets.randbelow(UID_POOL_SIZE)
    for slot in [(first + i) % UID_POOL_SIZE for i in range(UID_POOL_SIZE)]:
        fd = os.open(os.path.join(lock_dir, f"slot-{slot}"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        uid = UID_POOL_START + slot
        # processes of a grader that died mid-run may still hold this uid
        _sweep(token=None, uid=uid, exclude=())
        return _UidLease(uid, fd)
    raise SandboxError(f"all {UID_POOL_SIZE} sandbox uids are in use")


def sweep_orphaned_uids() -> dict[int, int]:
    """Kill the processes of every pool uid that no live run holds; returns {uid: processes found}.

    A run holds its uid (an flock on the uid's slot file) until it has swept it. When the process that
    called :func:`run` dies (a grading worker killed mid-run), the lock goes with it and whatever that run
    started lives on under its uid: those processes are orphans, and this kills them. A uid whose lock a
    live run holds is left alone. Root only (elsewhere runs keep the caller's uid): returns {} otherwise.
    """
    if os.geteuid() != 0:
        return {}
    lock_dir = _uid_lock_dir()
    if not os.path.isdir(lock_dir):
        return {}
    uids = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                uid = os.stat(f"/proc/{name}").st_uid
            except OSError:
                continue
            if UID_POOL_START <= uid < UID_POOL_START + UID_POOL_SIZE:
                uids.add(uid)
    swept = {}
    for uid in sorted(uids):
        fd = os.open(os.path.join(lock_dir, f"slot-{uid - UID_POOL_START}"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                     0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live run holds this uid
            found = _sweep(token=None, uid=uid, exclude=())
            if found:
                swept[uid] = found
        finally:
            os.close(fd)
    return swept


# ---------------------------------------------------------------------------
# Ownership of the writable directories (root with a uid change)
# ---------------------------------------------------------------------------


def _walk_entries(top: str, skip: frozenset[str] = frozenset()):
    """Yield every path under top (top first), never following symlinks nor entering skip."""
    yield top
    stack = [top]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                for entry in it:
                    if entry.path in skip:
                        continue
                    yield entry.path
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except OSError:
            continue


class _Ownership:
    """Hands directory trees to the sandbox uid and gives them back afterwards."""

    def __init__(self, dirs: Sequence[str], uid: int, gid: int, skip: Iterable[str] = ()):
        self.dirs, self.uid, self.gid = list(dirs), uid, gid
        self.skip = frozenset(skip)  # hidden paths stay the caller's
        self.before: dict[str, tuple[int, int]] = {}
        self.modes: dict[str, int] = {}

    def take(self):
        count = 0
        for top in self.dirs:
            self.modes[top] = stat.S_IMODE(os.lstat(top).st_mode)
            for path in _walk_entries(top, self.skip):
                count += 1
                if count > _MAX_OWNED_ENTRIES:
                    self.give_back()
                    raise ValueError(
                        f"writable: {top} holds more than {_MAX_OWNED_ENTRIES} entries; pass a scratch directory"
                    )
                if path in self.before:
                    continue
                try:
                    info = os.lstat(path)
                    self.before[path] = (info.st_uid, info.st_gid)
                    os.chown(path, self.uid, self.gid, follow_symlinks=False)
                except FileNotFoundError:
                    continue
            os.chmod(top, self.modes[top] | stat.S_IRWXU)

    def give_back(self):
        for top in self.dirs:
            owner = self.before.get(top)
            if owner is None:
                continue
            for path in _walk_entries(top, self.skip):
                try:
                    info = os.lstat(path)
                except FileNotFoundError:
                    continue
                if info.st_uid != self.uid and info.st_gid != self.gid:
                    continue  # not the sandbox's (e.g. a hard link to someone else's file)
                uid, gid = self.before.get(path, owner)
                try:
                    os.chown(path, uid, gid, follow_symlinks=False)
                    if stat.S_ISREG(info.st_mode) and info.st_mode & (stat.S_ISUID | stat.S_ISGID):
                        os.chmod(path, stat.S_IMODE(info.st_mode) & ~(stat.S_ISUID | stat.S_ISGID))
                except OSError:
                    continue
            if top in self.modes:
                try:
                    os.chmod(top, self.modes[top])
                except OSError:
                    pass


# ---------------------------------------------------------------------------
# Finding and killing what is left
# ---------------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[str, str, int, int] | None:
    """(comm, state, ppid, starttime) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    head, _, tail = data.rpartition(b")")
    comm = head.partition(b"(")[2].decode(errors="replace")
    fields = tail.split()
    try:
        return comm, fields[0].decode(), int(fields[1]), int(fields[19])
    except (IndexError, ValueError):
        return None


def _matches(pid: int, needle: bytes | None, uid: int | None) -> bool:
    if uid is not None:
        try:
            with open(f"/proc/{pid}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"Uid:"):
                        if str(uid).encode() in line.split()[1:]:
                            return True
                        break
        except OSError:
            return False
    if needle is not None:
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                return needle in b"\0" + f.read()
        except OSError:
            return False
    return False


def _scan(token: str | None, uid: int | None) -> dict[int, tuple[str, str, int, int]]:
    """Live (non-zombie) processes that hold the token or run as uid: {pid: (comm, state, ppid, start)}."""
    needle = f"\0{TOKEN_VARIABLE}={token}\0".encode() if token else None
    me = os.getpid()
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        if pid == me:
            continue
        if _matches(pid, needle, uid):
            info = _proc_stat(pid)
            if info is not None and info[1] not in ("Z", "X"):
                found[pid] = info
    return found


def _kill_uid(uid: int):
    """kill(-1, SIGKILL) as uid: every process of that uid at once, fork bombs included."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 0
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            os.kill(-1, signal.SIGKILL)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.waitpid(pid, 0)


def _sweep(token: str | None, uid: int | None, exclude: Iterable[int], pgid: int | None = None,
           machinery: bool = False) -> int:
    """Kill every process holding the token or running as uid; returns how many were found.

    Processes in exclude, and with machinery=True bubblewrap's own processes
    (a PID namespace's pid 1 may still be tearing down), are killed but not
    counted. Repeats (bounded) until a scan finds nothing alive.
    """
    exclude = set(exclude)
    counted: set[int] = set()
    if pgid is not None:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
    for attempt in range(200):
        found = _scan(token, uid)
        counted |= {pid for pid, info in found.items() if pid not in exclude and not (machinery and info[0] == "bwrap")}
        if not found:
            break
        if pgid is not None:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except OSError:
                pass
        if uid is not None and os.geteuid() == 0:
            _kill_uid(uid)
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(min(0.002 * (attempt + 1), 0.05))
    return len(counted)


def _command_chain(found: Mapping[int, tuple[str, str, int, int]], main_pid: int) -> set[int]:
    """The command itself and bubblewrap's processes around it, which a timeout does not count as leftovers."""
    chain = {main_pid} | {pid for pid, info in found.items() if info[0] == "bwrap"}
    children = [(info[3], pid) for pid, info in found.items() if info[2] in chain and pid not in chain]
    if children:
        chain.add(min(children)[1])
    return chain


# ---------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------


def _real_dir(value, name: str) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path, got {type(value).__name__}")
    path = os.path.realpath(os.fspath(value))
    if not os.path.isdir(path):
        raise ValueError(f"{name}: {os.fspath(value)!r} is not an existing directory")
    return path


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def _can_enter(info: os.stat_result, uid: int, gid: int) -> bool:
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def _closed_ancestor(path: str, uid: int, gid: int) -> str | None:
    """The topmost directory above path that uid cannot enter, or None."""
    parts = pathlib.PurePosixPath(path).parts
    for i in range(1, len(parts)):
        ancestor = str(pathlib.PurePosixPath(*parts[:i]))
        try:
            info = os.stat(ancestor)
        except OSError:
            return None
        if not _can_enter(info, uid, gid):
            return ancestor
    return None


def _first_closed(path: str, uid: int, gid: int) -> str | None:
    """The topmost directory of path (path itself included) that uid cannot enter, or None."""
    closed = _closed_ancestor(path, uid, gid)
    if closed is None and os.path.isdir(path):
        try:
            if not _can_enter(os.stat(path), uid, gid):
                closed = path
        except OSError:
            pass
    return closed


# Any uid of the pool stands for "another user" when a directory is checked for them.
_OTHER = UID_POOL_START + UID_POOL_SIZE


def scratch_parent() -> str:
    """The temporary directory that scratch_dir() makes its directories in (see there)."""
    if os.geteuid() != 0:  # the child keeps the caller's uid: whatever the caller reaches will do
        return os.path.realpath(tempfile.gettempdir())
    tried = []
    for parent in dict.fromkeys((tempfile.gettempdir(), "/tmp")):
        real = os.path.realpath(parent)
        closed = _first_closed(real, _OTHER, _OTHER)
        if closed is None and os.path.isdir(real) and os.access(real, os.W_OK | os.X_OK):
            return real
        tried.append(f"{real} ({'closed to other users at ' + closed if closed else 'not writable'})")
    raise SandboxError(
        "no temporary directory that the sandbox's uid can enter: " + "; ".join(tried)
        + ". Set TMPDIR to a directory every user can enter (mode 1777, like /tmp) and grade again."
    )


def scratch_dir(prefix: str) -> str:
    """A new empty directory (mode 0700, the caller's) where a sandbox uid can be handed its work.

    Input: prefix, str (the name's start). Output: the directory's real path.

    As root it is made in the temporary directory (``$TMPDIR``) when every user can enter that, else
    in /tmp (a private ``TMPDIR``, mode 0700, is what many users have): even where no mount namespace
    can show the sandbox uid a closed directory, it reaches this one. The random name and mode
    0700 keep it private until :func:`run` hands it to the sandbox uid. Raises SandboxError,
    naming the directories and the fix, when other users can enter neither. Not root, the child
    keeps the caller's uid, and ``$TMPDIR`` is used as it is.
    """
    return os.path.realpath(tempfile.mkdtemp(prefix=prefix, dir=scratch_parent()))


def reach_problem(paths: Iterable[str | os.PathLike]) -> str | None:
    """Why a sandboxed child could not reach some of paths on this machine, or None when it can.

    As root the child runs as another uid; a directory closed to it (a checkout under /root or a
    private home, a private TMPDIR) is shown to it through a mount namespace. Where the machine
    gives none (a container without CAP_SYS_ADMIN), the message names the closed directory and
    the fix. Not root, the child keeps the caller's uid and reaches what the caller reaches.
    """
    if os.geteuid() != 0 or _namespaces_work():
        return None
    for p in paths:
        real = os.path.realpath(os.fspath(p))
        parts = pathlib.PurePosixPath(real).parts
        closed = []
        for i in range(1, len(parts)):
            ancestor = str(pathlib.PurePosixPath(*parts[:i]))
            with contextlib.suppress(OSError):
                if not _can_enter(os.stat(ancestor), _OTHER, _OTHER):
                    closed.append(ancestor)
        if closed:
            return (
                f"the sandbox's uid cannot reach {real}: {', '.join(closed)} "
                f"{'is' if len(closed) == 1 else 'are'} closed to other users, and this machine gives no mount "
                "namespace to show it through (a container without CAP_SYS_ADMIN?). Grade from a checkout every "
                f"user can enter (chmod o+x {' '.join(closed)}, or clone the course elsewhere, e.g. under /srv), "
                "or on a machine where root may unshare a mount namespace."
            )
    return None


# A non-root caller cannot give its child a thread budget of its own: RLIMIT_NPROC counts every task of the
# uid, and the caller's other processes (a second grading worker whose TensorFlow starts dozens of threads, a
# Jupyter server) keep starting threads while the child runs. Without this headroom the child's own thread
# pools failed as soon as a neighbour grew (TensorFlow aborted with SIGABRT). A fork bomb stays bounded, by
# this limit and by the wall-clock limit whose kill takes its processes (measured: a bomb of 256 + 30 was swept in
# 2.5 s; with 1024 the sweep, which has no PID namespace to end here, did not catch up within a minute).
SHARED_UID_HEADROOM = 256


def _tasks_of_user(uid: int) -> int:
    """How many processes and threads whose real uid is uid are alive (what RLIMIT_NPROC counts)."""
    count = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", "rb") as handle:
                fields = dict(line.split(b":", 1) for line in handle.read().splitlines() if b":" in line)
            if int(fields[b"Uid"].split()[0]) == uid:
                count += int(fields[b"Threads"])
        except (OSError, KeyError, ValueError, IndexError):
            continue
    return count


def _shared_writable_dirs() -> list[str]:
    out = []
    for p in _SHARED_WRITABLE:
        real = os.path.realpath(p)
        if real != "/" and os.path.isdir(real) and real not in out:
            out.append(real)
    return out


def _interpreter_dirs() -> list[str]:
    dirs = []
    for p in (sys.base_prefix, sys.prefix, os.path.dirname(os.path.realpath(sys.executable))):
        real = os.path.realpath(p)
        if os.path.isdir(real) and real != "/" and real not in dirs:
            dirs.append(real)
    return dirs


# ---------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------


def run(
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike,
    limits: Limits = Limits(),
    env: Mapping[str, str | None] | None = None,
    writable: Iterable[str | os.PathLike] = (),
    readable: Iterable[str | os.PathLike] = (),
    hidden: Iterable[str | os.PathLike] = (),
    stdin_bytes: bytes | None = None,
    run_as: int | str | None = "auto",
    new_pid_namespace: bool = True,
    bubblewrap: bool | None = None,
    require: Iterable[str] = (),
) -> Result:
    """Run argv in a sandboxed child process and wait for it (see the module docstring).

    Inputs:
    - argv: non-empty sequence of str; argv[0] is looked up on the child's PATH.
    - cwd: existing directory the child starts in; it is writable for the child
      (as if listed in writable) and is its HOME by default.
    - limits: Limits.
    - env: extra environment variables, merged over default_env(cwd); a None
      value removes a default. Nothing else of the parent's environment reaches
      the child. TOKEN_VARIABLE is always added.
    - writable: directories the child may write (besides cwd and its private
      /tmp); as root they are handed to the sandbox uid for the run
      (recursively, not past symlinks) and given back after it.
    - readable: directories the child must be able to read although a
      directory above them is closed to the sandbox uid (the parent
      interpreter's install is added automatically). As root the closed
      directory is covered by an empty one that shows only these.
    - hidden: files and directories the child must not see: each is covered by
      an empty read-only directory or by /dev/null. Paths that do not exist are
      skipped. A hidden directory may not contain cwd or a writable directory.
      Where nothing can be hidden (no mount namespace and no bubblewrap), the
      command is not started and SandboxError is raised.
    - stdin_bytes: bytes for the child's stdin, or None for /dev/null.
    - run_as: "auto" (as root: a uid of this run's own from the pool starting
      at UID_POOL_START; otherwise no change), an int uid (root only; the gid
      is the same number), or None (keep the caller's uid; as root the child
      then runs as root with rlimits and namespaces only).
    - new_pid_namespace: with bubblewrap, give the child a PID namespace of its
      own (the tree dies with the command). Pass False for Jupyter kernels.
    - bubblewrap: None uses bubblewrap when bubblewrap_path() finds a working
      one; False never uses it; True requires it (SandboxError otherwise).
    - require: isolation items (see Result.isolation; "uid" matches any
      "uid N") the run must enforce: when one cannot be, the command is not
      started and SandboxError is raised.

    Returns a Result. Raises ValueError/TypeError for bad arguments (naming
    the argument) and SandboxError when the sandbox cannot be set up.
    """
    # ---- arguments ----------------------------------------------------------
    if isinstance(argv, (str, bytes)) or not isinstance(argv, Sequence):
        raise TypeError(f"argv must be a sequence of str, got {type(argv).__name__}")
    argv = [os.fspath(a) for a in argv]
    if not argv:
        raise ValueError("argv must not be empty")
    if not all(isinstance(a, str) for a in argv) or not argv[0]:
        raise ValueError("argv must hold str arguments and a non-empty program name")
    if not isinstance(limits, Limits):
        raise TypeError(f"limits must be a Limits, got {type(limits).__name__}")
    cwd_real = _real_dir(cwd, "cwd")
    writable_dirs = [cwd_real]
    for w in writable:
        real = _real_dir(w, "writable")
        if real not in writable_dirs:
            writable_dirs.append(real)
    for w in writable_dirs:
        if w in _SYSTEM_DIRS:
            raise ValueError(f"writable: {w} is a system directory; pass a scratch directory")
    readable_dirs = []
    for r in readable:
        if not isinstance(r, (str, os.PathLike)):
            raise TypeError(f"readable must hold paths, got {type(r).__name__}")
        real = os.path.realpath(os.fspath(r))
        if not os.path.exists(real):
            raise ValueError(f"readable: {os.fspath(r)!r} does not exist")
        readable_dirs.append(real)
    hidden_paths = []
    for h in hidden:
        if not isinstance(h, (str, os.PathLike)):
            raise TypeError(f"hidden must hold paths, got {type(h).__name__}")
        real = os.path.realpath(os.fspath(h))
        if real == "/":
            raise ValueError("hidden: cannot hide /")
        for w in writable_dirs:
            if _under(w, real) and os.path.isdir(real):
                raise ValueError(f"hidden: {os.fspath(h)!r} contains the writable directory {w}")
        if real not in hidden_paths:
            hidden_paths.append(real)
    if stdin_bytes is not None and not isinstance(stdin_bytes, (bytes, bytearray, memoryview)):
        raise TypeError(f"stdin_bytes must be bytes or None, got {type(stdin_bytes).__name__}")
    if not isinstance(new_pid_namespace, bool):
        raise TypeError("new_pid_namespace must be True or False")
    if bubblewrap not in (None, True, False):
        raise ValueError(f"bubblewrap must be None, True or False, got {bubblewrap!r}")
    require = [str(r) for r in require]
    if env is None:
        env = {}
    if not isinstance(env, Mapping):
        raise TypeError(f"env must be a mapping, got {type(env).__name__}")
    child_env = default_env(cwd_real)
    for key, value in env.items():
        if not isinstance(key, str) or not key or "=" in key:
            raise ValueError(f"env: bad variable name {key!r}")
        if value is None:
            child_env.pop(key, None)
        elif isinstance(value, str):
            child_env[key] = value
        else:
            raise TypeError(f"env: the value of {key} must be str or None, got {type(value).__name__}")
    root = os.geteuid() == 0
    if run_as == "auto":
        uid_wanted: int | None = -1 if root else None
    elif run_as is None:
        uid_wanted = None
    elif isinstance(run_as, int) and not isinstance(run_as, bool) and run_as >= 0:
        if not root and run_as != os.geteuid():
            raise ValueError(f"run_as: changing to uid {run_as} needs root")
        uid_wanted = None if run_as == os.geteuid() else run_as
        if run_as == 0 and root:
            uid_wanted = None
    else:
        raise ValueError(f"run_as must be 'auto', None or a uid >= 0, got {run_as!r}")

    bwrap = None
    if bubblewrap is not False:
        bwrap = bubblewrap_path()
        if bwrap is None and bubblewrap:
            raise SandboxError(f"bubblewrap was required but does not work: {_bwrap_probe.get('why')}")

    token = secrets.token_hex(16)
    child_env[TOKEN_VARIABLE] = token

    lease: _UidLease | None = None
    ownership: _Ownership | None = None
    try:
        if uid_wanted == -1:
            lease = _lease_uid()
            uid_wanted = lease.uid
        uid = uid_wanted
        gid = uid
        if uid is not None:
            ownership = _Ownership(writable_dirs, uid, gid, skip=hidden_paths)
            ownership.take()
        config, outer = _plan(
            argv, cwd_real, limits, child_env, writable_dirs, readable_dirs, hidden_paths,
            uid, gid, root, bwrap, new_pid_namespace,
        )
        # hidden paths are never silently left visible
        needs = require + (["hidden paths"] if any(os.path.lexists(h) for h in hidden_paths) else [])
        config["require"] = list(dict.fromkeys(needs))
        config["outer"] = outer
        return _execute(config, outer, limits, token, uid, stdin_bytes)
    finally:
        if ownership is not None:
            ownership.give_back()
        if lease is not None:
            lease.release()


def _plan(argv, cwd, limits, env, writable_dirs, readable_dirs, hidden_paths, uid, gid, root, bwrap, new_pid_ns):
    """The launcher's configuration and the isolation items bubblewrap adds."""
    shared = _shared_writable_dirs()
    tmp_size = max(4 * limits.file_bytes, 2**20)
    mount_ops: list[dict] = []
    outer: list[str] = ["new session"]
    # The launcher prepares the file system view when it can: as root always (bwrap, run by the
    # sandbox uid, could not reach what root must show it), not root only without bwrap.
    namespaces = _namespaces_work()
    launcher_mounts = (root or bwrap is None) and namespaces
    uid_eff = uid if uid is not None else os.geteuid()
    gid_eff = gid if gid is not None else os.getegid()

    def hidden_dests(covers, binds):
        dests = []
        for h in hidden_paths:
            if not os.path.lexists(h):
                continue
            covered = any(_under(h, c) for c in covers)
            if covered and not any(_under(h, b) for b in binds):
                continue  # already out of sight
            dests.append(h)
        # A path under another hidden folder is out of sight with it; covering it as well would need a mount
        # point inside that folder's read-only cover (bubblewrap: "Can't mkdir parents ...: Read-only").
        return [h for h in dests if not any(o != h and os.path.isdir(o) and _under(h, o) for o in dests)]

    if root and uid is not None and not launcher_mounts:
        problem = reach_problem(writable_dirs + readable_dirs)
        if problem:
            raise SandboxError(problem)
    if launcher_mounts:
        covers = [c for c in shared if not (bwrap and c == "/dev/shm")]  # bwrap's --dev brings its own
        for c in covers:
            mount_ops.append({"op": "tmpfs", "path": c, "mode": "1777", "size": tmp_size, "shared": True})
        exposed = [(w, False) for w in writable_dirs] + [(r, True) for r in readable_dirs + _interpreter_dirs()]
        exposed.sort(key=lambda item: item[0].count("/"))  # parents first: a later bind lands on top
        closed_covers: list[str] = []
        binds: list[str] = []
        bound: dict[str, bool] = {}
        for path, ro in exposed:
            if any(_under(path, b) and (not b_ro or ro) for b, b_ro in bound.items()):
                continue  # already visible, as writable as it needs to be
            if any(_under(path, c) for c in covers):
                pass
            elif root and uid is not None:
                closed = _closed_ancestor(path, uid_eff, gid_eff)
                if closed is None:
                    continue
                if closed not in closed_covers:
                    closed_covers.append(closed)
                    mount_ops.append({"op": "tmpfs", "path": closed, "mode": "0755", "size": 2**20})
            else:
                continue
            binds.append(path)
            bound[path] = ro
            mount_ops.append({"op": "bind", "src": path, "path": path, "ro": ro})
        for c in closed_covers:
            mount_ops.append({"op": "remount_ro", "path": c, "data": "mode=0755,size=1048576"})
        for h in hidden_dests(covers + closed_covers, binds):
            mount_ops.append({"op": "hide_dir" if os.path.isdir(h) else "hide_file", "path": h})
        if root and not (bwrap and new_pid_ns):
            mount_ops.append({"op": "proc"})

    rlimits = [
        ["RLIMIT_AS", limits.memory_bytes, limits.memory_bytes],
        ["RLIMIT_CPU", limits.effective_cpu_seconds, limits.effective_cpu_seconds + 1],
        ["RLIMIT_FSIZE", limits.file_bytes, limits.file_bytes],
        ["RLIMIT_NOFILE", limits.open_files, limits.open_files],
        ["RLIMIT_CORE", 0, 0],
    ]
    if uid is not None:
        rlimits.append(["RLIMIT_NPROC", limits.processes, limits.processes])
    elif not root:
        # The caller's own uid: RLIMIT_NPROC counts every process and thread of that user (a Jupyter server,
        # the grader's own threads), so the child may start ``processes`` more than there are now, plus
        # SHARED_UID_HEADROOM for what that user's other processes start while the child runs.
        nproc = _tasks_of_user(os.getuid()) + limits.processes + SHARED_UID_HEADROOM
        rlimits.append(["RLIMIT_NPROC", nproc, nproc])

    command = list(argv)
    if bwrap:
        args = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev"]
        if new_pid_ns:
            args += ["--proc", "/proc"]
        if launcher_mounts:
            for c in shared:
                if c != "/dev/shm":
                    args += ["--bind", c, c]
        else:
            for c in shared:
                if c != "/dev/shm":
                    args += ["--size", str(tmp_size), "--perms", "1777", "--tmpfs", c]
            outer.append("private /tmp")
        for w in writable_dirs:
            args += ["--bind", w, w]
        if not launcher_mounts:
            # readable paths under a private /tmp (the verifier's job folder) are shown through it, read-only
            private = [c for c in shared if c != "/dev/shm"]
            for r in readable_dirs:
                if any(_under(r, c) for c in private) and not any(_under(r, w) for w in writable_dirs):
                    args += ["--ro-bind", r, r]
            for h in hidden_dests([c for c in shared if c != "/dev/shm"], writable_dirs):
                if os.path.isdir(h):
                    args += ["--perms", "0555", "--tmpfs", h, "--remount-ro", h]
                else:
                    args += ["--ro-bind", "/dev/null", h]
            if hidden_paths:
                outer.append("hidden paths")
        args += ["--unshare-user", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
        if _bwrap_disables_userns():
            args.append("--disable-userns")
        if new_pid_ns:
            args.append("--unshare-pid")
        if not limits.network:
            args.append("--unshare-net")
        args += ["--die-with-parent", "--new-session", "--json-status-fd", "{status_fd}", "--chdir", cwd, "--"]
        command = args + command
        outer += ["bubblewrap", "read-only root", "new ipc namespace"]
        if new_pid_ns:
            outer.append("new pid namespace")
        if not limits.network:
            outer.append("no network")

    config = {
        "argv": command,
        "env": env,
        "cwd": cwd,
        "mount": launcher_mounts and bool(mount_ops),
        "mounts": mount_ops if launcher_mounts else [],
        "unshare_net": (not limits.network) and not bwrap and namespaces,
        "unshare_ipc": not bwrap and namespaces,
        "hidden_requested": bool(hidden_paths) and launcher_mounts,
        "rlimits": rlimits,
        "uid": uid,
        "gid": gid,
        "parent": os.getpid(),
    }
    return config, outer


def _execute(config, outer, limits, token, uid, stdin_bytes) -> Result:
    cfg_r, cfg_w = os.pipe()
    rep_r, rep_w = os.pipe()
    pass_fds = [cfg_r, rep_w]
    status_r = status_w = None
    use_bwrap = "bubblewrap" in outer
    if use_bwrap:
        status_r, status_w = os.pipe()
        pass_fds.append(status_w)
        config["argv"] = [str(status_w) if a == "{status_fd}" else a for a in config["argv"]]
    launcher = [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(cfg_r), str(rep_w)]
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            launcher,
            stdin=subprocess.PIPE if stdin_bytes is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=pass_fds,
            start_new_session=True,
            close_fds=True,
            cwd="/",
            env={"LC_ALL": "C.UTF-8"},
        )
    except OSError as exc:
        for fd in (cfg_r, cfg_w, rep_r, rep_w, status_r, status_w):
            if fd is not None:
                os.close(fd)
        raise SandboxError(f"could not start the sandbox launcher: {exc}") from exc
    for fd in (cfg_r, rep_w, status_w):
        if fd is not None:
            os.close(fd)
    try:
        with os.fdopen(cfg_w, "wb") as f:
            f.write(json.dumps(config).encode())
    except OSError:
        pass  # the launcher is gone; its report says why

    outputs = {"stdout": bytearray(), "stderr": bytearray(), "report": bytearray(), "status": bytearray()}
    caps = {"stdout": limits.output_bytes, "stderr": limits.output_bytes, "report": 2**20, "status": 2**16}
    truncated = {"stdout": False, "stderr": False}
    sel = selectors.DefaultSelector()
    readers = {proc.stdout.fileno(): "stdout", proc.stderr.fileno(): "stderr", rep_r: "report"}
    if status_r is not None:
        readers[status_r] = "status"
    for fd, name in readers.items():
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ, name)
    stdin_view = memoryview(bytes(stdin_bytes)) if stdin_bytes is not None else None
    if stdin_view is not None:
        stdin_fd = proc.stdin.fileno()
        os.set_blocking(stdin_fd, False)
        if len(stdin_view):
            sel.register(stdin_fd, selectors.EVENT_WRITE, "stdin")
        else:
            proc.stdin.close()
    pidfd = None
    if hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(proc.pid)
            sel.register(pidfd, selectors.EVENT_READ, "exit")
        except OSError:
            pidfd = None

    deadline = start + limits.wall_seconds
    timed_out = False
    ended_at = None
    drain_until = None
    leftover = 0

    def close_stdin():
        if proc.stdin is not None and not proc.stdin.closed:
            try:
                sel.unregister(proc.stdin.fileno())
            except (KeyError, ValueError):
                pass
            try:
                proc.stdin.close()
            except OSError:
                pass

    try:
        while True:
            now = time.monotonic()
            if ended_at is None:
                if proc.poll() is not None:
                    ended_at = now
                    close_stdin()
                    leftover = _sweep(token, uid, exclude=(proc.pid,), pgid=proc.pid, machinery=use_bwrap)
                    drain_until = time.monotonic() + 1.0
                elif now >= deadline:
                    timed_out = True
                    found = _scan(token, uid)
                    chain = _command_chain(found, proc.pid)
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except OSError:
                        pass
                    leftover = _sweep(token, uid, exclude=chain, pgid=proc.pid, machinery=use_bwrap)
                    leftover = max(leftover, len(set(found) - chain))
                    proc.wait()
                    ended_at = deadline
                    close_stdin()
                    _sweep(token, uid, exclude=(), pgid=proc.pid)
                    drain_until = time.monotonic() + 1.0
            reading = [k for k in sel.get_map().values() if k.data in outputs]
            if ended_at is not None and (not reading or time.monotonic() >= drain_until):
                break
            if ended_at is None:
                timeout = max(0.0, deadline - time.monotonic())
                if pidfd is None:
                    timeout = min(timeout, 0.02)
            else:
                timeout = max(0.0, drain_until - time.monotonic())
            for key, _ in sel.select(timeout):
                name = key.data
                if name == "exit":
                    sel.unregister(key.fd)
                    continue
                if name == "stdin":
                    try:
                        n = os.write(key.fd, stdin_view[:65536])
                        stdin_view = stdin_view[n:]
                        if not len(stdin_view):
                            close_stdin()
                    except BlockingIOError:
                        pass
                    except OSError:
                        close_stdin()
                    continue
                try:
                    chunk = os.read(key.fd, 65536)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if not chunk:
                    sel.unregister(key.fd)
                    continue
                buf = outputs[name]
                room = caps[name] - len(buf)
                if room > 0:
                    buf += chunk[:room]
                if len(chunk) > room and name in truncated:
                    truncated[name] = True
    finally:
        if proc.poll() is None:  # an exception above: leave nothing behind
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            proc.kill()
            proc.wait()
            _sweep(token, uid, exclude=(), pgid=proc.pid)
        sel.close()
        for f in (proc.stdout, proc.stderr):
            f.close()
        close_stdin()
        for fd in (rep_r, status_r, pidfd):
            if fd is not None:
                os.close(fd)
    # one last look: nothing may outlive the run
    leftover += _sweep(token, uid, exclude=(), pgid=proc.pid, machinery=use_bwrap)

    wall = (ended_at if ended_at is not None else time.monotonic()) - start
    report = _parse_report(outputs["report"])
    if "error" in report:
        raise SandboxError(f"the sandbox could not be set up: {report['error']}")
    isolation = tuple(list(report.get("isolation", [])) + list(outer))
    rc = proc.returncode
    sig = None
    if "bubblewrap" in outer and not timed_out and rc is not None and rc >= 0:
        statuses = _parse_json_lines(outputs["status"])
        if not any("exit-code" in s for s in statuses) and rc != 0:
            err = bytes(outputs["stderr"]).decode(errors="replace").strip()
            if "bwrap: execvp " not in err:
                raise SandboxError(f"bubblewrap could not start the command: {err[-2000:]}")
            # the command itself could not be executed: the same answer as without bubblewrap
            outputs["stderr"] = bytearray(err.replace("bwrap: execvp ", "sandbox: cannot run ").encode() + b"\n")
            rc = 127
        elif 128 < rc <= 128 + 64:
            sig, rc = rc - 128, None
    if timed_out:
        status, rc, sig = "timeout", None, signal.SIGKILL
    elif rc is not None and rc < 0:
        status, rc, sig = "killed", None, -rc
    elif sig is not None:
        status = "killed"
    else:
        status = "ok" if rc == 0 else "error"
    return Result(
        status=status,
        returncode=rc,
        signal=sig,
        stdout=bytes(outputs["stdout"]),
        stderr=bytes(outputs["stderr"]),
        stdout_truncated=truncated["stdout"],
        stderr_truncated=truncated["stderr"],
        wall_seconds=wall,
        leftover_killed=leftover,
        isolation=tuple(dict.fromkeys(isolation)),
        limits=limits,
    )


def _parse_json_lines(data: bytes) -> list[dict]:
    out = []
    for part in bytes(data).replace(b"}", b"}\n").splitlines():
        part = part.strip()
        if part:
            try:
                value = json.loads(part)
            except ValueError:
                continue
            if isinstance(value, dict):
                out.append(value)
    return out


def _parse_report(data: bytes) -> dict:
    if not data:
        return {"error": "the launcher ended before it reported (killed during setup?)"}
    try:
        value = json.loads(bytes(data))
    except ValueError:
        return {"error": f"unreadable launcher report {bytes(data)[:200]!r}"}
    return value if isinstance(value, dict) else {"error": "unreadable launcher report"}


def isolation_report() -> dict:
    """What this machine enforces, for the README and for tests to print.

    Returns a dict: euid, root (bool), bubblewrap (path or None), bubblewrap_note
    (version, or why it does not work), and for each of "with_bubblewrap" and
    "without_bubblewrap" the isolation items of a trivial run with default
    limits and one hidden path (None for with_bubblewrap when bubblewrap does
    not work; a string when setting up failed).
    """
    path = bubblewrap_path()
    report: dict[str, object] = {
        "euid": os.geteuid(),
        "root": os.geteuid() == 0,
        "bubblewrap": path,
        "bubblewrap_note": _bwrap_probe.get("version") or _bwrap_probe.get("why"),
    }
    scratch = scratch_dir("cnn-sandbox-probe-")
    try:
        secret = os.path.join(scratch, "secret")
        with open(secret, "w") as f:
            f.write("x")
        work = os.path.join(scratch, "work")
        os.mkdir(work)
        for key, use in (("with_bubblewrap", True), ("without_bubblewrap", False)):
            if use and path is None:
                report[key] = None
                continue
            try:
                res = run([sys.executable, "-I", "-S", "-c", "pass"], cwd=work, hidden=[secret], bubblewrap=use,
                          limits=Limits(wall_seconds=30))
                report[key] = list(res.isolation) if res.ok else f"{res.status}: {res.stderr[-500:]!r}"
            except SandboxError as exc:
                report[key] = f"SandboxError: {exc}"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return report
