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
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def generate(d: Detection, base_image: str, present: set[str],
             builder_image: str | None = None) -> str:
    """A Dockerfile for `d` on `base_image`; `present` lists the files at the source's root.
    A static site with a build step is built on `builder_image` (its builder's base image),
    and only its publish directory is copied into the serving image."""
    if d.runtime_family == "static":
        publish = (d.publish_directory or ".").strip("/") or "."
        serve = [f"EXPOSE {d.port}", 'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]']
        if builder_image and (d.install_command or d.build_command):
            builder = _steps(d, builder_image, present, d.builder_family or "")
            return "\n".join([builder[0] + " AS site", *builder[1:], f"FROM {base_image}",
                              f"COPY --from=site /app/{publish} /www", *serve]) + "\n"
        return "\n".join([f"FROM {base_image}", f"COPY {publish} /www", *serve]) + "\n"
    lines = _steps(d, base_image, present, d.runtime_family)
    if d.port:
        lines.append(f"EXPOSE {d.port}")
    lines.append(f"CMD {json.dumps(['sh', '-c', d.start_command or 'exit 1'])}")
    return "\n".join(lines) + "\n"


def _steps(d: Detection, base_image: str, present: set[str], family: str) -> list[str]:
    """FROM, then the install step on the manifests alone (a cached layer while they do not
    change), then the whole source and the build step."""
    lines = [f"FROM {base_image}", "WORKDIR /app",
             f"ENV PORT={d.port or 8080} PYTHONUNBUFFERED=1 NODE_ENV=production"]
    if family == "nodejs":  # the tools of the app's dependencies, as `npm run` has them
        lines.append(f"ENV PATH=/app/node_modules/.bin:${{PATH:-{DEFAULT_PATH}}}")
    manifests = [m for m in MANIFESTS.get(family, []) if m in present]
    if manifests and d.install_command:
        lines += [f"COPY {' '.join(manifests)} ./", f"RUN {d.install_command}", "COPY . ."]
    else:
        lines.append("COPY . .")
        if d.install_command:
            lines.append(f"RUN {d.install_command}")
    if d.build_command:
        lines.append(f"RUN {d.build_command}")
    return lines
