"""Dockerfiles generated for detected runtimes. Dependency manifests are copied before the
install step, so that a code change reuses the cached dependency layer."""

from __future__ import annotations

import functools
import json
import re
import shlex

from launchbay.engine.build.runtime_detection import Detection

MANIFESTS = {"python": ["requirements.txt", "pyproject.toml", "Pipfile", "Pipfile.lock",
                        "poetry.lock", "uv.lock", "setup.py"],
             "nodejs": ["package.json", "package-lock.json", "yarn.lock", "pnpm-lock.yaml",
                        "bun.lockb"],
             "golang": ["go.mod", "go.sum"], "php": ["composer.json", "composer.lock"],
             "ruby": ["Gemfile", "Gemfile.lock"]}
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# The build-time secrets of a generated Dockerfile: one shell file of `export` lines, mounted
# for each RUN step only (BuildKit keeps it out of every layer and of the history).
SECRETS_ID = "launchbay-secrets"


def generate(d: Detection, base_image: str, present: set[str],
             builder_image: str | None = None, arguments: list[str] | None = None,
             secrets: bool = False) -> str:
    """A Dockerfile for `d` on `base_image`; `present` lists the files at the source's root.
    A static site with a build step is built on `builder_image` (its builder's base image),
    and only its publish directory is copied into the serving image. `arguments` are the
    plain build-time variables (build arguments); with `secrets`, every RUN step sources the
    `SECRETS_ID` secret first."""
    steps = functools.partial(_steps, arguments=arguments or [], secrets=secrets)
    if d.runtime_family == "static":
        publish = (d.publish_directory or ".").strip("/") or "."
        serve = [f"EXPOSE {d.port}", 'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]']
        if builder_image and (d.install_command or d.build_command):
            builder = steps(d, builder_image, present, d.builder_family or "")
            return "\n".join([builder[0] + " AS site", *builder[1:], f"FROM {base_image}",
                              f"COPY --from=site /app/{publish} /www", *serve]) + "\n"
        return "\n".join([f"FROM {base_image}", f"COPY {publish} /www", *serve]) + "\n"
    lines = steps(d, base_image, present, d.runtime_family)
    if d.port:
        lines.append(f"EXPOSE {d.port}")
    lines.append(f"CMD {json.dumps(['sh', '-c', d.start_command or 'exit 1'])}")
    return "\n".join(lines) + "\n"


def _steps(d: Detection, base_image: str, present: set[str], family: str,
           arguments: list[str], secrets: bool) -> list[str]:
    """FROM, then the install step on the manifests alone (a cached layer while they do not
    change), then the whole source and the build step."""
    run = f"RUN --mount=type=secret,id={SECRETS_ID} . /run/secrets/{SECRETS_ID} && " \
        if secrets else "RUN "
    lines = [f"FROM {base_image}", "WORKDIR /app", *(f"ARG {a}" for a in arguments),
             f"ENV PORT={d.port or 8080} PYTHONUNBUFFERED=1 NODE_ENV=production"]
    if family == "nodejs":  # the tools of the app's dependencies, as `npm run` has them
        lines.append(f"ENV PATH=/app/node_modules/.bin:${{PATH:-{DEFAULT_PATH}}}")
    manifests = [m for m in MANIFESTS.get(family, []) if m in present]
    if manifests and d.install_command:
        lines += [f"COPY {' '.join(manifests)} ./", run + d.install_command, "COPY . ."]
    else:
        lines.append("COPY . .")
        if d.install_command:
            lines.append(run + d.install_command)
    if d.build_command:
        lines.append(run + d.build_command)
    return lines


def secrets_file(secrets: dict[str, str]) -> str:
    """The `SECRETS_ID` file: an `export` line per secret a shell can name."""
    return "".join(f"export {key}={shlex.quote(value)}\n" for key, value in sorted(
        secrets.items()) if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key))


# -- the images a Dockerfile reads ------------------------------------------------------------

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*$")
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::?([-+])([^}]*))?\}"
                       r"|([A-Za-z_][A-Za-z0-9_]*))")


def images_used(text: str, build_args: dict[str, str]) -> list[str]:
    """The images a build of this Dockerfile reads besides its own stages: each `FROM`,
    `COPY --from=`, `RUN --mount=...,from=` and a `# syntax=` frontend. A name written through
    variables is resolved with the global `ARG` defaults and `build_args`; ValueError when it
    cannot be (launchbay must know every image before the build may read it)."""
    lines = text.splitlines()
    escape, found = "\\", []
    while lines and (directive := _DIRECTIVE.match(lines[0])):
        if directive[1].lower() == "syntax":
            found.append(directive[2])
        elif directive[1].lower() == "escape":
            escape = directive[2]
        lines.pop(0)
    stages: list[str] = []
    arguments = dict(build_args)
    in_stage = False
    for line in _logical(lines, escape):
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "ONBUILD":
            instruction, _, rest = rest.strip().partition(" ")
            instruction = instruction.upper()
        words = rest.split()
        if instruction == "ARG" and not in_stage and words:
            name, sep, default = words[0].partition("=")
            arguments.setdefault(name, default.strip("\"'") if sep else "")
        elif instruction == "FROM":
            in_stage = True
            names = [w for w in words if not w.startswith("--")]
            image = _resolved(names[0], arguments) if names else ""
            if image and image.lower() != "scratch" and image.lower() not in stages:
                found.append(image)
            if len(names) >= 3 and names[1].lower() == "as":
                stages.append(names[2].lower())
        elif instruction in ("COPY", "RUN"):
            for word in words:
                if not word.startswith("--"):
                    break
                source = _from(word)
                if source and not source.isdigit() and source.lower() not in stages:
                    found.append(_resolved(source, arguments))
    return found


def image_triggers(onbuild: list[str]) -> list[str]:
    """The images a base image's ONBUILD triggers read (they run in the build that uses it)."""
    return images_used("\n".join(f"ONBUILD {t}" for t in onbuild), {})


def _logical(lines: list[str], escape: str) -> list[str]:
    """Instructions, one per entry: continuation lines joined, comments and blanks dropped."""
    joined, current = [], ""
    for raw in lines:
        stripped = raw.strip()
        if not stripped or (stripped.startswith("#") and not current) or \
                (current and stripped.startswith("#")):
            continue
        if stripped.endswith(escape):
            current += stripped[: -len(escape)] + " "
            continue
        joined.append(current + stripped)
        current = ""
    if current:
        joined.append(current)
    return joined


def _from(flag: str) -> str | None:
    """The source of `--from=X`, or of `--mount=...,from=X`."""
    name, _, value = flag[2:].partition("=")
    if name == "from":
        return value
    if name == "mount":
        options = dict(part.partition("=")[::2] for part in value.split(","))
        return options.get("from") or None
    return None


def _resolved(word: str, arguments: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match[1] or match[4]
        current = arguments.get(name, "")
        if match[2] == "-":
            return current or match[3]
        if match[2] == "+":
            return match[3] if current else ""
        return current

    resolved = _VARIABLE.sub(value, word.strip("\"'"))
    if "$" in resolved or not resolved:
        raise ValueError(f"{word} names an image through a variable launchbay cannot resolve")
    return resolved
