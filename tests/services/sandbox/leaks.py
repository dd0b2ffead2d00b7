"""Programs for the "one run never sees the run before it" tests (issue 14).

Run A is given a seed and leaves a marker derived from it somewhere (its code, a
module-level variable it prints, SysV or POSIX IPC, /dev/shm and /tmp, its environment).
Run B, on the same warm sandbox, searches everything it can reach for that marker: gc
objects, the frames it was called from, every readable byte of its own memory, the IPC
objects A made, the shared writable directories and its environment. It prints only the
names of the places where it found the marker, never the marker itself.

B's own code must not hold the marker, or it would find itself: it holds each form of the
marker (the text, and the three base64 forms a reply frame would carry) as two halves and
only ever compares the bytes that follow a first half with the second half.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import textwrap

# The hostile catalogue owns reading a run's number; the leak tests read it as well.
from startctl.bench.hostile import run_number as run_number

# The SysV key and POSIX queue name A uses; B looks them up directly as well as by id.
IPC_KEY_BASE = 0x5EED0000


def new_seed() -> str:
    return secrets.token_hex(8)


def marker(seed: str) -> str:
    return "leak-" + hashlib.sha256(seed.encode()).hexdigest()[:32]


def ipc_key(seed: str) -> int:
    return IPC_KEY_BASE + int(seed[:4], 16)


def _marker_expression(seed: str) -> str:
    """Python that computes the marker at run time, so A's code never holds it."""
    return f"'leak-' + __import__('hashlib').sha256({seed!r}.encode()).hexdigest()[:32]"


def leave_in_code(seed: str) -> str:
    return f"kept = {marker(seed)!r}\nimport os\nprint(os.getcwd())\n"


def leave_in_module_variable_and_output(seed: str) -> str:
    return f"KEPT = {_marker_expression(seed)}\nprint(KEPT)\nimport os\nprint(os.getcwd())\n"


def leave_in_sysv_ipc(seed: str) -> str:
    """A shared-memory segment and a message queue holding the marker, and a semaphore set."""
    return textwrap.dedent(f"""\
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        libc.shmat.restype = ctypes.c_void_p
        kept = ({_marker_expression(seed)}).encode()
        segment = libc.shmget({ipc_key(seed)}, 4096, 0o1000 | 0o666)
        address = libc.shmat(segment, None, 0)
        ctypes.memmove(address, kept, len(kept))
        libc.shmdt(ctypes.c_void_p(address))
        queue = libc.msgget({ipc_key(seed)}, 0o1000 | 0o666)
        message = ctypes.create_string_buffer(ctypes.sizeof(ctypes.c_long) + len(kept))
        ctypes.c_long.from_buffer(message).value = 1
        ctypes.memmove(ctypes.addressof(message) + ctypes.sizeof(ctypes.c_long), kept, len(kept))
        sent = libc.msgsnd(queue, message, len(kept), 0)
        semaphores = libc.semget({ipc_key(seed)}, 1, 0o1000 | 0o666)
        print('made', segment >= 0 and address not in (None, 2 ** 64 - 1), sent == 0, semaphores >= 0)
        print(os.getcwd())
        """)


def leave_in_posix_ipc_and_files(seed: str) -> str:
    """A POSIX message queue named after the seed (holding the marker where gVisor has mq_send),
    and /dev/shm (POSIX shm) and /tmp files holding it, where those are writable."""
    return textwrap.dedent(f"""\
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        kept = ({_marker_expression(seed)}).encode()
        queue = libc.mq_open(b'/q{seed}', os.O_CREAT | os.O_RDWR, 0o666, None)
        libc.mq_send(queue, kept, len(kept), 0)  # ENOSYS on some gVisor versions: the name is enough
        print('made', queue >= 0)
        for directory in ('/dev/shm', '/tmp', '/var/tmp'):
            try:
                with open(os.path.join(directory, 'f{seed}'), 'wb') as left:
                    left.write(kept)
                os.chmod(os.path.join(directory, 'f{seed}'), 0o666)
                print('wrote', directory)
            except OSError as exc:
                print('refused', directory, type(exc).__name__)
        print(os.getcwd())
        """)


def leave_in_environment(seed: str) -> str:
    return textwrap.dedent(f"""\
        import os
        os.environ['KEPT'] = {_marker_expression(seed)}
        os.putenv('KEPT_TOO', os.environ['KEPT'])
        print(os.getcwd())
        """)


