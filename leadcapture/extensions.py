"""Unbound extension singletons, bound to an app in create_app."""

from __future__ import annotations

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

from leadcapture.config import PACKAGE_DIR
from leadcapture.models import Base

# Models derive from our own typed Base; Flask-SQLAlchemy only needs its metadata.
db = SQLAlchemy(metadata=Base.metadata)
migrate = Migrate(directory=str(PACKAGE_DIR / "migrations"), render_as_batch=True, compare_type=True)
csrf = CSRFProtect()
