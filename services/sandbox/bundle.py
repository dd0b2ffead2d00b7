"""The OCI bundle every warm sandbox boots from: a minimal, read-only root.

`runsc do` would expose the whole host root (read-only, with a writable overlay): the
repository, /root, every secret on the disk. Instead the sandbox gets an empty root
directory with, bind-mounted read-only, only what executions need:

- the interpreter (binary, libpython, its standard library; its own site-packages hidden);
- the packages math code imports (numpy, sympy, mpmath), nothing else of the host venv;
- the system's shared libraries (the dynamic loader, libc, libm, libz, libffi...);
- the fork server (`forkserver.py`), run as the container's only process.

Plus /proc, gVisor's own /dev, an empty read-only /tmp, and an in-memory /scratch for
per-execution directories (executions get TMPDIR there).
No host environment variable is passed; the network is `none` (set on the runsc command).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

FORKSERVER = Path(__file__).with_name("forkserver.py")
# Where things appear inside the sandbox.
PY_PREFIX = "/opt/python"
SITE = "/opt/site-packages"
PYVER = f"python{sys.version_info.major}.{sys.version_info.minor}"
SYSTEM_LIBS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib/aarch64-linux-gnu")
# Capabilities the fork server needs: drop to the unprivileged uid, kill and reap its
# processes, remove what they wrote, and give each execution its own IPC namespace
# (unshare(CLONE_NEWIPC) needs CAP_SYS_ADMIN; gVisor's, not the host's). Executions
# themselves run without any.
CAPABILITIES = [
    "CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_SYS_ADMIN",
]


@dataclass(frozen=True)
class BundleSpec:
    """What goes into the sandbox root; the defaults take it from the running interpreter."""

    python_prefix: Path = Path(sys.base_prefix)
    packages: tuple[str, ...] = ("numpy", "sympy", "mpmath")
    preload: tuple[str, ...] = ("numpy", "sympy")
    scratch_mb: int = 512


def package_dirs(names: tuple[str, ...]) -> list[Path]:
    """Host directories of the named packages (and numpy's bundled BLAS, `numpy.libs`)."""
    site = Path(sysconfig.get_paths()["purelib"])
    found = []
    for name in names:
        for candidate in (site / name, site / f"{name}.libs"):
            if candidate.is_dir():
                found.append(candidate)
    return found


def _bind(source: Path | str, destination: str) -> dict:
    return {"destination": destination, "type": "bind", "source": str(source), "options": ["rbind", "ro"]}


def oci_config(spec: BundleSpec) -> dict:
    prefix = spec.python_prefix
    stdlib = prefix / "lib" / PYVER
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
        {
            "destination": "/scratch",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=711", f"size={spec.scratch_mb}m"],
        },
        # gVisor would otherwise give /tmp a writable tmpfs shared by every execution.
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["ro", "size=1m"]},
        _bind(prefix / "bin" / PYVER, f"{PY_PREFIX}/bin/{PYVER}"),
        _bind(stdlib, f"{PY_PREFIX}/lib/{PYVER}"),
        # The interpreter's own site-packages may hold anything; an empty tmpfs hides it.
        {
            "destination": f"{PY_PREFIX}/lib/{PYVER}/site-packages",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["ro", "size=1m"],
        },
        _bind(FORKSERVER, "/opt/start/forkserver.py"),
    ]
    mounts += [_bind(lib, f"{PY_PREFIX}/lib/{lib.name}") for lib in prefix.glob("lib/libpython*.so*")]
    mounts += [_bind(path, path) for path in SYSTEM_LIBS if os.path.isdir(path)]
    mounts += [_bind(pkg, f"{SITE}/{pkg.name}") for pkg in package_dirs(spec.packages)]
    env = [
        "PATH=/opt/python/bin:/usr/bin:/bin",
        f"PYTHONHOME={PY_PREFIX}",
        f"PYTHONPATH={SITE}",
        f"LD_LIBRARY_PATH={PY_PREFIX}/lib",
        "PYTHONDONTWRITEBYTECODE=1",
        "OPENBLAS_NUM_THREADS=1",
        "LANG=C.UTF-8",
        f"START_PRELOAD={','.join(spec.preload)}",
    ]
    caps = list(CAPABILITIES)
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": [f"{PY_PREFIX}/bin/{PYVER}", "-S", "/opt/start/forkserver.py"],
            "env": env,
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "sandbox",
        "mounts": mounts,
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
        },
    }


def _mount_points(rootfs: Path, config: dict) -> None:
    """Create every mount point (a file for file binds) in the otherwise empty root."""
    for mount in config["mounts"]:
        target = rootfs / mount["destination"].lstrip("/")
        if mount["type"] == "bind" and Path(mount["source"]).is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
        else:
            target.mkdir(parents=True, exist_ok=True)
    bindir = rootfs / PY_PREFIX.lstrip("/") / "bin"
    for alias in ("python3", "python"):
        if not (bindir / alias).is_symlink():
            (bindir / alias).symlink_to(PYVER)
    # The dynamic loader is looked up at /lib64 and /lib, symlinks into /usr on the host.
    for link, target in (("lib", "usr/lib"), ("lib64", "usr/lib64")):
        if not (rootfs / link).is_symlink():
            (rootfs / link).symlink_to(target)
    etc = rootfs / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "passwd").write_text("root:x:0:0:root:/:/nonexistent\nnobody:x:65534:65534:nobody:/:/nonexistent\n")
    (etc / "group").write_text("root:x:0:\nnogroup:x:65534:\n")


def build_bundle(base_dir: Path, spec: BundleSpec | None = None) -> Path:
    """Write the bundle (config.json + rootfs of mount points) under base_dir; returns its path.

    The directory name is a hash of the config, so a changed spec never reuses a stale root.
    """
    spec = spec or BundleSpec()
    config = oci_config(spec)
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    bundle = base_dir / f"bundle-{digest}"
    if (bundle / "config.json").exists():
        return bundle
    staging = base_dir / f".staging-{digest}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "rootfs").mkdir(parents=True)
    _mount_points(staging / "rootfs", config)
    (staging / "config.json").write_text(json.dumps(config, indent=2))
    try:
        staging.rename(bundle)
    except OSError:  # another process built the same bundle first
        shutil.rmtree(staging, ignore_errors=True)
    return bundle
