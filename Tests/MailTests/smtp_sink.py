"""An SMTP sink for Conveyor's mail tests, on aiosmtpd, with fault injection chosen by the recipient.

Usage: /usr/bin/python3 smtp_sink.py FOLDER [--discard] [--tls CERT KEY] [--auth USER:PASSWORD]
Listens on a free loopback port, prints "READY <port>" on stdout, and records every accepted message as
FOLDER/<n>.eml with FOLDER/<n>.json ({"mail_from", "rcpt_tos", "peer"}). FOLDER/ehlo counts the EHLO/HELO
greetings (one per connection). Faults, by the recipient's local part:
  tempfail...      451 to RCPT TO, every time
  tempfail1...     451 to RCPT TO the first time this address is seen, then accepted
  reject...        550 to RCPT TO
  refusedata...    554 to the final "." (refused after DATA)
  tempdata...      452 to the final "."
  dropafterdata... the message is recorded, then the connection is closed without a reply to the final "."
                   (the ambiguous case); only the first time for this address, accepted normally afterwards
--tls offers STARTTLS and requires it before MAIL; --auth requires AUTH PLAIN/LOGIN with that login.
With --discard (benchmarks) messages are only counted, in FOLDER/count when the sink stops.
Stops on SIGTERM or when stdin closes.
"""
import asyncio
import json
import os
import signal
import socket
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

folder = sys.argv[1]
options = sys.argv[2:]
discard = "--discard" in options
tls_files = options[options.index("--tls") + 1:options.index("--tls") + 3] if "--tls" in options else None
credentials = options[options.index("--auth") + 1] if "--auth" in options else None
os.makedirs(folder, exist_ok=True)
lock = threading.Lock()
state = {"n": 0, "ehlo": 0, "seen": set()}


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class Recorder:
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        with lock:
            state["ehlo"] += 1
            if not discard:
                write_atomic(os.path.join(folder, "ehlo"), str(state["ehlo"]).encode())
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0].lower()
        with lock:
            first = address not in state["seen"]
            state["seen"].add(address)
        if local.startswith("tempfail1"):
            if first:
                return "451 4.3.0 Try again later (first attempt)"
        elif local.startswith("tempfail"):
            return "451 4.3.0 Mailbox busy, try again later"
        elif local.startswith("reject"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        locals_ = [a.split("@")[0].lower() for a in envelope.rcpt_tos]
        if any(l.startswith("refusedata") for l in locals_):
            return "554 5.7.1 Message refused: content policy"
        if any(l.startswith("tempdata") for l in locals_):
            return "452 4.3.1 Insufficient system storage"
        with lock:
            state["n"] += 1
            n = state["n"]
            drop = any(a.split("@")[0].lower().startswith("dropafterdata") for a in envelope.rcpt_tos) \
                and not any(a in state.get("dropped", set()) for a in envelope.rcpt_tos)
            if drop:
                state.setdefault("dropped", set()).update(envelope.rcpt_tos)
        if discard:
            return "250 OK"
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos, "peer": list(session.peer),
                "tls": session.ssl is not None,
                "login": session.auth_data.login.decode() if isinstance(getattr(session, "auth_data", None), LoginPassword) else None}
        write_atomic(os.path.join(folder, "%d.eml" % n), envelope.original_content)
        write_atomic(os.path.join(folder, "%d.json" % n), json.dumps(meta).encode())
        if drop:
            server.transport.abort()
            return "250 never sent"
        return "250 2.0.0 OK queued as conveyor-test-%d" % n


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def authenticator(server, session, envelope, mechanism, auth_data):
    if not isinstance(auth_data, LoginPassword):
        return AuthResult(success=False, handled=False)
    ok = credentials is not None and "%s:%s" % (auth_data.login.decode(), auth_data.password.decode()) == credentials
    return AuthResult(success=True, auth_data=auth_data) if ok else AuthResult(success=False, handled=False)


server_options = {"decode_data": False}
if tls_files:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls_files[0], tls_files[1])
    server_options.update(tls_context=context, require_starttls=True)
if credentials:
    server_options.update(authenticator=authenticator, auth_required=True, auth_require_tls=bool(tls_files))


controller = None
for _ in range(20):
    port = free_port()
    try:
        controller = Controller(Recorder(), hostname="127.0.0.1", port=port, **server_options)
        controller.start()
        break
    except Exception:
        controller = None
if controller is None:
    print("FAILED no port", flush=True)
    sys.exit(1)

print("READY %d" % port, flush=True)
done = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: done.set())
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
done.wait()
controller.stop()
try:
    write_atomic(os.path.join(folder, "count"), str(state["n"]).encode())
    write_atomic(os.path.join(folder, "ehlo"), str(state["ehlo"]).encode())
except OSError:
    pass  # the folder is already gone
