"""The images' tag for a source revision: ``python3 pipeline/image_tag.py REVISION``.

CodePipeline hands the build its source revision in CODEBUILD_RESOLVED_SOURCE_VERSION: a commit
id from a CodeConnections source, an object version id from an S3 source. A commit id is a valid
image tag as it is; an S3 version id may hold "/" or "+", which a tag may not, so it becomes a
digest of itself. Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import re
import sys

# ECR image tags: [a-zA-Z0-9-_.]{1,128} ("ImageTag", Amazon ECR API reference, PutImage); a
# leading "." or "-" is refused by Docker's own reference grammar, so a tag starts with [\w].
VALID_TAG = re.compile(r"^\w[\w.-]{0,127}$", re.ASCII)
DIGEST_PREFIX = "rev-"
DIGEST_LENGTH = 40


def image_tag(revision: str) -> str:
    """``revision`` itself when it is a valid tag, else ``rev-`` and 40 hex digits of its SHA-256:
    the same revision always gives the same tag, so a re-run finds its images already pushed."""
    revision = revision.strip()
    if not revision:
        raise ValueError("no source revision: CODEBUILD_RESOLVED_SOURCE_VERSION is empty")
    if VALID_TAG.match(revision):
        return revision
    return DIGEST_PREFIX + hashlib.sha256(revision.encode()).hexdigest()[:DIGEST_LENGTH]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: image_tag.py REVISION", file=sys.stderr)
        return 2
    try:
        print(image_tag(argv[0]))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
