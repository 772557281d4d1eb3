"""Source links (seed 004): which repository feeds which resource, moved only by an explicit
relink (no engine runs here)."""

from __future__ import annotations

from support import Api, make_app


def _git(admin: Api, ids: dict[str, str], name: str, url: str) -> str:
    return admin.post("/resources", {
        "projectId": ids["project"], "environmentId": ids["env"], "name": name,
        "source": {"kind": "git", "locator": url, "gitRef": "main"}})["id"]


def test_a_link_is_listed_moved_explicitly_and_deleted(admin: Api) -> None:
    ids = make_app(admin, "lbtest/hello:v1")
    shop = _git(admin, ids, "shop", "https://github.com/acme/shop.git")
    copy = _git(admin, ids, "shop-copy", "git@github.com:acme/shop.git")  # the same repository
    blog = _git(admin, ids, "blog", "https://github.com/acme/blog.git")
    made = admin.post(f"/resources/{shop}/auto-deploy", {"mode": "enable", "policy": {}})
    fingerprint = made["sourceBindingFingerprint"]
    (link,) = admin.get("/source-links")["items"]
    assert (link["sourceFingerprint"], link["resourceId"], link["repository"]) == (
        fingerprint, shop, "github.com/acme/shop")
    assert admin.get(f"/source-links/{fingerprint}")["sourceLink"]["refs"] == ["main"]
    where = {"sourceFingerprint": fingerprint, "projectId": ids["project"],
             "environmentId": ids["env"]}
    other_repo = admin.request("POST", "/source-links/relink", {**where, "resourceId": blog})
    assert other_repo.status_code == 409
    stale = admin.request("POST", "/source-links/relink", {
        **where, "resourceId": copy, "expectedCurrentResourceId": blog})
    assert stale.status_code == 409
    moved = admin.post("/source-links/relink", {**where, "resourceId": copy,
                                                 "expectedCurrentResourceId": shop})
    assert moved["resourceId"] == copy and moved["sourceFingerprint"] == fingerprint
    assert admin.get(f"/resources/{shop}/auto-deploy")["policy"] is None
    assert admin.get(f"/resources/{copy}/auto-deploy")["policy"]["sourceBindingFingerprint"] \
        == fingerprint
    assert admin.get("/source-links", params={"resourceId": copy})["items"][0][
        "sourceFingerprint"] == fingerprint
    admin.ok("DELETE", f"/source-links/{fingerprint}")
    assert admin.get("/source-links")["items"] == []
    assert admin.request("GET", f"/source-links/{fingerprint}").status_code == 404
