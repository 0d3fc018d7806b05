"""Unbound extension singletons, bound to an app in create_app."""

from __future__ import annotations

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

from leadcapture.config import MIGRATIONS_DIR
from leadcapture.models import Base

# Models derive from our own typed Base; Flask-SQLAlchemy only needs its metadata.
db = SQLAlchemy(metadata=Base.metadata)
migrate = Migrate(directory=str(MIGRATIONS_DIR), render_as_batch=True, compare_type=True)
csrf = CSRFProtect()
# Limits are declared on the views that need them; storage (Redis when configured) is chosen in create_app.
limiter = Limiter(key_func=get_remote_address)
