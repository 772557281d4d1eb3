"""The edge proxy of a Docker Swarm: a Caddy container on every ready node (the manager and
the others), each serving the swarm's routes on the node's ports 80 and 443, so a request
reaching any node is served; each joins the overlay networks of the swarm's environments and
proxies to a service by its name, which Swarm's DNS answers with the tasks that passed their
health check. Every node's Caddy gets the same configuration."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from launchbay.drivers.edge_proxy import ContainerCaddy, EdgeError
from launchbay.engine.runtime import Runtime, RuntimeFailure, ServerUnreachable
from launchbay.engine.targets import Targets

T = TypeVar("T")


class ClusterCaddy:
    """The Caddies of a swarm's nodes, driven as one (what `EdgeProxy` drives)."""

    available = True

    def __init__(self, targets: Targets, server_id: str, image: str):
        self.targets, self.server_id, self.image = targets, server_id, image
        self._edges: dict[str, tuple[Runtime, ContainerCaddy]] = {}  # by node address

    def _nodes(self) -> list[tuple[str, Runtime, ContainerCaddy]]:
        """Every ready node: (address, runtime, its edge)."""
        found = [("manager", self.targets.of(self.server_id)),
                 *self.targets.nodes(self.server_id)]
        edges = []
        for address, runtime in found:
            kept = self._edges.get(address)
            if kept is None or kept[0] is not runtime:  # made again (new keys): a new driver
                kept = self._edges[address] = (runtime, ContainerCaddy(
                    runtime, self.image, self._networks))
            edges.append((address, runtime, kept[1]))
        return edges

    def _networks(self) -> list[str]:
        """The swarm's environment networks (every node's edge joins each)."""
        return [name for name, _, _ in self.targets.of(self.server_id).networks(
            **{"launchbay.server": self.server_id})]

    def _each(self, act: Callable[[str, Runtime, ContainerCaddy], T]) -> list[T]:
        try:
            return [act(*node) for node in self._nodes()]
        except ServerUnreachable as exc:
            raise EdgeError(f"a node of the swarm cannot be reached: {exc.message}") from exc
        except (RuntimeFailure, OSError) as exc:
            raise EdgeError(f"a node of the swarm does not answer: {exc}") from exc

    def start(self) -> bool:
        def start(_: str, runtime: Runtime, edge: ContainerCaddy) -> bool:
            self._image_on(runtime)
            return edge.start()
        return any(self._each(start))

    def _image_on(self, runtime: Runtime) -> None:
        """The edge's image on the node: copied from the control plane's engine when it has
        it, else pulled (no registry is needed)."""
        if runtime.image_id(self.image) is None:
            local = self.targets.of(self.targets.local_id())
            if local.image_id(self.image) is not None:
                runtime.load(local.export(self.image))
            else:
                runtime.pull(self.image)

    def alive(self) -> bool:
        return all(self._each(lambda *node: node[2].alive()))

    def load(self, config: dict[str, Any]) -> None:
        self._each(lambda *node: node[2].load(config))

    def has(self, object_id: str) -> bool:
        return all(self._each(lambda *node: node[2].has(object_id)))

    def reach(self, host: str, port: int) -> tuple[str, int]:
        return self._each(lambda *node: node[2].reach(host, port))[0]  # the manager's

    def shutdown(self) -> None:
        self._each(lambda *node: node[2].shutdown())

    def release(self) -> None:
        pass
