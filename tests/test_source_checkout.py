"""Fetching sources: git credentials reach git only through its environment, and archives
cannot write outside their folder."""

from __future__ import annotations

import base64
import io
import os
import shlex
import tarfile
from pathlib import Path

import pytest

from launchbay.drivers import source_checkout


def test_a_token_becomes_an_authorization_header_in_the_environment():
    with source_checkout._authenticated("tok-123") as env:
        header = env["GIT_CONFIG_VALUE_0"]
    assert env["GIT_CONFIG_KEY_0"] == "http.extraHeader" and env["GIT_CONFIG_COUNT"] == "1"
    assert base64.b64decode(header.split()[-1]).decode() == "x-access-token:tok-123"
    with source_checkout._authenticated("gitlab-ci:tok-456") as env:
        assert base64.b64decode(env["GIT_CONFIG_VALUE_0"].split()[-1]).decode() == \
            "gitlab-ci:tok-456"


def test_a_deploy_key_is_a_private_file_for_ssh_and_is_removed_after():
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----"
    with source_checkout._authenticated(key) as env:
        command = shlex.split(env["GIT_SSH_COMMAND"])
        path = Path(command[command.index("-i") + 1])
        assert path.read_text() == key + "\n"
        assert os.stat(path).st_mode & 0o777 == 0o600
        assert "StrictHostKeyChecking=accept-new" in command and "BatchMode=yes" in command
    assert not path.exists()
    with source_checkout._authenticated(None) as env:
        assert env == {}


def test_a_missing_repository_fails_with_gits_message(tmp_path):
    allowed = source_checkout.GitPolicy(local_folders=(str(tmp_path),))
    with pytest.raises(source_checkout.CheckoutError) as e:
        source_checkout.checkout(str(tmp_path / "nope"), "main", tmp_path / "dest",
                                 policy=allowed)
    assert "does not exist" in str(e.value) or "not appear" in str(e.value)


def test_an_archive_cannot_escape_its_folder(tmp_path):
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    archive = tmp_path / "abc.tar.gz"
    archive.write_bytes(data.getvalue())
    with pytest.raises(source_checkout.CheckoutError):
        source_checkout.unpack(archive, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()
