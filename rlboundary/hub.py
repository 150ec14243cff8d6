"""Models by name: a Hugging Face hub id where a local model folder is expected.

``base.path``, ``model=`` and ``series=`` take a local folder or a hub id, ``org/name`` or
``org/name@revision`` (a branch, tag or commit: RL runs publish checkpoints as revisions).
:func:`resolve` turns an id into the local snapshot folder through ``huggingface_hub``'s cache
(``HF_HUB_CACHE``, by default ``~/.cache/huggingface/hub``): ``snapshot_download`` fetches what
the cache lacks, and with ``HF_HUB_OFFLINE=1`` (or no network) reads the cache alone. The probes
then hash and load that folder like any other, so a probe records the snapshot's own files.

Errors: a missing local folder, or an id the cache lacks while the hub cannot be reached, is
``MissingPath`` naming the download command; an id or revision the hub does not have is
``UserError``.
"""

from __future__ import annotations

import os
import re

from rlboundary.errors import MissingPath, UserError

#: ``org/name`` with an optional ``@revision``; hub names use letters, digits, ``-``, ``_``, ``.``.
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*(@[\w./-]+)?")


def is_hub_id(spec: str) -> bool:
    """Whether ``spec`` names a hub model rather than a local path (nothing exists there, its
    first part is no folder here, and it has the shape ``org/name[@revision]``)."""
    spec = str(spec)
    return (not os.path.exists(spec) and not spec.startswith(("/", ".", "~"))
            and not os.path.isdir(spec.split("/")[0])  # runs/x: a folder here, mistyped
            and HUB_ID.fullmatch(spec) is not None)


def split_id(spec: str) -> tuple[str, str | None]:
    """``"org/name@rev"`` -> ``("org/name", "rev")``; no ``@``: revision None (the default
    branch)."""
    repo, _, revision = str(spec).partition("@")
    return repo, revision or None


def resolve(spec: str, what: str) -> str:
    """The local folder of ``spec`` (a folder as given, or a hub id's cached snapshot, fetched
    when the cache lacks it and the hub is reachable). ``what`` names the setting in errors
    (``base.path``, ``model``, ``series``)."""
    spec = str(spec)
    if os.path.isdir(spec):
        return spec
    if not is_hub_id(spec):
        label = {"base.path": "base model", "model": "checkpoint"}.get(what, what)
        raise MissingPath(f"{label} not found: {spec} (a local model folder, or a hub id "
                          "org/name[@revision])")
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo, revision = split_id(spec)
    try:
        return snapshot_download(repo, revision=revision)
    except LocalEntryNotFoundError:
        fetch = f"huggingface-cli download {repo}" + (f" --revision {revision}" if revision
                                                      else "")
        raise MissingPath(f"{what}={spec}: not in the hub cache ({constants.HF_HUB_CACHE}) and "
                          f"the hub cannot be reached (HF_HUB_OFFLINE=1 or no network); run "
                          f"`{fetch}` where there is a network and bring its cache") from None
    except RevisionNotFoundError:
        raise UserError(f"{what}={spec}: the hub has no revision {revision!r} of {repo}") \
            from None
    except RepositoryNotFoundError:
        raise UserError(f"{what}={spec}: no model {repo} on the hub (a private one needs "
                        "`huggingface-cli login`)") from None
    except HFValidationError as e:
        raise UserError(f"{what}={spec}: not a valid hub id ({' '.join(str(e).split())[:150]})") \
            from None
    except (HfHubHTTPError, OSError) as e:  # an HTTP error, or the connection broke mid-way
        raise UserError(f"{what}={spec}: the hub answered {' '.join(str(e).split())[:200]}") \
            from None


def step_of(spec: str) -> int | None:
    """A checkpoint's training step from its name: the last number in a hub id's revision,
    else in its (or a folder's) last path part; None when there is none."""
    spec = str(spec)
    repo, revision = split_id(spec) if is_hub_id(spec) else (spec, None)
    for text in (revision, os.path.basename(os.path.normpath(repo))):
        nums = re.findall(r"\d+", text or "")
        if nums:
            return int(nums[-1])
    return None
