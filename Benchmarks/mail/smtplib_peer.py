"""Peer for the mail benchmark: Python's smtplib sending MESSAGES prebuilt messages over CONNECTIONS kept-alive
connections (threads), to show the sink's own ceiling. Usage: smtplib_peer.py HOST PORT MESSAGES CONNECTIONS"""
import smtplib
import sys
import threading
import time
from email.message import EmailMessage

host, port, count, conns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])


def worker(lo, hi):
    with smtplib.SMTP(host, port) as s:
        for i in range(lo, hi):
            m = EmailMessage()
            m["From"] = "bench@example.com"
            m["To"] = "user%d@example.net" % i
            m["Subject"] = "Welcome to Acme, User %d!" % i
            m.set_content("Hi User %d,\n\nWelcome to Acme. Your account is ready.\n" % i)
            m.add_alternative("<p>Hi User %d,</p><p>Welcome to Acme.</p>" % i, subtype="html")
            s.send_message(m)


per = (count + conns - 1) // conns
start = time.monotonic()
threads = [threading.Thread(target=worker, args=(w * per, min(count, (w + 1) * per))) for w in range(conns)]
for t in threads: t.start()
for t in threads: t.join()
elapsed = time.monotonic() - start
print("%d %.3f %.1f" % (count, elapsed, count / elapsed))
