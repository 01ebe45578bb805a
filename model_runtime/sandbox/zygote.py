"""editseq's warm test runner (the *zygote*): runs inside the sandbox and forks one child per test run.

This file runs in the *user's* interpreter, inside the same sandbox a cold run
gets (bubblewrap or ``unshare``), so like :mod:`.pytest_json_plugin` it is
self-contained: the standard library and pytest only. The runner
(:mod:`model_runtime.sandbox.warm`) copies it next to the results plugin as
``_editseq_zygote.py`` and starts ``python _editseq_zygote.py FD``, where
``FD`` is its end of a Unix ``SOCK_SEQPACKET`` socket pair: the control
channel. Every message is one JSON object; a run's standard output, standard
error and results pipe come with its message as descriptors (``SCM_RIGHTS``).

Start-up (``{"config": ...}`` in, ``{"ready": ...}`` or ``{"failed": ...}`` out):

1. Refuse to serve unless this process is PID 1 or 2 of a fresh PID namespace:
   cleaning up after a run kills every other process in it (``kill(-1)``).
2. Become a child subreaper (orphans of a run come back here to be reaped) and
   not dumpable (nothing a run starts can read or write this process's
   memory through ``/proc`` or ``ptrace``: it would need ``CAP_SYS_PTRACE`` in
   the namespace this process is in, which a run never has, see below).
3. *Warm up*: one pytest session with the run's own options on an empty
   folder (``--noconftest``), output discarded. It imports pytest, its
   plugins and the installed ``pytest11`` plugins the way a run would (under
   pytest's assertion rewriting), and whatever they import lazily during a
   session. Nothing from the workspace is imported: its folders are taken
   off ``sys.path`` meanwhile, plugins whose module lives in the workspace
   (an editable install) are blocked (``-p no:NAME``: each run imports
   them itself, from its shadow copy), and a module from the workspace found
   in ``sys.modules`` afterwards fails the start-up. A session that leaves a
   thread running fails it too (forking would be unsafe).
4. Probe the per-run isolation below once; answer with the top-level module
   names now loaded (the runner sends a run whose shadow copy provides one of
   them to a cold run: there, the copy would have shadowed it) and the
   entry-point plugins registered (a run whose configuration blocks one of
   them, or changes the assertion mode, reports ``editseq_cold`` and is
   re-run cold by the runner: the warm state would not be the one it asks for).

Per run (``{"run": ...}`` + 3 descriptors in; ``{"started": pid}`` and then
``{"exited": code, "cpu": s, "stopped": bool, "clean": bool}`` out; ``{"kill": 1}``
in stops it). The run gets the namespaces a cold run gets, owned by a user
namespace of its own (mapping the single uid and gid a cold run has), so the
tests hold capabilities over their own namespaces only, never over this
process's:

``C1`` (forked here)
    Sets the run's rlimits, then makes a mount and a PID namespace (where this
    process has no ``CAP_SYS_ADMIN``, an unprivileged sandbox: a user namespace
    and all of the run's namespaces at once). It forks ``C2`` and passes on how
    the tests' process ended: an exit code, or 128 + the signal (as bubblewrap
    does); under ``unshare`` the same signal (as ``unshare`` does).
``C2`` (PID 1 of the run's PID namespace)
    Makes its mounts private; under bubblewrap mounts a fresh ``/proc``
    showing only the run's processes (with the read-only parts bubblewrap
    gave this process's), as a cold run has; then a user namespace with new
    network (unless allowed), IPC and UTS namespaces (bubblewrap) or a new
    network namespace (``unshare``): the mounts inherited are locked there.
    It brings the loopback up, and under bubblewrap drops every capability
    (``bwrap --cap-drop ALL``, as a cold run). Under bubblewrap it forks ``C3``
    (``setsid``, as ``--new-session``) and reaps until ``C3`` ends; under
    ``unshare`` it is the tests' process itself (PID 1, as there). When it
    exits the kernel kills everything left in the run's PID namespace
    (daemons, ``setsid`` children, a fork bomb).
``C3`` (PID 2, as pytest is in a cold bubblewrap run)
    Standard streams and the results pipe from the runner, every other
    descriptor closed, the cold run's environment (the results pipe named in
    ``EDITSEQ_RESULTS_FD``), working folder, ``sys.argv`` and ``sys.path``
    (the import caches cleared), then ``pytest.main`` with the cold run's
    arguments and the results plugin's channel; exits through the
    interpreter's normal exit, as a cold run does.

After each run this process kills every other process in its own PID
namespace (``kill(-1)``: all but PID 1 and itself), reaps them, and puts
bubblewrap's private mounts (the runner names them: ``/tmp``, ``/var/tmp``,
``/run``, ``/dev``, the home folders) back to the state recorded before the
warm-up: anything added is deleted, modes, owners and links put back, and
nothing on another device (a device node or folder bound in, the runs folder)
is ever touched. What cannot be put back is reported (``"clean": false``) and
the runner retires this zygote. The run's folder is the runner's to delete.

What a warm run does not share with a cold one: the interpreter's hash seed
(every run of one zygote has the zygote's), ``__main__`` (this module, not the
results plugin), and what the warm-up's session left in modules that no run has
touched yet (imported modules, plugin caches): a run starts from a state no
run has changed, never from an earlier run's.
"""

