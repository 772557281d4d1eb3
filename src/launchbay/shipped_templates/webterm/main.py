"""webterm: a shell in the browser, the standard library only (so it builds on any Python base
image, offline). One shell runs in a pseudo-terminal; the page sends keystrokes to `POST /input`
and long-polls `GET /output?since=N`. The shell is started again when it exits."""

import json
import os
import pty
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

KEEP = 1 << 20  # bytes of output kept for a page that (re)connects
SHELL = shutil.which("bash") or "/bin/sh"


class Terminal:
    def __init__(self) -> None:
        self.out = bytearray()
        self.start = 0  # the offset of out[0] in everything the shell wrote
        self.changed = threading.Condition()
        self._spawn()
        threading.Thread(target=self._pump, daemon=True).start()

    def _spawn(self) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.chdir(os.environ.get("HOME", "/"))
            os.execvpe(SHELL, [SHELL, "-i"], {**os.environ, "TERM": "dumb", "PS1": r"\w \$ "})

    def _pump(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                data = b""
            if not data:  # the shell exited: start another
                os.waitpid(self.pid, 0)
                os.close(self.fd)
                data = b"\r\n[the shell exited; a new one started]\r\n"
                self._spawn()
            with self.changed:
                self.out += data
                if len(self.out) > KEEP:
                    drop = len(self.out) - KEEP
                    del self.out[:drop]
                    self.start += drop
                self.changed.notify_all()

    def read(self, since: int, wait: float = 20) -> tuple[bytes, int]:
        with self.changed:
            self.changed.wait_for(lambda: self.start + len(self.out) > since, wait)
            end = self.start + len(self.out)
            return bytes(self.out[max(since - self.start, 0):]), end

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)


PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>webterm</title>
<style>body{margin:0;background:#111;color:#ddd}
pre{margin:0;padding:.5rem;min-height:100vh;box-sizing:border-box;white-space:pre-wrap;
word-break:break-all;font:14px/1.3 monospace;outline:none}</style></head><body>
<pre id="screen" tabindex="0" role="log" aria-label="Terminal: type to use the shell"></pre>
<script>
const screen = document.getElementById("screen"), text = [];
const KEYS = {Enter: "\\r", Backspace: "\\x7f", Tab: "\\t", Escape: "\\x1b",
  ArrowUp: "\\x1b[A", ArrowDown: "\\x1b[B", ArrowRight: "\\x1b[C", ArrowLeft: "\\x1b[D"};
function show(data) {
  data = data.replace(/\\x1b\\[[0-9;?]*[A-Za-z]|\\x1b\\][^\\x07]*\\x07|\\x07/g, "");
  for (const c of data) {
    if (c === "\\b") text.pop(); else if (c !== "\\r") text.push(c);
  }
  screen.textContent = text.join("");
  window.scrollTo(0, document.body.scrollHeight);
}
function send(data) { fetch("input", {method: "POST", body: data}); }
screen.addEventListener("keydown", e => {
  let data = KEYS[e.key];
  if (e.ctrlKey && e.key.length === 1) {
    data = String.fromCharCode(e.key.toUpperCase().charCodeAt(0) - 64);
  } else if (!data && e.key.length === 1 && !e.metaKey) data = e.key;
  if (data) { e.preventDefault(); send(data); }
});
screen.addEventListener("paste", e => {
  e.preventDefault();
  send(e.clipboardData.getData("text"));
});
(async function poll(since) {
  for (;;) {
    try {
      const r = await (await fetch("output?since=" + since)).json();
      show(r.data); since = r.next;
    } catch (err) { await new Promise(ok => setTimeout(ok, 1000)); }
  }
})(0);
screen.focus();
</script></body></html>
""".encode()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/":
            self._answer(200, "text/html; charset=utf-8", PAGE)
        elif url.path == "/output":
            since = parse_qs(url.query).get("since", ["0"])[0]
            data, end = TERMINAL.read(int(since) if since.isdigit() else 0)
            body = {"data": data.decode("utf-8", "replace"), "next": end}
            self._answer(200, "application/json", json.dumps(body).encode())
        else:
            self._answer(404, "text/plain", b"not found\n")

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/input":
            return self._answer(404, "text/plain", b"not found\n")
        length = int(self.headers.get("Content-Length") or 0)
        TERMINAL.write(self.rfile.read(min(length, 65536)))
        self._answer(204, "text/plain", b"")

    def _answer(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        if not self.path.startswith("/output"):  # the page's long polls are not news
            print(f"{self.client_address[0]} {format % args}", flush=True)


TERMINAL = Terminal()
if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8080"))
    print(f"webterm: {SHELL} on port {port}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
