# Sends N sequential GET /health requests on one keep-alive connection and
# reads each answer (by Content-Length). Used by bench/instructions.sh.
# Usage: keepalive_client.py PORT N
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
req = b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n"
buf = b""
for i in range(n):
    s.sendall(req)
    while True:
        idx = buf.find(b"\r\n\r\n")
        if idx >= 0:
            head = buf[:idx].lower()
            cl = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
            if len(buf) >= idx + 4 + cl:
                buf = buf[idx + 4 + cl:]
                break
        d = s.recv(65536)
        if not d: raise SystemExit("closed")
        buf += d
s.close()
