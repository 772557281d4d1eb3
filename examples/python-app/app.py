"""A tiny web app for `launchbay deploy ./examples/python-app`: no Dockerfile, no
dependencies; launchbay detects Python and starts `python app.py` with PORT set."""

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"hello from {os.environ.get('HOSTNAME', 'launchbay')}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8000"))), Hello).serve_forever()
