from __future__ import annotations

from flask import Flask


class AfterCommitSender:
    def init_app(self, app: Flask) -> None:
        pass


after_commit_sender = AfterCommitSender()