def _needles(seed: str) -> list[tuple[bytes, bytes]]:
    """The marker as text and in its three base64 alignments, each split in two halves."""
    text = marker(seed).encode()
    forms = [text]
    for shift in range(3):
        whole = (len(text) - shift) // 3 * 3
        forms.append(base64.b64encode(text[shift:shift + whole]))
    return [(form[: len(form) // 2], form[len(form) // 2 :]) for form in forms]


def search_everywhere(seed: str) -> str:
    """Run B: look for A's marker wherever one run could leave something for the next."""
    return textwrap.dedent(f"""\
        import ctypes, gc, os, sys
        NEEDLES = {_needles(seed)!r}
        KEY, QUEUE, FILE = {ipc_key(seed)}, b'/q{seed}', 'f{seed}'
        libc = ctypes.CDLL(None, use_errno=True)
        libc.shmat.restype = ctypes.c_void_p
        found = set()

        def holds(data):
            if isinstance(data, str):
                data = data.encode('utf-8', 'surrogatepass')
            if not isinstance(data, (bytes, bytearray)):
                return False
            for first, second in NEEDLES:
                start = data.find(first)
                while start != -1:
                    if data[start + len(first):start + len(first) + len(second)] == second:
                        return True
                    start = data.find(first, start + 1)
            return False

        def holds_within(value, depth=3):
            if holds(value):
                return True
            if depth and isinstance(value, dict):
                return any(holds_within(v, depth - 1) for item in value.items() for v in item)
            if depth and isinstance(value, (list, tuple, set, frozenset)):
                return any(holds_within(v, depth - 1) for v in value)
            return False

        for obj in gc.get_objects():
            if any(holds(ref) for ref in gc.get_referents(obj)):
                found.add('gc objects')
        frame = sys._getframe().f_back
        while frame is not None:
            for value in (frame.f_locals, frame.f_globals, frame.f_code.co_consts):
                if holds_within(value):
                    found.add('frames')
            frame = frame.f_back

        # Every readable byte of this process (the uid drop made it undumpable; undo that).
        libc.prctl(4, 1, 0, 0, 0)
        scanned = 0
        with open('/proc/self/maps') as maps, open('/proc/self/mem', 'rb', buffering=0) as mem:
            for line in maps.read().splitlines():
                span, perms = line.split()[:2]
                low, high = (int(x, 16) for x in span.split('-'))
                if not perms.startswith('r') or high > 1 << 47:
                    continue
                tail = b''
                for at in range(low, high, 1 << 22):
                    try:
                        mem.seek(at)
                        chunk = mem.read(min(1 << 22, high - at))
                    except OSError:
                        break
                    scanned += len(chunk)
                    if holds(tail + chunk):
                        found.add('memory')
                    tail = chunk[-128:]

        # SysV objects, by A's key and by id (ids are small and sequential).
        buffer = ctypes.create_string_buffer(4096)
        segments = {{libc.shmget(KEY, 0, 0)}} | set(range(64))
        for segment in segments:
            address = libc.shmat(segment, None, 0o10000) if segment >= 0 else None
            if address not in (None, 2 ** 64 - 1):
                found.add('sysv shm' if holds(ctypes.string_at(address, 4096)) else 'sysv shm (other)')
        for queue in {{libc.msgget(KEY, 0)}} | set(range(64)):
            if queue >= 0 and libc.msgrcv(queue, buffer, 4000, 0, 0o4000 | 0o10000) >= 0:
                found.add('sysv msg' if holds(buffer.raw) else 'sysv msg (other)')
        if libc.semget(KEY, 0, 0) >= 0:
            found.add('sysv sem')
        queue = libc.mq_open(QUEUE, os.O_RDONLY | os.O_NONBLOCK)
        if queue >= 0:
            found.add('posix mq')
        # Where A writes: the top of each shared writable directory (in a pod test /tmp is
        # the host's, too big to read whole).
        for top in ('/dev/shm', '/tmp', '/var/tmp'):
            try:
                entries = list(os.scandir(top))
            except OSError:
                continue
            for entry in entries:
                try:
                    if entry.name == FILE or (
                        entry.is_file(follow_symlinks=False) and entry.stat().st_uid != 0
                        and holds(open(entry.path, 'rb').read(1 << 20))
                    ):
                        found.add(top)
                except OSError:
                    pass
        if any(holds(value) for value in os.environ.values()):
            found.add('environment')
        try:
            if holds(open('/proc/self/environ', 'rb').read()):
                found.add('environment')
        except OSError:
            pass
        print('scanned', scanned > 1 << 20)
        print('found', sorted(found))
        print(os.getcwd())
        """)
