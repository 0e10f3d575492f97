"""A real agt-server for the Python tests: a child process on 127.0.0.1 port 0
with a fresh SQLite file in a temp dir, as tests/server/e2e_util.h starts it.

AGT_SERVER_BINARY names the executable (tests/python/CMakeLists.txt sets it).
Every wait is bounded, so a broken server fails a test instead of hanging it.
"""

import hashlib
import os
import select
import shutil
import subprocess
import tempfile
import time


def token_line(token, role, tenant, label=""):
    """A tokens-file line: SHA-256 hex of the token, role, tenant, label."""
    digest = hashlib.sha256(token.encode()).hexdigest()
    return f"{digest} {role} {tenant}" + (f" {label}" if label else "") + "\n"


class AgtServer:
    """agt-server on a fresh database. Use as a context manager; .target is host:port."""

    def __init__(self, extra_args=(), tokens=None):
        binary = os.environ.get("AGT_SERVER_BINARY")
        if not binary or not os.path.exists(binary):
            raise RuntimeError(f"AGT_SERVER_BINARY={binary!r} is not an agt-server executable")
        self.dir = tempfile.mkdtemp(prefix="agt_py_")
        args = [binary, "--listen", "127.0.0.1:0", "--db", os.path.join(self.dir, "agt.db"),
                "--threads-per-job", "1", *extra_args]
        if tokens:
            path = os.path.join(self.dir, "tokens")
            with open(path, "w") as f:
                f.writelines(token_line(*t) for t in tokens)
            args += ["--tokens", path]
        self._stderr_path = os.path.join(self.dir, "server.err")
        self._stderr = open(self._stderr_path, "wb")
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._stderr,
                                        stdin=subprocess.DEVNULL)
        self.target = self._wait_listening(30.0)

    def _wait_listening(self, timeout):
        deadline = time.monotonic() + timeout
        buffer = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.1)
            if ready:
                data = os.read(self.process.stdout.fileno(), 4096)
                if not data:
                    break
                buffer += data
                for line in buffer.decode(errors="replace").splitlines():
                    if line.startswith("listening on "):
                        return line[len("listening on "):].strip()
            if self.process.poll() is not None:
                break
        self.close()
        raise RuntimeError(f"agt-server did not start; stderr:\n{self.stderr()}")

    def stderr(self):
        with open(self._stderr_path, errors="replace") as f:
            return f.read()

    def close(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()
        self._stderr.close()
        if not os.environ.get("AGT_KEEP_TEST_DIRS"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
