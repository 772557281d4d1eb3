"""Dockerfiles generated for detected runtimes. Dependency manifests are copied before the
install step, so that a code change reuses the cached dependency layer."""

from __future__ import annotations

import json

from launchbay.runtime_detection import Detection

MANIFESTS = {"python": ["requirements.txt", "pyproject.toml", "Pipfile", "Pipfile.lock",
                        "poetry.lock", "uv.lock", "setup.py"],
             "nodejs": ["package.json", "package-lock.json", "yarn.lock", "pnpm-lock.yaml",
                        "bun.lockb"],
             "golang": ["go.mod", "go.sum"], "php": ["composer.json", "composer.lock"],
             "ruby": ["Gemfile", "Gemfile.lock"]}


def generate(d: Detection, base_image: str, present: set[str]) -> str:
    """A Dockerfile for `d` on `base_image`; `present` lists the files at the source's root."""
    lines = [f"FROM {base_image}", "WORKDIR /app",
             f"ENV PORT={d.port or 8080} PYTHONUNBUFFERED=1 NODE_ENV=production"]
    if d.runtime_family == "static":
        publish = (d.publish_directory or ".").strip("/") or "."
        if d.build_command or d.install_command:
            return "\n".join([*lines, "COPY . .",
                              *(f"RUN {c}" for c in (d.install_command, d.build_command) if c),
                              "RUN mkdir -p /www && cp -r " + publish + "/. /www/",
                              f"EXPOSE {d.port}",
                              'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]']) + "\n"
        return "\n".join([f"FROM {base_image}", f"COPY {publish} /www", f"EXPOSE {d.port}",
                          'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]']) + "\n"
    manifests = [m for m in MANIFESTS.get(d.runtime_family, []) if m in present]
    if manifests and d.install_command:
        lines.append(f"COPY {' '.join(manifests)} ./")
        lines.append(f"RUN {d.install_command}")
        lines.append("COPY . .")
    else:
        lines.append("COPY . .")
        if d.install_command:
            lines.append(f"RUN {d.install_command}")
    if d.build_command:
        lines.append(f"RUN {d.build_command}")
    if d.port:
        lines.append(f"EXPOSE {d.port}")
    lines.append(f"CMD {json.dumps(['sh', '-c', d.start_command or 'exit 1'])}")
    return "\n".join(lines) + "\n"