from __future__ import annotations

import array
import ctypes
import importlib
import importlib.util
import json
import os
import resource
import select
import signal
import socket
import stat
import struct
import sys
import time
import traceback

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
_CAPABILITY_VERSION_3 = 0x20080522

#: What a run's first results record says when the warm state is not the one the run asks for.
COLD_EVENT = "editseq_cold"
_MAX_MESSAGE = 1 << 20
_LIMITS = {"cpu": resource.RLIMIT_CPU, "memory": resource.RLIMIT_AS, "file": resource.RLIMIT_FSIZE,
           "nproc": resource.RLIMIT_NPROC, "core": resource.RLIMIT_CORE}

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _unshare(flags):
    _check(_libc.unshare(ctypes.c_int(flags)))


def _mount(source, target, fstype, flags):
    _check(_libc.mount(source, target, fstype, ctypes.c_ulong(flags), None))


def _prctl(option, value, arg3=0):
    _check(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(value), ctypes.c_ulong(arg3), ctypes.c_ulong(0),
                       ctypes.c_ulong(0)))


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_capabilities():
    """What ``bwrap --cap-drop ALL`` leaves a cold run: no capability in any set, the bounding set
    included (so that executing a program as uid 0 gains none either)."""
    for cap in range(64):
        try:
            _prctl(PR_CAPBSET_DROP, cap)
        except OSError:
            break  # past the last capability this kernel knows
    try:
        _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError:
        pass
    header = _CapHeader(_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), data))


def _exit_code(status):
    """``os.waitstatus_to_exitcode`` (Python 3.9+): the code, or minus the signal."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


# --------------------------------------------------------------------------- the control channel


def send(sock, message, fds=()):
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    sock.sendmsg([json.dumps(message).encode()], ancillary)


def receive(sock):
    """The next message and the descriptors that came with it; ``(None, [])`` at the end."""
    try:
        data, ancillary, _flags, _addr = sock.recvmsg(_MAX_MESSAGE, socket.CMSG_SPACE(8 * 4))
    except (ConnectionResetError, BrokenPipeError):  # the other end died
        return None, []
    fds = []
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.extend(array.array("i", payload[: len(payload) - len(payload) % 4]))
    if not data:
        for fd in fds:
            os.close(fd)
        return None, []
    return json.loads(data), fds


# --------------------------------------------------------------------------- start-up


class _Recorder:
    """Registered in the warm-up session: which entry-point plugins it loaded, and the assertion mode."""

    def __init__(self):
        self.plugins, self.assertmode, self.exitstatus = [], None, None

    def pytest_configure(self, config):
        manager = config.pluginmanager
        self.plugins = sorted({manager.get_name(plugin) for plugin, _dist in manager.list_plugin_distinfo()})
        self.assertmode = getattr(config.option, "assertmode", None)


class _FidelityCheck:
    """Registered in every warm run: before any conftest, the run's configuration must load the plugins
    the zygote imported, in the same assertion mode; else the run stops and asks to be run cold."""

    def __init__(self, plugins, assertmode, fd):
        self._plugins, self._assertmode, self._fd = plugins, assertmode, fd

    def check(self, early_config):
        manager = early_config.pluginmanager
        blocked = [name for name in self._plugins if manager.is_blocked(name) or manager.get_plugin(name) is None]
        mode = getattr(early_config.known_args_namespace, "assertmode", None)
        if blocked or mode != self._assertmode:
            record = {"event": COLD_EVENT, "blocked": blocked, "assertmode": mode,
                      "reason": f"the run's configuration blocks {', '.join(blocked)}" if blocked
                      else f"the run asks for --assert={mode}"}
            os.write(self._fd, (json.dumps(record) + "\n").encode())
            os._exit(0)

    def plugin(self):
        """The check as a pytest plugin: first among the hooks that run before the conftests load."""
        import pytest

        check = self.check

        class FidelityCheck:
            @pytest.hookimpl(tryfirst=True)
            def pytest_load_initial_conftests(self, early_config):
                check(early_config)

        return FidelityCheck()


def _inside(path, folder):
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _spec_in(name, folder):
    """Whether the top-level module ``name`` would be imported from ``folder`` (nothing is run)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError, AttributeError):
        return False
    if spec is None:
        return False
    places = [spec.origin] if spec.origin and spec.has_location else []
    places += list(spec.submodule_search_locations or [])
    return any(_inside(place, folder) for place in places if isinstance(place, str))


