"""install.sh at a terminal: answers its prompts through a pseudo-terminal as a person would (a too-short
password, a mismatched confirmation, then a good one) and checks that no typed password was echoed back.

Usage: interactive.py INSTALL_SH BINARY PREFIX PORT USERNAME PASSWORD; exits 0 when the install finished and
nothing typed in a password prompt appears in the transcript (written to PREFIX.transcript).
"""
import os
import pty
import select
import sys
import time

install_sh, binary, prefix, port, username, password = sys.argv[1:7]
env = {k: v for k, v in os.environ.items() if k not in ("ADMIN_USERNAME", "ADMIN_PASSWORD", "ENCRYPTION_KEY")}
pid, fd = pty.fork()
if pid == 0:
    os.execvpe("bash", ["bash", install_sh, "--native", "--binary", binary, "--prefix", prefix, "--port", port], env)

transcript = b""


def read_until(text, seconds=30):
    global transcript
    deadline = time.time() + seconds
    while text.encode() not in transcript:
        if time.time() > deadline:
            sys.exit(f"timed out waiting for {text!r}; transcript:\n{transcript.decode(errors='replace')}")
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                sys.exit(f"install.sh ended before {text!r}; transcript:\n{transcript.decode(errors='replace')}")
            transcript += chunk


read_until("Admin username")
os.write(fd, username.encode() + b"\n")
read_until("Admin password")
os.write(fd, b"tiny7\n")
read_until("too short")
os.write(fd, b"first-" + password.encode() + b"\n")
read_until("Again")
os.write(fd, b"second-" + password.encode() + b"\n")
read_until("differ")
os.write(fd, password.encode() + b"\n")
read_until("Again: ")
os.write(fd, password.encode() + b"\n")
read_until("Manage it", 90)
while True:
    try:
        chunk = os.read(fd, 65536)
    except OSError:
        break
    if not chunk:
        break
    transcript += chunk
_, status = os.waitpid(pid, 0)
with open(prefix + ".transcript", "wb") as f:
    f.write(transcript)
text = transcript.decode(errors="replace")
leaked = [p for p in ("tiny7", password) if p in text]
if leaked:
    sys.exit(f"typed passwords were echoed: {leaked}\n{text}")
if os.waitstatus_to_exitcode(status) != 0:
    sys.exit(f"install.sh exited {os.waitstatus_to_exitcode(status)}\n{text}")
if f"Admin user: {username}" not in text or "the one you gave" not in text:
    sys.exit(f"the summary does not name the admin:\n{text}")
print("interactive install ok")
