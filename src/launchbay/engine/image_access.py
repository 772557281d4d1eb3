"""Which images of a server's engine an organization may run, or build from.

An engine holds every tenant's images: the ones launchbay built for them and the ones pulled
for them with credentials the others may not have. Docker itself would run any of them for
anyone who names it, so launchbay decides, by the image's id (never by a name, which another
pull can move):

- `lb/...` is launchbay's own namespace: an image built for a resource is tagged
  `lb/<organization>/<resource>:<deployment>`, usable only by that organization (its
  `launchbay.organization` label; the resource id in its name for images built before they
  were labelled). It is never pulled.
- An operator's shared images (`LAUNCHBAY_SHARED_IMAGES` patterns, and the builders' base
  images) are usable by everyone, as they are on the engine (pulled when absent).
- Any other image is the registry's to give: usable when this organization was granted that
  very image id (it pulled it, or built it); otherwise it is pulled now, for this organization,
  and the registry decides. A pull that fails refuses the image, whether or not somebody
  else's copy is on the engine: the answer is the same either way, so it tells nothing.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from launchbay.engine.runtime import Runtime, RuntimeFailure, RuntimeRefused
from launchbay.store.models import ImageGrant, Resource

BUILT = "lb/"
_HUB = re.compile(r"^(?:docker\.io|index\.docker\.io|registry-1\.docker\.io)/")
_BUILT_RESOURCE = re.compile(r"^lb/(?:org_[0-9a-f]+/)?(res_[0-9a-f]+)(?::|-|$)")


def built_repository(organization_id: str, resource_id: str) -> str:
    """Where a resource's built images are tagged: its organization's part of `lb/`."""
    return f"{BUILT}{organization_id}/{resource_id}"


class ImageRefused(Exception):
    """The organization may not use the image; the message says what to do."""

    code = "image-not-found"

    def __init__(self, reference: str, why: str, fix: str | None = None):
        super().__init__(f"image {reference} is not available: {why}" +
                         (f"; {fix}" if fix else ""))
        self.reference, self.why, self.message = reference, why, str(self)


def normalized(reference: str) -> str:
    """The reference as the engine stores it: Docker Hub's host and `library/` dropped, a
    missing tag made `latest`."""
    ref = _HUB.sub("", reference.strip())
    ref = ref.removeprefix("library/")
    name = ref.split("@", 1)[0]
    if "@" not in ref and ":" not in name.rsplit("/", 1)[-1]:
        ref += ":latest"
    return ref


class ImageAccess:
    """Decides and records which organization may use which image of an engine."""

    def __init__(self, sessions: sessionmaker, shared: Iterable[str] = ()):
        self.sessions = sessions
        self.shared = [normalized(p) if "*" not in p else p for p in shared]

    def is_shared(self, reference: str) -> bool:
        ref = normalized(reference)
        return any(fnmatch.fnmatchcase(ref, pattern) for pattern in self.shared)

    def admit(self, docker: Runtime, server_id: str, organization_id: str,
              reference: str, log: Callable[[str], None] = lambda _: None,
              origin: tuple[Runtime, str] | None = None) -> str:
        """The id of the image `reference` names, if the organization may use it (pulled for
        it when that is how it may); ImageRefused otherwise. With an `origin` (another
        server's runtime and id: the control plane's own), an image the server lacks and the
        organization may use there is copied from it first, so no registry is needed."""
        ref = normalized(reference)
        if origin is not None and docker.image_id(ref) is None:
            self._carry(docker, server_id, organization_id, ref, origin, log)
        if ref.startswith(BUILT):
            return self._built(docker, organization_id, ref)
        local = docker.image_id(ref)
        if self.is_shared(ref):
            return local or self._pull(docker, ref, log)
        if local is not None and self._granted(organization_id, server_id, local):
            return local
        image_id = self._pull(docker, ref, log)
        self.grant(organization_id, server_id, image_id, ref)
        return image_id

    def _carry(self, docker: Runtime, server_id: str, organization_id: str, ref: str,
               origin: tuple[Runtime, str], log: Callable[[str], None]) -> None:
        source, source_id = origin
        image_id = source.image_id(ref)
        if image_id is None:
            return
        if ref.startswith(BUILT):
            try:
                self._built(source, organization_id, ref)
            except ImageRefused:
                return
        elif not self.is_shared(ref) and not self._granted(organization_id, source_id,
                                                           image_id):
            return
        log(f"copying {ref} to the server (docker save | docker load)")
        docker.load(source.export(ref))
        if not ref.startswith(BUILT) and not self.is_shared(ref):
            self.grant(organization_id, server_id, image_id, ref)

    def grant(self, organization_id: str, server_id: str, image_id: str, reference: str) -> None:
        """Records that the organization may use this image (it pulled or built it)."""
        with self.sessions() as db:
            if db.get(ImageGrant, (organization_id, server_id, image_id)) is None:
                db.add(ImageGrant(organization_id=organization_id, server_id=server_id,
                                  image_id=image_id, reference=reference[:600]))
                try:
                    db.commit()
                except IntegrityError:  # granted concurrently
                    db.rollback()

    def _granted(self, organization_id: str, server_id: str, image_id: str) -> bool:
        with self.sessions() as db:
            return db.get(ImageGrant, (organization_id, server_id, image_id)) is not None

    def _built(self, docker: Runtime, organization_id: str, ref: str) -> str:
        try:
            image = docker.image(ref)
        except RuntimeFailure:
            image = None
        if image is None:
            raise ImageRefused(ref, "no such image was built for this organization")
        owner = image.labels.get("launchbay.organization")
        if owner is None:  # built before images were labelled: its resource tells
            found = _BUILT_RESOURCE.match(ref)
            with self.sessions() as db:
                resource = db.get(Resource, found[1]) if found else None
            owner = resource.organization_id if resource else None
        if owner != organization_id:
            raise ImageRefused(ref, "no such image was built for this organization")
        return image.id

    def _pull(self, docker: Runtime, ref: str, log: Callable[[str], None]) -> str:
        log(f"pulling {ref}")
        try:
            return docker.pull(ref)
        except (RuntimeRefused, RuntimeFailure) as exc:
            why = (exc.explanation if isinstance(exc, RuntimeRefused) and exc.explanation
                   else str(exc))
            raise ImageRefused(ref, f"the pull failed ({why})", "check the name and tag, or "
                               "ask an operator to share a local image "
                               "(LAUNCHBAY_SHARED_IMAGES)") from exc