def _entry_points():
    from importlib import metadata

    found = metadata.entry_points()
    group = found.select(group="pytest11") if hasattr(found, "select") else found.get("pytest11", [])
    return [(ep.name, ep.value.split(":", 1)[0].strip()) for ep in group]


def _workspace_options(args, workspace):
    """``args`` without the ``-p NAME`` options whose module comes from the workspace (each run loads
    those itself), and ``-p no:NAME`` for the entry-point plugins that do."""
    out, i = [], 0
    while i < len(args):
        arg = args[i]
        value, width = (args[i + 1], 2) if arg == "-p" and i + 1 < len(args) else \
            (arg[2:], 1) if arg.startswith("-p") and len(arg) > 2 else (None, 1)
        if value is not None and not value.startswith("no:"):
            top = value.split(".", 1)[0]
            if any(os.path.exists(os.path.join(workspace, sub, top + ext)) for sub in ("", "src")
                   for ext in ("", ".py")) or _spec_in(top, workspace):
                i += width
                continue
        out += args[i:i + width]
        i += width
    for name, module in _entry_points():
        if _spec_in(module.split(".", 1)[0], workspace):
            out += ["-p", f"no:{name}"]
    return out


def _warm_up(config):
    """One empty pytest session with the run's options; the plugins it loaded and its assertion mode."""
    import pytest

    workspace = config["workspace"]
    scratch = config["scratch"]
    args = _workspace_options(list(config["args"]), workspace)
    saved_path = list(sys.path)
    sys.path[:] = [p for p in sys.path if not (p and os.path.isabs(p) and _inside(p, workspace))]
    importlib.invalidate_caches()
    recorder = _Recorder()
    os.makedirs(scratch, exist_ok=True)
    os.chdir(scratch)
    try:
        code = pytest.main([*args, "--noconftest", f"--rootdir={scratch}", "--", scratch], plugins=[recorder])
    finally:
        sys.path[:] = saved_path
        importlib.invalidate_caches()
        os.chdir(config["runs"])
    if int(code) not in (0, 5):  # 5: no tests collected, as expected
        raise RuntimeError(f"the warm-up session ended with exit status {int(code)}")
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        raise RuntimeError("the warm-up session left a thread running; forking would not be safe")
    from_workspace = sorted(name for name, module in list(sys.modules.items())
                            if isinstance(getattr(module, "__file__", None), str)
                            and _inside(module.__file__, workspace))
    if from_workspace:
        raise RuntimeError(f"the warm-up imported from the workspace: {', '.join(from_workspace[:5])}")
    return recorder


def _loaded_modules():
    """Top-level modules loaded now: name -> whether it is a namespace package."""
    loaded = {}
    for name, module in list(sys.modules.items()):
        if "." in name or module is None:
            continue
        spec = getattr(module, "__spec__", None)
        loaded[name] = bool(spec is not None and spec.origin in (None, "namespace")
                            and getattr(module, "__path__", None) is not None
                            and getattr(module, "__file__", None) is None)
    return loaded


# --------------------------------------------------------------------------- private mounts


def _mounts():
    """``(mount point, fs type, read-write)`` of every mount this process reaches by its path: one
    covered by a later mount on the same point, or on a folder that another mount hides, is left out
    (the device its path shows is not the mount's)."""
    rows = []
    with open("/proc/self/mountinfo", encoding="utf-8") as info:
        for line in info:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            point = fields[4].encode().decode("unicode_escape")
            major, _, minor = fields[2].partition(":")
            rows.append((point, tail[0], "rw" in fields[5].split(","), (int(major), int(minor))))
    last = {row[0]: i for i, row in enumerate(rows)}
    found = []
    for i, (point, fstype, rw, device) in enumerate(rows):
        if last[point] != i:
            continue
        try:
            shown = os.lstat(point).st_dev
        except OSError:
            continue
        if (os.major(shown), os.minor(shown)) == device:
            found.append((point, fstype, rw))
    return found


class PrivateMounts:
    """The sandbox's own writable mounts (``roots``: the tmpfs folders bubblewrap made, named by the
    runner) as they were before any run, and :meth:`restore` to put them back after one.

    Only what lies on a root's own file system is ever touched: an entry on another device (a
    device node, the runs folder or a read-only folder bound in, ``/dev/pts``) is another mount, and
    is neither changed nor entered."""

    def __init__(self, roots):
        tmpfs = {point for point, fstype, rw in _mounts() if fstype == "tmpfs" and rw}
        self.roots, self.modes = {}, {}
        for root in roots:
            try:
                info = os.lstat(root)
            except OSError:
                continue
            if root in tmpfs and stat.S_ISDIR(info.st_mode):
                self.roots[root] = info.st_dev
                self.modes[root] = stat.S_IMODE(info.st_mode)
        self.state = {root: self._scan(root, device) for root, device in self.roots.items()}

    @staticmethod
    def _scan(root, device, fix=False):
        """``path -> (type, mode, uid, gid, link, size)`` under ``root`` on ``device``; ``fix``: open up
        folders a run made unreadable, on the way."""
        entries = {}
        stack = [root]
        while stack:
            folder = stack.pop()
            try:
                names = os.listdir(folder)
            except PermissionError:
                if not fix:
                    continue
                try:
                    os.chmod(folder, 0o700)
                    names = os.listdir(folder)
                except OSError:
                    continue
            except OSError:
                continue
            for name in names:
                path = os.path.join(folder, name)
                try:
                    info = os.lstat(path)
                except OSError:
                    continue
                if info.st_dev != device:
                    continue  # another mount
                target = os.readlink(path) if stat.S_ISLNK(info.st_mode) else None
                entries[path] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid,
                                 target, info.st_size if stat.S_ISREG(info.st_mode) else 0)
                if stat.S_ISDIR(info.st_mode):
                    stack.append(path)
        return entries

    def restore(self):
        """Delete what a run added, put back modes, owners and links; False if something could not be."""
        clean = True
        for root, device in self.roots.items():
            before = self.state[root]
            try:
                info = os.lstat(root)
                if info.st_dev != device:
                    return False  # the mount itself is gone or covered: cannot be trusted any more
                os.chmod(root, stat.S_IMODE(info.st_mode) | 0o700)
            except OSError:
                return False
            now = self._scan(root, device, fix=True)
            for path in sorted(now, key=len, reverse=True):  # deepest first
                if path not in before:
                    clean &= _remove(path, device)
            for path, (kind, mode, uid, gid, target, size) in sorted(before.items()):
                try:
                    info = os.lstat(path)
                except FileNotFoundError:
                    clean &= _recreate(path, kind, mode, uid, gid, target)
                    continue
                except OSError:
                    clean = False
                    continue
                if info.st_dev != device:
                    clean = False  # something mounted over it
                    continue
                if stat.S_IFMT(info.st_mode) != kind or (target is not None and os.readlink(path) != target) \
                        or (kind == stat.S_IFREG and info.st_size != size):
                    clean &= _remove(path, device) and _recreate(path, kind, mode, uid, gid, target)
                    continue
                try:
                    if kind != stat.S_IFLNK and stat.S_IMODE(info.st_mode) != mode:
                        os.chmod(path, mode)
                    if (info.st_uid, info.st_gid) != (uid, gid):
                        os.lchown(path, uid, gid)
                except OSError:
                    clean = False
            try:
                os.chmod(root, self.modes[root])
            except OSError:
                clean = False
        return clean


def _remove(path, device):
    """Delete ``path`` (a folder with what is in it), staying on ``device``."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    if info.st_dev != device:
        return False  # a mount: never ours to delete
    try:
        if stat.S_ISDIR(info.st_mode):
            os.chmod(path, 0o700)
            for name in os.listdir(path):
                if not _remove(os.path.join(path, name), device):
                    return False
            os.rmdir(path)
        else:
            try:
                os.unlink(path)
            except PermissionError:
                os.chmod(os.path.dirname(path), 0o700)
                os.unlink(path)
        return True
    except OSError:
        return False


def _recreate(path, kind, mode, uid, gid, target):
    try:
        if kind == stat.S_IFDIR:
            os.mkdir(path, mode)
            os.chmod(path, mode)
        elif kind == stat.S_IFLNK:
            os.symlink(target, path)
        else:
            return False  # a file the sandbox made, gone or changed: cannot be put back as it was
        os.lchown(path, uid, gid)
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------- one run


def _map_ids(uid, gid):
    """Map the single uid and gid this process had to themselves, as the sandbox around us does.

    Called right after entering the run's new user namespace, where this process holds no more than
    the run will: it is made dumpable again (the zygote is not, which would leave ``/proc/self``
    owned by a root an unprivileged sandbox does not map, and these files unwritable)."""
    _prctl(PR_SET_DUMPABLE, 1)
    with open("/proc/self/uid_map", "w") as out:
        out.write(f"{uid} {uid} 1\n")
    with open("/proc/self/setgroups", "w") as out:
        out.write("deny")
    with open("/proc/self/gid_map", "w") as out:
        out.write(f"{gid} {gid} 1\n")


def _report(fd, text):
    try:
        os.write(fd, text.encode(errors="replace"))
    except OSError:
        pass


class Zygote:
    def __init__(self, sock, config):
        self.sock = sock
        self.config = config
        self.bubblewrap = config["mode"] == "bubblewrap"
        # The namespaces a cold run has besides PID (and mount, under bubblewrap): new IPC and UTS
        # ones under bubblewrap, a network one unless the network is allowed.
        self.flags = (CLONE_NEWIPC | CLONE_NEWUTS if self.bubblewrap else 0) | \
            (0 if config["network"] else CLONE_NEWNET)
        self.pythonpath_entries = len([p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
        self.private = None
        self.recorder = None
        self.fresh_proc = False
        self.nested = False  # C1 made the run's user namespace already (no CAP_SYS_ADMIN here)
        self.proc_covers = []  # read-only mounts inside /proc, put back over a run's fresh /proc

    # ----------------------------------------------------------------- start-up

    def prepare(self):
        if os.getpid() not in (1, 2):
            raise RuntimeError(f"not in a fresh PID namespace (pid {os.getpid()}): the zygote cleans up "
                               "with kill(-1) and must never run outside one")
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        _prctl(PR_SET_DUMPABLE, 0)
        self.private = PrivateMounts(self.config["private"]) if self.config["private"] else None
        self.proc_covers = [point for point, _fstype, rw in _mounts() if point.startswith("/proc/") and not rw]
        import _editseq_results  # noqa: F401  the results plugin, as a cold run's entry point imports it

        self.recorder = _warm_up(self.config)
        if self.private is not None and not self.private.restore():
            raise RuntimeError("the warm-up session changed the private mounts beyond repair")
        self.fresh_proc = self._probe()
        return {"modules": _loaded_modules(), "plugins": self.recorder.plugins,
                "assertmode": self.recorder.assertmode, "fresh_proc": self.fresh_proc,
                "private": sorted(self.private.roots) if self.private is not None else [], "pid": os.getpid()}

    def _probe(self):
        """Set up a run's namespaces once, in a child, and say whether it got a fresh ``/proc``."""
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(read)
                self.nested = self._enter_namespaces()
                inner = os.fork()
                if inner == 0:
                    fresh = self._enter_run_mounts()
                    os.write(write, b"1" if fresh else b"0")
                    os._exit(0 if os.getpid() == 1 else 3)
                os._exit(_exit_code(os.waitpid(inner, 0)[1]))
            except BaseException:
                traceback.print_exc()
            os._exit(1)
        os.close(write)
        answer = b""
        while True:
            chunk = os.read(read, 16)
            if not chunk:
                break
            answer += chunk
        os.close(read)
        status = _exit_code(os.waitpid(pid, 0)[1])
        if status != 0 or not answer:
            raise RuntimeError("cannot make a run's namespaces in here (see the zygote's log)")
        return answer == b"1"

    # ----------------------------------------------------------------- namespaces

    def _enter_namespaces(self):
        """C1: a mount and a PID namespace (C2, forked next, is PID 1 of the latter). Where this process
        may not make them (no ``CAP_SYS_ADMIN``: an unprivileged sandbox), a user namespace and all of
        the run's namespaces at once, owned by it."""
        try:
            _unshare(CLONE_NEWNS | CLONE_NEWPID)
            return False
        except OSError:
            uid, gid = os.geteuid(), os.getegid()
            _unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | self.flags)
            _map_ids(uid, gid)
            return True

    def _enter_run_mounts(self):
        """C2: private mounts, a fresh ``/proc`` (its read-only parts as in the zygote's), then a user
        namespace of the run's own with new network, IPC and UTS namespaces (the tests hold capabilities
        over those, as in a cold run, and over nothing of the zygote's: the mounts they inherit are
        locked), the loopback up; in a bubblewrap sandbox every capability dropped, as a cold run's."""
        _mount(b"none", b"/", None, MS_REC | MS_PRIVATE)
        fresh = False
        if self.bubblewrap:  # under unshare a cold run sees the host's /proc: so does a warm one
            try:
                _mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
                fresh = True
            except OSError:
                pass  # not allowed here (an unprivileged sandbox): the run sees the zygote's /proc
        if fresh:
            for point in self.proc_covers:
                if os.path.exists(point):
                    _mount(point.encode(), point.encode(), None, MS_BIND | MS_REC)
                    _mount(None, point.encode(), None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV
                           | MS_NOEXEC)
        if not self.nested:
            uid, gid = os.geteuid(), os.getegid()
            _unshare(CLONE_NEWUSER | CLONE_NEWNS | self.flags)
            _map_ids(uid, gid)
        import _editseq_results

        _editseq_results._loopback_up()
        if self.bubblewrap:
            drop_capabilities()
        return fresh

    # ----------------------------------------------------------------- serving

    def serve(self):
        while True:
            message, fds = receive(self.sock)
            if message is None or "stop" in message:
                self._kill_all()
                return
            if "run" in message and len(fds) == 3:
                self._serve_run(message["run"], fds)
            else:
                for fd in fds:
                    os.close(fd)
                send(self.sock, {"error": "unknown message"})

    def _serve_run(self, job, fds):
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            try:
                self._c1(job, fds)
            except SystemExit:
                raise  # C3 (pytest) leaving through the interpreter's normal exit, as a cold run does
            except BaseException:
                _report(fds[1], "editseq: the warm runner could not start the run:\n" + traceback.format_exc())
            os._exit(127)
        for fd in fds:
            os.close(fd)
        send(self.sock, {"started": pid})
        stopped = False
        pidfd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
        try:
            while True:
                watched = [self.sock] + ([pidfd] if pidfd is not None else [])
                ready, _, _ = select.select(watched, [], [], 0.5 if pidfd is not None else 0.01)
                if self.sock in ready:
                    message, extra = receive(self.sock)
                    for fd in extra:
                        os.close(fd)
                    if message is None:  # the runner is gone
                        self._kill_all()
                        sys.exit(0)
                    if "kill" in message:
                        stopped = True
                        self._kill(-1)
                done, status, usage = os.wait4(pid, os.WNOHANG)
                if done:
                    break
        finally:
            if pidfd is not None:
                os.close(pidfd)
        clean = self._kill_all()
        clean = (self.private.restore() if self.private is not None else True) and clean
        send(self.sock, {"exited": _exit_code(status), "cpu": usage.ru_utime + usage.ru_stime,
                         "stopped": stopped, "clean": clean})

    @staticmethod
    def _kill(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def _kill_all(self):
        """Kill every process in this PID namespace but this one (and bubblewrap's PID 1), reap them;
        False if some would not go within 5 s (the runner then retires this zygote)."""
        deadline = time.monotonic() + 5
        while True:
            self._kill(-1)
            try:
                while os.waitpid(-1, os.WNOHANG)[0]:
                    pass
            except ChildProcessError:
                if self._alone():
                    return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)

    def _alone(self):
        """No process left in the namespace but PID 1 and this one (checked where /proc is ours)."""
        if os.getpid() == 1:
            return True  # everything else would be our (reaped) descendant
        try:
            return {int(p) for p in os.listdir("/proc") if p.isdigit()} <= {1, os.getpid()}
        except OSError:
            return True

    # ----------------------------------------------------------------- the run's processes

    def _c1(self, job, fds):
        self.sock.close()
        for name, value in job["limits"].items():
            kind = _LIMITS[name]
            soft, hard = value
            _soft, current = resource.getrlimit(kind)
            if current != resource.RLIM_INFINITY:
                hard = current if hard == resource.RLIM_INFINITY else min(hard, current)
                soft = min(soft, hard) if soft != resource.RLIM_INFINITY else hard
            resource.setrlimit(kind, (soft, hard))
        self.nested = self._enter_namespaces()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            self._c2(job, fds, write)
        os.close(write)
        for fd in fds:
            os.close(fd)
        data = b""
        while True:
            try:
                chunk = os.read(read, 8)
            except InterruptedError:
                continue
            if not chunk:
                break
            data += chunk
        status = os.waitpid(pid, 0)[1]
        if len(data) >= 4:  # C2 was PID 1 for the tests' process, C3: how that one ended
            status = struct.unpack("i", data[:4])[0]
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if job["signal_exit"] == "signal":  # as unshare does: the same signal
                signal.signal(sig, signal.SIG_DFL)
                resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
                os.kill(os.getpid(), sig)
            os._exit(128 + sig)  # as bubblewrap does
        os._exit(os.WEXITSTATUS(status))

    def _c2(self, job, fds, status_pipe):
        """PID 1 of the run. Under bubblewrap it reaps and pytest runs in C3 as PID 2 (bubblewrap's own
        PID 1 does the same); under ``unshare`` pytest runs here, as PID 1, as it does there."""
        try:
            self._enter_run_mounts()
            if self.bubblewrap:
                os.setsid()  # bubblewrap's --new-session
                pid = os.fork()
        except BaseException:
            _report(fds[1], "editseq: the warm runner could not set up the run:\n" + traceback.format_exc())
            os._exit(127)
        if not self.bubblewrap:
            os.close(status_pipe)
            self._pytest_process(job, fds)
        if pid == 0:
            os.close(status_pipe)
            self._pytest_process(job, fds)
        for fd in fds:
            os.close(fd)
        while True:  # PID 1: reap everything until the tests' process ends
            try:
                done, status = os.waitpid(-1, 0)
            except InterruptedError:
                continue
            except ChildProcessError:
                os._exit(127)
            if done == pid:
                os.write(status_pipe, struct.pack("i", status))
                os._exit(0)

    def _pytest_process(self, job, fds):
        """Become the run's pytest process; leaves only through the interpreter's exit."""
        try:
            code = self._c3(job, fds)
        except SystemExit:
            raise
        except BaseException:
            traceback.print_exc()  # as the interpreter would: to the run's standard error
            code = 1
        raise SystemExit(code)

    def _c3(self, job, fds):
        stdout, stderr, results = fds
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(stdout, 1)
        os.dup2(stderr, 2)
        keep = {0, 1, 2, results}
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd not in keep:
                try:
                    os.close(fd)
                except OSError:
                    pass
        os.set_inheritable(results, True)
        _prctl(PR_SET_DUMPABLE, 1)  # as any process: its own children may inspect it
        os.chdir(job["cwd"])
        os.environ.clear()
        os.environ.update(job["env"])
        os.environ[job["results_variable"]] = str(results)  # the channel, as a cold run names it
        sys.argv[:] = job["argv"]
        sys.path[1:1 + self.pythonpath_entries] = job["pythonpath"]
        sys.path_importer_cache.clear()
        importlib.invalidate_caches()
        tempfile = sys.modules.get("tempfile")
        if tempfile is not None:
            tempfile.tempdir = None
        import pytest
        import _editseq_results

        _editseq_results._loopback_up()
        _editseq_results.CHANNEL_FD = _editseq_results._take_channel()
        check = _FidelityCheck(self.recorder.plugins, self.recorder.assertmode, _editseq_results.CHANNEL_FD)
        return pytest.main(job["args"], plugins=[check.plugin()])


def main(argv):
    sock = socket.socket(fileno=int(argv[1]))
    os.set_inheritable(sock.fileno(), False)
    message, fds = receive(sock)
    for fd in fds:
        os.close(fd)
    if not message or "config" not in message:
        return 2
    zygote = Zygote(sock, message["config"])
    try:
        info = zygote.prepare()
    except BaseException as exc:
        traceback.print_exc()
        send(sock, {"failed": f"{type(exc).__name__}: {exc}"})
        return 1
    send(sock, {"ready": info})
    zygote.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
